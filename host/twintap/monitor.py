"""``twintap monitor``: the board's log, coloured by level, surviving resets and replugs.

Lines look like ``[E][tag] message`` (E error, W warning, I info, D debug): errors red,
warnings yellow, info plain, debug dim. When the port goes away (a native-USB board resets,
a cable is pulled, a virtual board restarts) the monitor says so and reopens it as soon as it
is back. Improv Wi-Fi packets on the console are not shown. The port is opened without
touching DTR/RTS, so watching a board never resets it. :class:`Console` is the same reader for
other commands (``provision --verify`` classifies the board's lines with it).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator

import serial

from twintap import TwintapError, ports

LEVEL_RE = re.compile(r"^\[([EWID])\]")
_AFTER_PROMPT = re.compile(r"^[>\s]{1,8}(?=\[[EWID]\]\[)")  # ">>> [I][app] ..." after a reset
COLOURS = {"E": "\033[31m", "W": "\033[33m", "I": "", "D": "\033[2m"}
RESET = "\033[0m"
LEVELS = "EWID"


def level_of(line: str) -> str | None:
    """``E``, ``W``, ``I``, ``D`` for a log line, None for other output."""
    m = LEVEL_RE.match(line)
    return m.group(1) if m else None


def colour(line: str, enabled: bool = True) -> str:
    """The line with its level's colour (when ``enabled``)."""
    lvl = level_of(line)
    if not enabled or not lvl or not COLOURS[lvl]:
        return line
    return COLOURS[lvl] + line + RESET


class Console:
    """Lines from a board's console (a serial port, a pty or a URL), reconnecting.

    ``ser`` may be an already open pyserial object (kept on, e.g. after a reset through
    :class:`twintap.repl.BoardRepl`). ``status`` receives ``lost``/``back`` notices.
    """

    def __init__(self, port: str, baud: int = 115200, ser=None,
                 status: Callable[[str], None] | None = None) -> None:
        self.port = port
        self.baud = baud
        self.ser = ser
        self.status = status or (lambda text: None)
        self.buf = b""
        self.lost = False
        if ser is not None:
            ser.timeout = 0.1  # never block past a deadline (mpremote opens with None)

    def _open(self) -> bool:
        try:
            self.ser = ports.open_port(self.port, self.baud, timeout=0.1)
            return True
        except TwintapError:
            return False

    def _drop(self, why: str) -> None:
        if self.ser is not None:
            try:
                self.ser.close()
            except (OSError, serial.SerialException):
                pass
        self.ser = None
        self.lost = True
        self.status(f"{self.port}: {why}; waiting for it to come back")

    def read_line(self, deadline: float | None = None) -> str | None:
        """The next line, or None at ``deadline`` (time.monotonic()); None = no deadline."""
        while True:
            if b"\n" in self.buf:
                raw, self.buf = self.buf.split(b"\n", 1)
                line = raw.rstrip(b"\r").decode("utf-8", "replace")
                if line.startswith("IMPROV"):
                    continue
                return _AFTER_PROMPT.sub("", line)
            if deadline is not None and time.monotonic() >= deadline:
                return None
            if self.ser is None:
                if not self._open():
                    time.sleep(0.2)
                    continue
                if self.lost:
                    self.lost = False
                    self.status(f"{self.port}: back")
            try:
                chunk = self.ser.read(self.ser.in_waiting or 1)
            except (OSError, serial.SerialException) as e:
                self._drop(str(e).split(":")[0] or "disconnected")
                continue
            if chunk:
                self.buf += chunk
            elif "://" not in self.port and not os.path.exists(self.port):
                self._drop("gone")

    def lines(self, deadline: float | None = None) -> Iterator[str]:
        """Lines until ``deadline`` (forever when None)."""
        while True:
            line = self.read_line(deadline)
            if line is None:
                return
            yield line

    def close(self) -> None:
        if self.ser is not None:
            try:
                self.ser.close()
            except (OSError, serial.SerialException):
                pass
            self.ser = None


def run(args) -> int:
    """``twintap monitor``: print the board's log until Ctrl-C."""
    port = ports.resolve(args.port)
    use_colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    floor = LEVELS.index(args.level) if args.level else len(LEVELS)

    def notice(text: str) -> None:
        print(colour(f"[W][monitor] {text}", use_colour), flush=True)

    con = Console(port, args.baud, status=notice)
    try:
        con.ser = ports.open_port(port, args.baud, timeout=0.1)  # busy or gone: said here
    except TwintapError as e:
        if "busy" in str(e) or "permission" in str(e):
            raise
        con.lost = True  # not there yet: wait for it
    print(f"--- twintap monitor on {port} (Ctrl-C to quit) ---", flush=True)
    try:
        for line in con.lines():
            lvl = level_of(line)
            if lvl and LEVELS.index(lvl) > floor:
                continue
            print(colour(line, use_colour), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        con.close()
    return 0


def add_parser(sub) -> None:
    """Register ``twintap monitor``."""
    p = sub.add_parser("monitor", help="show the board's log, coloured, across resets")
    p.add_argument("--port", "-p", help="serial port or REPL pty (default: the one board)")
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the levels (auto: on a terminal)")
    p.add_argument("--level", choices=list(LEVELS),
                   help="hide lines below this level (E, W, I, D)")
    p.set_defaults(func=run)
