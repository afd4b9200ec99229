# The unix port as a board (the virtual board): the working directory is the flash, a pty
# stands in for the UART, and the "efuse" chip id is a file that factory reset never erases.
import gc
import math
import os
import sys
import time

REBOOT_EXIT = 75  # exit status that asks the virtual-board supervisor to start us again
REBOOT_LINE = "[I][platform] rebooting"
_EFUSE = ".efuse"


class Platform:
    name = "unix"
    _uid = None
    mem_free = staticmethod(gc.mem_free)

    def unique_id(self):
        if self._uid is None:
            try:
                with open(_EFUSE, "rb") as f:
                    self._uid = f.read(6)
            except OSError:
                self._uid = b""
            if len(self._uid) != 6:
                self._uid = bytes(os.urandom(6))
                with open(_EFUSE, "wb") as f:
                    f.write(self._uid)
        return self._uid

    def open_uart(self, board_uart, path):
        # A tty in raw mode with VMIN=0/VTIME=0, so that read(n) returns what is there
        # instead of blocking until n bytes (MicroPython's file read loops until n).
        if not path:
            return None
        import termios

        f = open(path, "r+b")
        fd = f.fileno()
        termios.setraw(fd)
        attr = termios.tcgetattr(fd)
        attr[6][5] = 0  # VTIME
        attr[6][6] = 0  # VMIN
        termios.tcsetattr(fd, termios.TCSANOW, attr)
        return f

    def open_ble(self, path):
        # the emulated BLE radio on a unix socket (platform/vradio.py) and its UUID type
        if not path:
            return None
        from .vradio import UUID, Radio

        return Radio(path, self.unique_id()), UUID

    def reset(self):
        # The supervisor restarts a board that exits with REBOOT_EXIT. Under `micropython -i`
        # (a REPL attached) SystemExit would only drop to the REPL, so say it on the console
        # as well: the supervisor restarts the process when it reads this line.
        print(REBOOT_LINE)
        sys.exit(REBOOT_EXIT)


class _Sim:
    # simulated sensor: "sine", min..max over period_s with a little noise; or "counter"
    sine = None  # (min, max, period_s) for a sine

    def __init__(self, spec):
        if spec["sim"] == "sine":
            self.sine = (float(spec.get("min", 0.0)), float(spec.get("max", 1.0)),
                         float(spec.get("period_s", 60)))
        else:
            self.n = int(spec.get("start", 0))

    def read(self):
        if self.sine is None:
            self.n += 1
            return self.n
        lo, hi, period = self.sine
        mid = (lo + hi) / 2
        amp = (hi - lo) / 2
        noise = (os.urandom(1)[0] - 128) / 128 * amp * 0.02
        v = mid + amp * math.sin(2 * 3.141592653589793 * time.time() / period) + noise
        return round(min(hi, max(lo, v)), 2)


def _source(spec):
    if not spec:
        return None
    if spec.get("sim") in ("sine", "counter"):
        return _Sim(spec)
    return None  # pins, ADC, sensors: the virtual board keeps the value in memory


Platform.source = staticmethod(_source)


# -- simulated Wi-Fi for twintap.onboard (Improv tests): the board file's "sim_wifi" ---------
# {"networks": [{"ssid", "rssi", "auth"}], "ssid": S, "password": P}: scan lists the
# networks; joining S with P (or an open network) succeeds after a short delay, anything else
# fails as a real station would (wrong password, network not found).
class _SimWifi:
    def __init__(self, spec):
        self.spec = spec
        self.want = None  # (ssid, password, ticks_ms when asked)
        self.connected = False

    def scan(self):
        return [(n["ssid"], n.get("rssi", -60), n.get("auth", "WPA2"))
                for n in self.spec.get("networks", ())]

    def connect(self, ssid, password):
        self.want = (ssid, password, time.ticks_ms())
        self.connected = False

    def status(self):
        if self.want is None:
            return "idle"
        if self.connected:
            return "connected"
        ssid, password, since = self.want
        if time.ticks_diff(time.ticks_ms(), since) < self.spec.get("delay_ms", 300):
            return "connecting"
        net = None
        for n in self.spec.get("networks", ()):
            if n["ssid"] == ssid:
                net = n
        if net is None:
            return "network not found"
        if net.get("auth", "WPA2") != "NO" and (
            ssid != self.spec.get("ssid") or password != self.spec.get("password")
        ):
            return "wrong password"
        self.connected = True
        return "connected"

    def ip(self):
        return "127.0.0.1"

    def rssi(self):
        for n in self.spec.get("networks", ()):
            if self.want and n["ssid"] == self.want[0]:
                return n.get("rssi")
        return None


def _wifi(self, board):
    spec = board.get("sim_wifi")
    return _SimWifi(spec) if spec else None


Platform.wifi = _wifi
Platform.improv_console = False  # the console is the REPL pty: Improv is on the UART pty
