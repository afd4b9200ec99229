# Improv Wi-Fi on serial links: the service (its state machine, the URL it gives and the
# saving of the credentials it is given) and the frames on the Tap UART and the console
# (framing in proto/improv.py; Wi-Fi in onboard.py).
#
# The Tap UART carries both protocols. A Tap request starts with its CLA 0xA2, an Improv
# packet with "IMPROV" (0x49 'I'), so the first byte at a frame boundary tells them apart:
# a boundary is the start of the stream, the end of a Tap request (5 + Lc bytes), the end of
# an Improv packet, or an idle line (no byte for idle_ms). Newlines between packets are
# dropped; every other byte goes to the Tap framer, which answers BAD_REQUEST and resyncs as
# before. Improv answers go back on the same UART, each packet on its own line.
#
# On an ESP32 the console (USB serial) also carries Improv, as ESPHome does, for ESP Web Tools
# and Home Assistant: serve_console() polls sys.stdin without blocking and writes answers to
# stdout between log lines; anything else typed there is ignored (Ctrl-C still interrupts).
import asyncio

from .. import log
from ..proto import improv
from .stream import StreamLink

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_TAP_CLA = const(0xA2)
_I = const(0x49)
_BOUNDARY = const(0)
_TAP = const(1)
_IMPROV = const(2)
_OTHER = const(3)


class UartMux:
    # Splits one serial stream into Tap bytes (read()/write()/drain(), what StreamLink uses)
    # and Improv packets (handed to the service).
    def __init__(self, port, service, idle_ms=50):
        self.s = asyncio.StreamReader(port)
        self.service = service
        self.idle_ms = idle_ms
        self.parser = improv.Parser()
        self.tap = b""
        self.ev = asyncio.Event()
        self.eof = False
        self.mode = _BOUNDARY
        self.hdr = 0
        self.left = 0
        self.held = bytearray()  # bytes of a would-be Improv packet
        self.improv_packets = 0

    # -- the Tap side ------------------------------------------------------------------------
    async def read(self, n):
        while not self.tap and not self.eof:
            self.ev.clear()
            await self.ev.wait()
        out = self.tap[:n]
        self.tap = self.tap[n:]
        return out

    def write(self, data):
        self.s.write(data)

    async def drain(self):
        await self.s.drain()

    async def send(self, frame):
        # an Improv answer
        self.s.write(frame)
        await self.s.drain()

    # -- the pump ----------------------------------------------------------------------------
    async def pump(self):
        try:
            while True:
                if self.mode == _BOUNDARY:
                    chunk = await self.s.read(64)
                else:
                    try:
                        chunk = await asyncio.wait_for_ms(self.s.read(64), self.idle_ms)
                    except asyncio.TimeoutError:
                        self._idle()
                        continue
                if not chunk:
                    break
                out = bytearray()
                for b in chunk:
                    self._route(b, out)
                if out:
                    self.tap += out
                    self.ev.set()
        except OSError as e:
            log.warn("link", "uart closed: " + str(e))
        self.eof = True
        self.ev.set()

    def _idle(self):
        if self.mode == _IMPROV and self.held:
            log.debug("improv", "partial packet dropped")
        self.parser.reset()
        self.held = bytearray()
        self.mode = _BOUNDARY

    def _route(self, b, out):
        mode = self.mode
        if mode == _BOUNDARY:
            if b == _TAP_CLA:
                self.mode = _TAP
                self.hdr = 1
                out.append(b)
            elif b == _I:
                self.mode = _IMPROV
                self.held = bytearray()
                self._improv(b, out)
            elif b in (0x0A, 0x0D):
                pass
            else:
                self.mode = _OTHER
                out.append(b)
        elif mode == _TAP:
            out.append(b)
            if self.hdr < 5:
                self.hdr += 1
                if self.hdr == 5:
                    self.left = b
                    if not b:
                        self.mode = _BOUNDARY
            else:
                self.left -= 1
                if self.left <= 0:
                    self.mode = _BOUNDARY
        elif mode == _IMPROV:
            self._improv(b, out)
        else:
            out.append(b)  # not a frame start: the Tap framer resyncs on it

    def _improv(self, b, out):
        self.held.append(b)
        errors = self.parser.errors
        packets = self.parser.feed((b,))
        for ptype, data in packets:
            self.improv_packets += 1
            asyncio.create_task(self.service.handle(ptype, data, self.send))
        if self.parser.errors != errors:
            asyncio.create_task(self.send(improv.encode_error(improv.INVALID_RPC)))
        if packets or self.parser.errors != errors:
            self.held = bytearray()
            self.mode = _BOUNDARY
        elif not self.parser.busy():
            out.extend(self.held)  # not Improv after all: the Tap framer gets the bytes
            self.held = bytearray()
            self.mode = _OTHER


