# Getting a board on its feet, and telling how it is doing (config.json is read and checked,
# and provisioned Tap users applied, by the boot-only bootcfg.py):
#   - safe mode: why the board runs without (part of) its configuration, said at every boot;
#   - Wi-Fi joined from config.json "wifi", or given over Improv Wi-Fi (links/improv.py);
#   - status(): what `twintap doctor` reads from the REPL (put together by status.py).
# Hardware comes from the injected platform (platform.wifi(board)); nothing is imported here.
import asyncio

from . import VERSION, log

CONFIG = "config.json"
_app = None  # the running App, for status() from the REPL
_safe = None  # why the board runs in safe mode (None: it does not)


def safe_mode(why):
    # called by boot.py at every boot
    global _safe
    _safe = why
    if why:
        say = log.warn if why.startswith("not provisioned") else log.error
        say("main", "safe mode: " + why + " (Tap stays available)")


class Wifi:
    # One station: join with a timeout, keep the configured network, report its state.
    ssid = ""  # (class defaults until the first join)
    ip = ""
    error = ""
    joining = False

    def __init__(self, driver):
        self.drv = driver
        self.state = "absent" if driver is None else "idle"

    async def join(self, ssid, password, timeout_ms=20000):
        # -> (True, "") once connected, or (False, why); never raises
        if self.drv is None:
            return False, "this board has no Wi-Fi"
        self.state = "connecting"
        self.ssid = ssid
        self.joining = True
        log.info("wifi", "joining %s" % ssid)
        try:
            self.drv.connect(ssid, password)
            waited = 0
            while waited < timeout_ms:
                st = self.drv.status()
                if st == "connected":
                    self.state = "connected"
                    self.error = ""
                    self.ip = self.drv.ip()
                    log.info("wifi", "connected to %s, ip %s" % (ssid, self.ip))
                    return True, ""
                if st not in ("connecting", "idle"):
                    return self._failed(ssid, st)
                await asyncio.sleep_ms(100)
                waited += 100
            return self._failed(ssid, "no connection within %d s" % (timeout_ms // 1000))
        except (OSError, ValueError) as e:
            return self._failed(ssid, str(e))
        finally:
            self.joining = False

    def _failed(self, ssid, why):
        self.state = "failed"
        self.error = why
        self.ip = ""
        log.warn("wifi", "cannot join %s: %s" % (ssid, why))
        return False, why

    async def keep(self, creds):
        # join the configured network (creds() -> {"ssid", "password"} or None), retrying
        # with backoff, and watch the link; Improv may change the network meanwhile
        wait = 5000
        while True:
            w = creds()
            if w and not self.joining and (self.state != "connected" or self.ssid != w["ssid"]):
                ok, _ = await self.join(w["ssid"], w.get("password", ""))
                if not ok:
                    await asyncio.sleep_ms(wait)
                    wait = min(wait * 2, 60000)
                    continue
                wait = 5000
            await asyncio.sleep_ms(2000)
            if self.state == "connected" and not self.joining and self.drv.status() != "connected":
                self.state = "lost"
                log.warn("wifi", "lost %s" % self.ssid)

    def scan(self):
        return self.drv.scan() if self.drv is not None else []


class Onboard:
    # What the App gets from this module: Wi-Fi, Improv on its links.
    improv = None
    tcp_port = 0

    def __init__(self, app):
        global _app
        _app = app
        self.app = app
        board = app.board
        drv = None
        if hasattr(app.platform, "wifi"):
            try:
                drv = app.platform.wifi(board)
            except (OSError, ImportError) as e:
                log.error("wifi", "no station: %s" % e)
        self.wifi = Wifi(drv)
        name = board.get("ble_name") or board.get("name") or "twintap"
        serial = ""
        try:
            serial = "".join("%02X" % b for b in app.platform.unique_id()[-2:])
        except (OSError, AttributeError):
            pass
        hw = board.get("name", app.platform.name)
        if board.get("chip"):
            hw = hw + "/" + board["chip"]
        # Improv needs Wi-Fi; its service (links/improv.py) is made for the first serial link
        info = ("twintap", VERSION, hw, name + ("-" + serial if serial else ""))
        self._improv_info = info if drv else None

    def _improv(self):
        # (its URL and the saving of what it is given live in links/improv.py, with it)
        if self.improv is None and self._improv_info is not None:
            from .links.improv import ImprovService

            self.improv = ImprovService(self)
        return self.improv

    def uart_link(self, port, dispatcher):
        # the Tap UART link, with Improv frames taken out of it when this board has Wi-Fi
        svc = self._improv()
        if svc is None:
            from .links.uart import uart_link

            return uart_link(port, dispatcher)
        from .links.improv import tap_uart_link

        return tap_uart_link(port, dispatcher, svc)

    def tasks(self, tcp_port=0):
        # background tasks to run on the app's loop
        self.tcp_port = tcp_port
        out = []
        if self.wifi.drv is not None:
            out.append(asyncio.create_task(self.wifi.keep(lambda: self.app.config.get("wifi"))))
        if getattr(self.app.platform, "improv_console", False) and self._improv() is not None:
            from .links.improv import serve_console

            out.append(asyncio.create_task(serve_console(self.improv)))
        return out


def status():
    # everything `twintap doctor` reports; status.py is loaded for the call only
    from . import forget
    from .status import report

    try:
        return report()
    finally:
        forget("status")
