# The unix port as a board (the virtual board): the working directory is the flash, a pty
# stands in for the UART, and the "efuse" chip id is a file that factory reset never erases.
import gc
import os
import sys

REBOOT_EXIT = 75  # exit status that asks the virtual-board supervisor to start us again
_EFUSE = ".efuse"


class Platform:
    name = "unix"

    def __init__(self):
        self._uid = None

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

    def mem_free(self):
        return gc.mem_free()

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

    def reset(self):
        sys.exit(REBOOT_EXIT)


class _Sine:
    # simulated sensor: min..max over period_s, with a little noise
    def __init__(self, spec):
        import math
        import time

        self._sin = math.sin
        self._time = time
        self.lo = float(spec.get("min", 0.0))
        self.hi = float(spec.get("max", 1.0))
        self.period = float(spec.get("period_s", 60))

    def read(self):
        t = self._time.time()
        mid = (self.lo + self.hi) / 2
        amp = (self.hi - self.lo) / 2
        noise = (os.urandom(1)[0] - 128) / 128 * amp * 0.02
        v = mid + amp * self._sin(2 * 3.141592653589793 * t / self.period) + noise
        return round(min(self.hi, max(self.lo, v)), 2)


class _Counter:
    def __init__(self, spec):
        self.n = int(spec.get("start", 0))

    def read(self):
        self.n += 1
        return self.n


def _source(spec):
    if not spec:
        return None
    sim = spec.get("sim")
    if sim == "sine":
        return _Sine(spec)
    if sim == "counter":
        return _Counter(spec)
    return None  # pins, ADC, sensors: the virtual board keeps the value in memory


Platform.source = staticmethod(_source)
