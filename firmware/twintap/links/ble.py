# Tap over BLE (spec tap-protocol.md section 8), on the MicroPython `bluetooth.BLE` API only:
# the legacy LwM2M service (APDUs chunked both ways) and the large-frame service (one write =
# one request APDU, one notification = its response), as proto/blechunk.py describes them.
# The radio object and the UUID constructor are injected (main.py takes them from the
# platform: NimBLE's bluetooth.BLE() on the ESP32, an emulated radio on the unix port).
# One central at a time: advertising stops on a connection (as the stack does) and starts
# again when it ends; each connection gets a fresh Session and an empty reassembly buffer.
# The IRQ handler only records (copying written values at once, as aioble's capture mode
# does) and sets a flag; the task `serve` does the work.
# Heap: while no central is connected (most of a board's life) the link holds no buffer and
# proto/blechunk.py is not loaded (start() loads it to register the services, then drops
# it). A connection loads it again and gets one 256-byte buffer, which holds a legacy
# request as it arrives and then its wrapped response, sent in place (blechunk.packets);
# the end of the connection drops both, and the module. Error responses are constants.
import asyncio

from .. import log
from ..proto import DecodeError
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

_DEFAULT_MTU = const(23)
PREFERRED_MTU = const(263)  # a whole 260-byte request APDU in one large-frame write
_MAX_APDU = const(260)
_PIECE = const(19)  # the spec's legacy piece (blechunk)
_MAX_WRAPPED = const(255)  # legacy frame + checksum (blechunk)
_MAX_FRAME = const(254)  # blechunk.MAX_FRAME
_QMAX = const(32)  # written values recorded and not yet handled (a legacy frame is <= 14)
_ADV_INTERVAL_US = const(100000)
_NOTIFY_TRIES = const(25)  # the stack may be out of buffers for a moment: retry every 10 ms
_FRAME_MS = const(1000)  # a half legacy frame older than this is dropped (its sender gave up)


def _forget_chunk():
    # drop proto/blechunk.py: the collector takes its heap back
    from .. import forget

    forget("proto.blechunk")


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
        self.frames = 0  # legacy frames dropped by the assemblers of the ended connections
        # while connected: [0] an offset byte, [1:] a legacy request (the assembler's), then
        # its response; the blechunk.Assembler over buf[1:]
        self.buf = self.asm = None
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
        # the services and the advertising data from proto/blechunk.py, which is dropped
        # before the radio is touched (a connection loads it again)
        from ..proto import blechunk as bc

        u = self.uuid
        services = (
            (u(bc.LEGACY_SERVICE), ((u(bc.LEGACY_CHAR), _CHAR_FLAGS),)),
            (u(bc.FAST_SERVICE), ((u(bc.FAST_CHAR), _CHAR_FLAGS),)),
        )
        adv, resp = bc.adv_payload(self.name)
        _forget_chunk()
        r = self.radio
        r.active(True)
        r.config(gap_name=self.name, mtu=self.pref_mtu)
        r.irq(self._irq)
        ((self.h_legacy,), (self.h_fast,)) = r.gatts_register_services(services)
        # values larger than the default 20 bytes: a legacy packet at a large MTU, an APDU
        r.gatts_set_buffer(self.h_legacy, _MAX_WRAPPED + 1)
        r.gatts_set_buffer(self.h_fast, _MAX_APDU)
        try:
            r.gap_advertise(_ADV_INTERVAL_US, adv, resp_data=resp)
        except OSError as e:
            log.error("ble", "advertising failed: %s" % e)
        log.info("ble", "Tap services advertised as %s" % self.name)

    def status(self):
        # what `twintap doctor` shows (onboard.status)
        asm = self.asm
        return {
            "state": "connected" if self.conn is not None else "advertising",
            "name": self.name, "mtu": self.mtu, "centrals": self.centrals,
            "dropped_writes": self.drops,
            "dropped_frames": self.frames + (asm.dropped if asm else 0),
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
                        continue
                    if arg == self.h_fast:  # large-frame: one notification
                        resp = self.dispatcher.handle(data, self.session)
                        if len(resp) > self.mtu - 3:
                            log.warn("ble", "response of %d bytes > MTU-3 (%d)"
                                     % (len(resp), self.mtu - 3))
                            resp = b"\xa0\x90\x00"  # INTERNAL_SERVER_ERROR (frame.encode_response)
                        out = (resp,)
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
                            log.debug("ble", str(e))  # "BLE frame checksum"...
                            resp = b"\x80\x90\x00"  # BAD_REQUEST (frame.encode_response)
                        else:
                            if n is None:
                                continue
                            resp = self.dispatcher.handle(asm.buf[:n], self.session)
                        if len(resp) > _MAX_FRAME:
                            log.warn("ble", "response of %d bytes > %d" % (len(resp), _MAX_FRAME))
                            resp = b"\xa0\x90\x00"  # INTERNAL_SERVER_ERROR
                        # the request in self.buf is done with: the response goes there
                        from ..proto.blechunk import packets

                        out = packets(self.buf, resp, min(self.piece, self.mtu - 4))
                    # Notify: the stack may be out of buffers for a moment (retry every 10 ms,
                    # _NOTIFY_TRIES times); the rest of a response is dropped when a
                    # notification is lost or the IRQ saw the central go.
                    for p in out:
                        tries = 0
                        while self.lost != conn:
                            try:
                                self.radio.gatts_notify(conn, arg, p)
                                break
                            except OSError as e:
                                tries += 1
                                if tries == _NOTIFY_TRIES:
                                    log.warn("ble", "notification lost: %s" % e)
                                    break
                            await asyncio.sleep(0.01)
                        if self.lost == conn or tries == _NOTIFY_TRIES:
                            break
                elif kind == _IRQ_CENTRAL_CONNECT:
                    if self.conn is not None:  # one central at a time
                        self.radio.gap_disconnect(conn)
                        continue
                    from ..proto import blechunk

                    self.buf = bytearray(_MAX_WRAPPED + 1)
                    self.asm = blechunk.Assembler(memoryview(self.buf)[1:])
                    self.conn = conn
                    self.lost = None
                    self.mtu = _DEFAULT_MTU
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
                    self.frames += self.asm.dropped
                    self.conn = self.session = self.buf = self.asm = None
                    from ..proto.blechunk import adv_payload

                    adv, resp = adv_payload(self.name)
                    _forget_chunk()  # the next central loads it again
                    try:
                        self.radio.gap_advertise(_ADV_INTERVAL_US, adv, resp_data=resp)
                    except OSError as e:
                        log.error("ble", "advertising failed: %s" % e)
                elif conn == self.conn:  # _IRQ_MTU_EXCHANGED
                    self.mtu = arg
                    log.debug("ble", "MTU %d" % arg)
            except OSError as e:  # the radio failed: the link keeps serving
                log.warn("ble", "central %s: %s" % (conn, e))
