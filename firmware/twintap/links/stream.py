# APDU framing on a byte stream (TCP, UART): a request is 5 + Lc bytes (spec section 3).
# Each byte after the first must arrive within `idle_ms`; a header that cannot start a Tap
# request (wrong CLA/INS, Lc < 7) makes the link drop input until the line is idle, then
# answer BAD_REQUEST once: that is the resynchronisation. A truncated request (Lc larger
# than the data that came) is answered BAD_REQUEST when the line goes idle.
import asyncio

from .. import log
from ..proto import DecodeError, frame, tapcodes
from ..tap.dispatcher import Session

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_BUF = const(260)  # 5-byte header + Lc (<= 255)
_OOM_PAUSE_MS = const(20)
_DROP = const(64)  # bytes asked at once while dropping input (resynchronisation)
_BAD = frame.encode_response(tapcodes.BAD_REQUEST)


class StreamLink:
    resyncs = 0

    def __init__(self, name, reader, writer, dispatcher, idle_ms=100, peer=None):
        # (the link's name is its session's: self.session.link)
        self.reader = reader
        self.writer = writer
        self.dispatcher = dispatcher
        self.idle_ms = idle_ms
        self.session = Session(name, peer)
        self.mv = memoryview(bytearray(_BUF))  # the request being received

    async def _fill(self, have, n, first_wait):
        # Read until the buffer holds n bytes (it holds `have`) -> how many it holds: fewer
        # than n on idle timeout; EOF raises. The stream is asked for no more than what is
        # missing: the header, then the rest (small reads, no 260-byte buffer per request;
        # nothing read past the request). Without `first_wait` the first byte is awaited
        # without a timeout. With n = 0: drop what comes until the line is idle (the
        # resynchronisation).
        while have < n or n == 0:
            ask = n - have if n else _DROP
            try:
                if have == 0 and not first_wait:
                    chunk = await self.reader.read(ask)
                else:
                    chunk = await asyncio.wait_for_ms(self.reader.read(ask), self.idle_ms)
            except asyncio.TimeoutError:
                return have
            if not chunk:
                raise EOFError
            if n:
                k = len(chunk)
                self.mv[have : have + k] = chunk
                have += k
        return have

    async def serve(self):
        try:
            while True:
                try:
                    await self._one()
                except MemoryError:
                    # a full heap: this request is lost (what follows of it resyncs), not the
                    # link; a moment for the rest of the board to give memory back
                    log.error("link", "out of memory: a request dropped")
                    await asyncio.sleep_ms(_OOM_PAUSE_MS)
        except EOFError:
            pass
        except OSError as e:
            log.warn("link", self.session.link + " closed: " + str(e))

    async def _one(self):
        # one request in, its answer (or BAD_REQUEST after a resync) out
        mv = self.mv
        why = None
        if await self._fill(0, 5, False) < 5:
            why = "truncated header"
        else:
            try:
                frame.check_apdu_header(mv)
            except DecodeError as e:
                await self._fill(5, 0, True)
                why = str(e)
            else:
                n = frame.apdu_length(mv)
                if await self._fill(5, n, True) == n:
                    out = self.dispatcher.handle(mv[:n], self.session)
                else:
                    why = "Lc larger than the data"
        if why is not None:
            self.resyncs += 1
            log.debug("link", self.session.link + " resync: " + why)
            out = _BAD
        self.writer.write(out)
        await self.writer.drain()
