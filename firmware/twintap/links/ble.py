# Tap over BLE (spec tap-protocol.md section 8), on the MicroPython `bluetooth.BLE` API only:
#   legacy LwM2M service 6c7b16c2-.../cc5c5491-...: APDUs chunked both ways (proto/blechunk.py)
#   large-frame service  7c7b16c2-.../dc5c5491-...: one write = one request APDU, one
#                                                   notification = its response
# The radio object and the UUID constructor are injected (main.py takes them from the
# platform: NimBLE's bluetooth.BLE() on the ESP32, an emulated radio on the unix port).
# One central at a time: advertising stops on a connection (as the stack does) and starts
# again when it ends; each connection gets a fresh Session and an empty reassembly buffer.
# The IRQ handler only records (copying written values at once, as aioble's capture mode
# does) and sets a flag; the task `serve` does the work.
# Heap: one 256-byte buffer holds a legacy request as it arrives and then its wrapped
# response, sent in place (blechunk.packets); error responses are built when needed.
import asyncio

from .. import log
from ..proto import DecodeError, blechunk, frame, tapcodes
from ..tap.dispatcher import Session
from ..ticks import ticks_diff, ticks_ms

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)

_CHAR_FLAGS = const(0x001C)  # write (0x08), write without response (0x04), notify (0x10)

LEGACY_SERVICE = "6c7b16c2-2a5b-8c9f-cf42-d31425470e7b"
LEGACY_CHAR = "cc5c5491-b3be-9287-cb42-f7a6a29a50d5"
FAST_SERVICE = "7c7b16c2-2a5b-8c9f-cf42-d31425470e7b"
FAST_CHAR = "dc5c5491-b3be-9287-cb42-f7a6a29a50d5"

_DEFAULT_MTU = const(23)
PREFERRED_MTU = const(263)  # a whole 260-byte request APDU in one large-frame write
_MAX_APDU = const(260)
_PIECE = const(19)  # the spec's legacy piece (blechunk)
_MAX_WRAPPED = const(255)  # legacy frame + checksum (blechunk)
_QMAX = const(32)  # written values recorded and not yet handled (a legacy frame is <= 14)
_ADV_INTERVAL_US = const(100000)
_NOTIFY_TRIES = const(25)  # the stack may be out of buffers for a moment: retry every 10 ms
_FRAME_MS = const(1000)  # a half legacy frame older than this is dropped (its sender gave up)



def uuid_le(text):
    # "6c7b16c2-..." -> the 16 bytes of advertising data (little-endian)
    b = bytes.fromhex(text.replace("-", ""))
    return bytes(reversed(b))


def adv_payload(name):
    # advertising data: flags, the legacy service (the one every Tap has), the name (short
    # when it does not fit); scan response: the complete name
    nm = name.encode()[:29]
    short = nm[:8]
    adv = b"\x02\x01\x06\x11\x06" + uuid_le(LEGACY_SERVICE)
    adv += bytes((len(short) + 1, 0x09 if short == nm else 0x08)) + short
    return adv, bytes((len(nm) + 1, 0x09)) + nm


