# The application: builds the twin, the Tap configuration, the dispatcher and the links from
# the board file and the configuration, with hardware objects injected by main.py (platform,
# UART), then serves everything on one asyncio loop.
import asyncio
import gc
import time

from . import log
from .links.tcp import TcpServer
from .proto import values
from .tap import auth, device, groups, interface, target, variables
from .tap.config import TapConfig
from .tap.dispatcher import Dispatcher
from .twin import Prop, Twin, TwinError, parse_rwx

_REBOOT_DELAY_MS = 200  # let the response to /3//4 or /3//5 leave first
_SAMPLE_MAX_SLEEP_MS = 1000
_GC_EVERY_MIN = 1024  # bytes allocated between collections, at the least (see run())


def serve(main):
    # run the app's main task (from boot.main) until it ends or a KeyboardInterrupt
    try:
        asyncio.run(main)
    except KeyboardInterrupt:
        pass
    finally:
        asyncio.new_event_loop()
        print("STOPPED")


class App:
    ble = None
    tcp = None
    rpz = None

    def __init__(self, platform, board, config, uart=None, uart_name=None, ble=None,
                 ble_label=None):
        self.platform = platform
        self.board = board
        self.config = config
        self.uart = uart
        self.uart_name = uart_name
        boot_ms = time.ticks_ms()
        # board-file properties, then those the configuration adds -> twin entries, with
        # their sources from the platform
        self.twin = twin = Twin()
        for d in board.get("properties", []) + config.get("properties", []):
            p = Prop(
                d["id"], d["name"], values.type_code(d["type"]), d.get("count", 1),
                parse_rwx(d.get("rwx", "r")), d.get("unit", ""), d.get("bundle", 0),
                d.get("persist", False), platform.source(d.get("source")), True, d.get("value"),
            )
            if d.get("sample_ms"):  # (most properties keep the class defaults: 0)
                p.sample_ms = d["sample_ms"]
            if d.get("deadband"):
                p.deadband = d["deadband"]
            twin.add(p)
        board.pop("properties", None)  # built: their heap comes back before the rest loads
        config.pop("properties", None)
        self.tapcfg = TapConfig(self.twin, board)
        self.system = device.System(platform, self.reboot, self.factory_reset)
        self.dispatcher = d = Dispatcher()
        protocols = interface.WIFI | interface.UART
        self.ble_label = ble_label
        if ble:  # (radio, UUID type) from the platform
            from .links.ble import PREFERRED_MTU, BleLink

            name = str(config.get("ble_name") or board.get("ble_name") or "twintap")
            mtu = board.get("ble_mtu", PREFERRED_MTU)
            self.ble = BleLink(ble[0], ble[1], d, name, mtu, board.get("ble_piece", 0))
            protocols |= interface.BLE
        device.mount(d, self.system, board)
        interface.mount(d, self.tapcfg, protocols, boot_ms)
        variables.mount(d, self.twin, self.tapcfg)
        groups.mount(d, self.tapcfg)
        auth.mount(d, auth.Auth(self.tapcfg, config.get("tap", {})))
        target.mount(d)
        rpz_cfg = config.get("rpz")
        if rpz_cfg and rpz_cfg.get("app_id"):
            from .rpz.client import RpzClient

            attrs = {
                "make": "twintap",
                "model": board.get("name", platform.name),
                "manufacturer": board.get("manufacturer", "Espressif"),
                "serial": device.serial_number(platform.unique_id()),
                "firmware": device.firmware_version(),
            }
            attrs.update(rpz_cfg.get("attributes", {}))
            try:
                self.rpz = RpzClient(rpz_cfg, self.twin, attrs, {"identify": self.identify})
            except (OSError, ValueError, KeyError) as e:
                log.error("rpz", "not started, configuration: %s" % e)
        from .onboard import Onboard  # Wi-Fi, Improv, provisioned users, doctor status

        self.onboard = Onboard(self)
        # the board file is built into the objects above: only what is read later stays
        # (about 2 KB of dicts for a board file like the virtual board's come back)
        url = board.get("improv_url")
        board.clear()
        if url is not None:
            board["improv_url"] = url

    def reboot(self):
        log.info("app", "reboot requested")
        asyncio.create_task(self._later(self.platform.reset))

    def factory_reset(self):
        log.warn("app", "factory reset: configuration and stored values erased")
        self.tapcfg.factory_reset()
        self.twin.reset_values()
        asyncio.create_task(self._later(self.platform.reset))

    def identify(self, times):
        # EXEC "identify": blink the LED `times` times (default 3) so a person finds the board
        n = times if isinstance(times, int) and 0 < times <= 20 else 3
        led = self.twin.by_name.get("led")
        if led is not None:
            asyncio.create_task(self._blink(led, n))
        return n

    async def _blink(self, led, n):
        before = led.value
        for i in range(2 * n):
            self.twin.write(led, not led.value, "system", False)
            await asyncio.sleep_ms(150)
        self.twin.write(led, before, "system", False)

    async def _later(self, fn):
        await asyncio.sleep_ms(_REBOOT_DELAY_MS)
        fn()

    async def sample(self):
        # Read every sourced property when its sampling period is due, and sleep until the
        # next one is (1 s at most: a period changed meanwhile is taken within a second)
        due = {}
        while True:
            now = time.ticks_ms()
            wait = _SAMPLE_MAX_SLEEP_MS
            for p in self.twin.props.values():
                if not p.sample_ms or p.source is None or not hasattr(p.source, "read"):
                    continue
                left = time.ticks_diff(due.get(p.id, now), now)
                if left > 0:
                    wait = min(wait, left)
                    continue
                due[p.id] = time.ticks_add(now, p.sample_ms)
                wait = min(wait, p.sample_ms)
                try:
                    self.twin.sample(p, p.source.read())
                except (TwinError, OSError, ValueError, MemoryError) as e:
                    log.warn("sensor", "%s: %s" % (p.name, e))  # (next period: again)
            await asyncio.sleep_ms(wait)

    async def run(self, tcp_host="0.0.0.0", tcp_port=2000):
        tasks = [asyncio.create_task(self.sample())]
        if tcp_port:
            self.tcp = TcpServer(self.dispatcher, tcp_host, tcp_port)
            await self.tcp.start()
        if self.uart is not None:
            link = self.onboard.uart_link(self.uart, self.dispatcher)  # Tap (+ Improv)
            tasks.append(asyncio.create_task(link.serve()))
        if self.ble is not None:
            try:
                self.ble.start()
                tasks.append(asyncio.create_task(self.ble.serve()))
            except (OSError, ValueError) as e:
                log.error("ble", "not started: %s" % e)
                self.ble = None
        if self.rpz is not None:
            tasks.append(asyncio.create_task(self.rpz.run()))
        tasks += self.onboard.tasks(tcp_port)
        gc.collect()
        # from here on a collection also runs each time a twelfth of the free heap has been
        # allocated, not only when the heap is exhausted: what comes and goes after start-up
        # (connections, requests, events) then leaves fewer holes among what stays
        # (gc.threshold, MicroPython's heuristic against fragmentation). The fraction is make
        # bench's: at --heap 96K a quarter (3.6 KB) left the deployed board short of a 250-byte
        # block after 100 requests; with 60 KB free it means a collection every 5 KB.
        gc.threshold(max(_GC_EVERY_MIN, gc.mem_free() // 12))
        ble = " ble=%s" % self.ble_label if self.ble else ""
        print("READY tcp=%s uart=%s%s" % (tcp_port or "-", self.uart_name or "-", ble))
        log.info("app", "heap free %d" % gc.mem_free())
        try:
            while True:
                await asyncio.sleep(3600)
        finally:
            if self.tcp:
                self.tcp.close()
            for t in tasks:
                t.cancel()
