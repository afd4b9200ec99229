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
_BAD = frame.encode_response(tapcodes.BAD_REQUEST)


class StreamLink:
    def __init__(self, name, reader, writer, dispatcher, idle_ms=100, peer=None):
        self.name = name
        self.reader = reader
        self.writer = writer
        self.dispatcher = dispatcher
        self.idle_ms = idle_ms
        self.session = Session(name, peer)
        self.buf = bytearray(_BUF)
        self.mv = memoryview(self.buf)
        self.pending = b""  # bytes read past the current request
        self.resyncs = 0

    async def _fill(self, n, first_wait):
        # Read until self.buf holds n bytes; False on idle timeout (or EOF -> raises).
        have = self._have
        while have < n:
            if self.pending:
                chunk = self.pending
            else:
                try:
                    if have == 0 and not first_wait:
                        chunk = await self.reader.read(_BUF)
                    else:
                        chunk = await asyncio.wait_for_ms(self.reader.read(_BUF), self.idle_ms)
                except asyncio.TimeoutError:
                    self._have = have
                    return False
                if not chunk:
                    raise EOFError
            take = min(n - have, len(chunk))
            self.mv[have : have + take] = chunk[:take]
            self.pending = chunk[take:]
            have += take
        self._have = have
        return True

    async def _drain_until_idle(self):
        self.pending = b""
        while True:
            try:
                chunk = await asyncio.wait_for_ms(self.reader.read(_BUF), self.idle_ms)
            except asyncio.TimeoutError:
                return
            if not chunk:
                raise EOFError

    async def _send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def serve(self):
        try:
            while True:
                self._have = 0
                await self._fill(1, False)
                if not await self._fill(5, True):
                    await self._reject("truncated header")
                    continue
                try:
                    frame.check_apdu_header(self.buf)
                except DecodeError as e:
                    await self._drain_until_idle()
                    await self._reject(str(e))
                    continue
                n = frame.apdu_length(self.buf)
                if not await self._fill(n, True):
                    await self._reject("Lc larger than the data")
                    continue
                await self._send(self.dispatcher.handle(self.mv[:n], self.session))
        except EOFError:
            pass
        except OSError as e:
            log.warn("link", self.name + " closed: " + str(e))

    async def _reject(self, why):
        self.resyncs += 1
        log.debug("link", self.name + " resync: " + why)
        await self._send(_BAD)
