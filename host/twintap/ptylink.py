"""Pty pairs joined back to back, as ``socat PTY,link=A PTY,link=B`` does.

A virtual board opens one end (its "UART" or its console) and a user tool (mpremote,
pyserial, ``twintap tap``) opens the other through a stable symlink. Bytes nobody reads are
dropped when a pty buffer is full, as on a UART with nothing attached; the board never
blocks on its console.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import select
import termios
import threading
import tty
from collections.abc import Callable
from pathlib import Path


def _nonblock(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


def _write_some(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    except OSError as e:  # full buffer or nobody there: drop, like a UART
        if e.errno not in (errno.EAGAIN, errno.EIO):
            raise


class Pty:
    """One pty pair; the slave stays open here so that the link survives its users."""

    def __init__(self, raw: bool = True, signals: bool = False) -> None:
        # raw: no echo, no line editing, no output processing. `signals` keeps ISIG so that
        # a Ctrl-C byte interrupts the process that has this pty as its terminal (a board's
        # console: mpremote stops main.py this way, as on a real board's USB serial).
        self.master, self.slave = pty.openpty()
        self.path = os.ttyname(self.slave)
        if raw:
            tty.setraw(self.slave)
        if signals:
            attr = termios.tcgetattr(self.slave)
            attr[3] |= termios.ISIG
            termios.tcsetattr(self.slave, termios.TCSANOW, attr)
        _nonblock(self.master)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class PtyBridge:
    """Two pty pairs, ``board`` and ``user``, with bytes copied between their masters.

    ``link`` is a symlink to the user's end. ``tap_output`` sees every chunk the board writes
    (the virtual board reads its console this way).
    """

    def __init__(
        self,
        link: Path | None,
        board_signals: bool = False,
        tap_output: Callable[[bytes], None] | None = None,
    ) -> None:
        self.board = Pty(raw=True, signals=board_signals)
        self.user = Pty(raw=True)
        self.link = Path(link) if link else None
        self.tap_output = tap_output
        if self.link:
            if self.link.is_symlink() or self.link.exists():
                self.link.unlink()
            self.link.parent.mkdir(parents=True, exist_ok=True)
            self.link.symlink_to(self.user.path)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._pump, name="pty-bridge", daemon=True)
        self._thread.start()

    @property
    def user_path(self) -> str:
        return str(self.link) if self.link else self.user.path

    def _pump(self) -> None:
        b, u = self.board.master, self.user.master
        while True:
            try:
                ready, _, _ = select.select([b, u, self._stop_r], [], [])
            except OSError:
                return
            if self._stop_r in ready:
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError as e:
                    if e.errno in (errno.EAGAIN, errno.EIO):
                        continue
                    return
                if not data:
                    continue
                if fd == b:
                    if self.tap_output:
                        self.tap_output(data)
                    _write_some(u, data)
                else:
                    _write_some(b, data)

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=2)
        os.close(self._stop_r)
        os.close(self._stop_w)
        self.board.close()
        self.user.close()
        if self.link and self.link.is_symlink():
            self.link.unlink()