class _MuxLink(StreamLink):
    # the Tap UART link over a UartMux: serving it also runs the pump
    def __init__(self, mux, dispatcher, idle_ms):
        super().__init__("uart", mux, mux, dispatcher, idle_ms, "uart")
        self.mux = mux

    async def serve(self):
        pump = asyncio.create_task(self.mux.pump())
        try:
            await super().serve()
        finally:
            pump.cancel()


def tap_uart_link(port, dispatcher, service, idle_ms=50):
    # what links/uart.uart_link() is, plus Improv on the same line
    return _MuxLink(UartMux(port, service, idle_ms), dispatcher, idle_ms)


async def serve_console(service, poll_ms=30):
    # Improv on the console of an ESP32: sys.stdin polled without blocking
    import select
    import sys

    rd = getattr(sys.stdin, "buffer", sys.stdin)
    wr = getattr(sys.stdout, "buffer", sys.stdout)
    p = select.poll()
    p.register(sys.stdin, select.POLLIN)
    parser = improv.Parser()

    async def send(frame):
        wr.write(frame)

    while True:
        while p.poll(0):
            b = rd.read(1)
            if not b:
                break
            if isinstance(b, str):
                b = b.encode()
            errors = parser.errors
            for ptype, data in parser.feed(b):
                asyncio.create_task(service.handle(ptype, data, send))
            if parser.errors != errors:
                await send(improv.encode_error(improv.INVALID_RPC))
        await asyncio.sleep_ms(poll_ms)


class ImprovService:
    # The Improv Wi-Fi state machine, shared by every link that carries Improv frames. Each
    # request is answered on the link it came from (send: async fn(bytes)). `ob`: the app's
    # Onboard (its Wi-Fi, the Improv device info, the app's configuration and TCP port).
    def __init__(self, ob):
        self.ob = ob
        self.wifi = ob.wifi
        self.info = ob._improv_info  # [firmware, version, hardware, device name]
        self.busy = False

    def url(self):
        # -> the URL list once provisioned (the board file's "improv_url", {ip} and {port}
        # filled in)
        ob = self.ob
        fmt = ob.app.board.get("improv_url", "tcp://{ip}:{port}")
        if not fmt or not self.wifi.ip:
            return ()
        return (fmt.replace("{ip}", self.wifi.ip).replace("{port}", str(ob.tcp_port)),)

    def save(self, ssid, password):
        # keep what Improv gave, atomically, next to the rest of the configuration
        from .. import store
        from ..onboard import CONFIG

        cfg = store.load(CONFIG, {})
        if not isinstance(cfg, dict):
            cfg = {}
        cfg["wifi"] = {"ssid": ssid, "password": password}
        store.save(CONFIG, cfg)
        self.ob.app.config["wifi"] = cfg["wifi"]
        log.info("improv", "Wi-Fi %s saved" % ssid)

    def state(self):
        return improv.PROVISIONED if self.wifi.state == "connected" else improv.READY

    async def handle(self, ptype, data, send):
        if ptype != improv.RPC:
            return
        try:
            cmd, payload = improv.decode_rpc(data)
        except ValueError:
            await send(improv.encode_error(improv.INVALID_RPC))
            return
        await send(improv.encode_error(improv.NO_ERROR))
        if cmd == improv.WIFI_SETTINGS:
            await self._wifi_settings(payload, send)
        elif cmd == improv.GET_STATE:
            await send(improv.encode_state(self.state()))
            if self.state() == improv.PROVISIONED:
                await send(improv.encode_result(cmd, self.url()))
        elif cmd == improv.GET_INFO:
            await send(improv.encode_result(cmd, self.info))
        elif cmd == improv.SCAN:
            try:
                nets = self.wifi.scan()
            except OSError as e:
                log.warn("improv", "scan failed: %s" % e)
                nets = []
            for ssid, rssi, auth in nets:
                secured = "NO" if auth == "NO" else "YES"
                await send(improv.encode_result(cmd, (ssid, str(rssi), secured)))
            await send(improv.encode_result(cmd, ()))
        elif cmd == improv.DEVICE_NAME and not payload:
            await send(improv.encode_result(cmd, (self.info[3],)))
        else:
            await send(improv.encode_error(improv.UNKNOWN_RPC))

    async def _wifi_settings(self, payload, send):
        try:
            ssid, password = improv.decode_wifi(payload)
        except ValueError:
            await send(improv.encode_error(improv.INVALID_RPC))
            return
        if self.busy:
            await send(improv.encode_error(improv.UNKNOWN_ERROR))
            return
        self.busy = True
        try:
            log.info("improv", "Wi-Fi settings received for %s" % ssid)
            await send(improv.encode_state(improv.PROVISIONING))
            ok, _ = await self.wifi.join(ssid, password)
            if ok:
                self.save(ssid, password)
                await send(improv.encode_state(improv.PROVISIONED))
                await send(improv.encode_result(improv.WIFI_SETTINGS, self.url()))
            else:
                await send(improv.encode_error(improv.UNABLE_TO_CONNECT))
                await send(improv.encode_state(improv.READY))
        finally:
            self.busy = False
