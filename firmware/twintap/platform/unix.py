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