class BleLink:
    def __init__(self, radio, uuid, dispatcher, name="twintap", mtu=PREFERRED_MTU, piece=0):
        self.radio = radio
        self.uuid = uuid
        self.dispatcher = dispatcher
        self.name = name
        self.pref_mtu = mtu
        # legacy: frame bytes per notification (0: 19, the spec's; larger values are capped
        # by the MTU: a receiver places pieces by offset, whatever their size)
        self.piece = piece or _PIECE
        self.h_legacy = self.h_fast = None
        self.conn = None  # the central being served
        self.lost = None  # a connection the IRQ saw end (the task has not handled it yet)
        self.mtu = _DEFAULT_MTU
        self.session = None
        self.centrals = 0
        self.drops = 0  # written values dropped: the task fell _QMAX behind
        # [0]: an offset byte; [1:]: a legacy request (the assembler's), then its response
        self.buf = bytearray(_MAX_WRAPPED + 1)
        self.asm = blechunk.Assembler(memoryview(self.buf)[1:])
        self.t_last = 0  # when the previous legacy packet came
        self.q = []
        # Real radios call IRQs from the stack's context: a ThreadSafeFlag wakes the task. The
        # unix port's emulated radio calls them from asyncio tasks, where an Event does, and
        # where a ThreadSafeFlag (polled through a pipe by the unix port's loop) crashed the
        # interpreter (segfault) once a second TCP client and the UART were also being polled.
        import sys

        self.flag = (asyncio.ThreadSafeFlag if sys.platform == "esp32" else asyncio.Event)()

    # -- radio -----------------------------------------------------------------------------
    def start(self):
        r = self.radio
        r.active(True)
        r.config(gap_name=self.name, mtu=self.pref_mtu)
        r.irq(self._irq)
        u = self.uuid
        ((self.h_legacy,), (self.h_fast,)) = r.gatts_register_services(
            (
                (u(LEGACY_SERVICE), ((u(LEGACY_CHAR), _CHAR_FLAGS),)),
                (u(FAST_SERVICE), ((u(FAST_CHAR), _CHAR_FLAGS),)),
            )
        )
        # values larger than the default 20 bytes: a legacy packet at a large MTU, an APDU
        r.gatts_set_buffer(self.h_legacy, _MAX_WRAPPED + 1)
        r.gatts_set_buffer(self.h_fast, _MAX_APDU)
        adv, resp = adv_payload(self.name)
        try:
            r.gap_advertise(_ADV_INTERVAL_US, adv, resp_data=resp)
        except OSError as e:
            log.error("ble", "advertising failed: %s" % e)
        log.info("ble", "Tap services advertised as %s" % self.name)

    def status(self):
        # what `twintap doctor` shows (onboard.status)
        return {
            "state": "connected" if self.conn is not None else "advertising",
            "name": self.name, "mtu": self.mtu, "centrals": self.centrals,
            "dropped_writes": self.drops, "dropped_frames": self.asm.dropped,
        }

    def _irq(self, event, data):
        # record only (scheduled or synchronous IRQ context): no Tap work here
        if event == _IRQ_GATTS_WRITE:
            conn, h = data
            if h != self.h_legacy and h != self.h_fast:
                return
            if len(self.q) >= _QMAX:
                self.drops += 1
                return
            self.q.append((event, conn, h, self.radio.gatts_read(h)))
        elif event == _IRQ_CENTRAL_CONNECT:
            self.q.append((event, data[0], data[1], bytes(data[2])))
        elif event == _IRQ_CENTRAL_DISCONNECT:
            self.lost = data[0]
            self.q.append((event, data[0], 0, None))
        elif event == _IRQ_MTU_EXCHANGED:
            self.q.append((event, data[0], data[1], None))
        else:
            return
        self.flag.set()

    # -- the task ----------------------------------------------------------------------------
    async def serve(self):
        try:
            while True:
                await self.flag.wait()
                if hasattr(self.flag, "clear"):
                    self.flag.clear()
                await self.drain()
        finally:
            try:
                self.radio.gap_advertise(None)
                self.radio.active(False)
            except OSError:
                pass

    async def drain(self):
        while self.q:
            kind, conn, arg, data = self.q.pop(0)
            try:
                if kind == _IRQ_GATTS_WRITE:
                    if conn != self.conn:
                        pass
                    elif arg == self.h_fast:  # large-frame: one notification
                        resp = self.dispatcher.handle(data, self.session)
                        if len(resp) > self.mtu - 3:
                            log.warn("ble", "response of %d bytes > MTU-3 (%d)"
                                     % (len(resp), self.mtu - 3))
                            resp = frame.encode_response(tapcodes.INTERNAL_SERVER_ERROR)
                        await self._notify(conn, arg, resp)
                    else:  # legacy: a packet
                        asm = self.asm
                        now = ticks_ms()
                        if asm.busy() and ticks_diff(now, self.t_last) > _FRAME_MS:
                            asm.dropped += 1
                            asm.reset()
                        self.t_last = now
                        try:
                            n = asm.feed(data)
                        except DecodeError as e:
                            log.debug("ble", "bad frame: %s" % e)
                            resp = frame.encode_response(tapcodes.BAD_REQUEST)
                        else:
                            if n is None:
                                continue
                            resp = self.dispatcher.handle(asm.buf[:n], self.session)
                        if len(resp) > blechunk.MAX_FRAME:
                            log.warn("ble", "response of %d bytes > %d"
                                     % (len(resp), blechunk.MAX_FRAME))
                            resp = frame.encode_response(tapcodes.INTERNAL_SERVER_ERROR)
                        # the request in self.buf is done with: the response goes there
                        piece = min(self.piece, self.mtu - 4)
                        for p in blechunk.packets(self.buf, resp, piece):
                            if not await self._notify(conn, arg, p):
                                break
                elif kind == _IRQ_CENTRAL_CONNECT:
                    if self.conn is not None:  # one central at a time
                        self.radio.gap_disconnect(conn)
                        continue
                    self.conn = conn
                    self.lost = None
                    self.mtu = _DEFAULT_MTU
                    self.asm.reset()
                    self.centrals += 1
                    addr = data.hex(":")
                    self.session = Session("ble#%d" % self.centrals, "ble:" + addr)
                    log.info("ble", "%s connected from %s" % (self.session.link, addr))
                elif kind == _IRQ_CENTRAL_DISCONNECT:
                    if conn != self.conn:
                        continue
                    if self.asm.busy():
                        log.debug("ble", "half frame dropped")
                    log.info("ble", self.session.link + " disconnected")
                    self.conn = self.session = None
                    self.asm.reset()
                    adv, resp = adv_payload(self.name)
                    try:
                        self.radio.gap_advertise(_ADV_INTERVAL_US, adv, resp_data=resp)
                    except OSError as e:
                        log.error("ble", "advertising failed: %s" % e)
                elif conn == self.conn:  # _IRQ_MTU_EXCHANGED
                    self.mtu = arg
                    log.debug("ble", "MTU %d" % arg)
            except OSError as e:  # the radio failed: the link keeps serving
                log.warn("ble", "central %s: %s" % (conn, e))

    async def _notify(self, conn, handle, data):
        err = None
        for _ in range(_NOTIFY_TRIES):
            if self.lost == conn:
                return False
            try:
                self.radio.gatts_notify(conn, handle, data)
                return True
            except OSError as e:
                err = e
            await asyncio.sleep(0.01)
        log.warn("ble", "notification lost: %s" % err)
        return False
