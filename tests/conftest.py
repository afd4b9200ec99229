"""Shared fixtures: virtual boards started as real `twintap vboard run` processes.

Every process a test starts is stopped by its own id at teardown; readiness is a READY line
on stdout, never a sleep.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from twintap.vboard import free_port

# the bench broker and platform fixtures (bench, platform, clients, own_broker), for every
# test directory
pytest_plugins = ["tests.rpz.fixtures"]

REPO = Path(__file__).resolve().parents[1]
READY_RE = re.compile(
    r"^READY tcp=(?P<tcp>\S+) uart=(?P<uart>\S+)(?: repl=(?P<repl>\S+))?(?: ble=(?P<ble>\S+))?$"
)


class BoardProcess:
    """A `twintap vboard run` subprocess, with its output collected line by line."""

    def __init__(self, flash: Path, *extra: str, tcp_port: int | None = None) -> None:
        self.flash = flash
        self.tcp_port = tcp_port or free_port()
        self.args = [
            sys.executable, "-m", "twintap", "vboard", "run", "--dir", str(flash),
            "--tcp-port", str(self.tcp_port), *extra,
        ]
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.wait_for(READY_RE)

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            self._q.put(line)
        self._q.put(None)

    def wait_for(self, pattern: re.Pattern | str, timeout: float = 20.0) -> re.Match:
        """Wait for an output line matching ``pattern``; fail the test on EOF or timeout."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {rx.pattern!r}; output: {self.lines}")
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"board exited before {rx.pattern!r}; output: {self.lines}")
            m = rx.search(line)
            if m:
                return m

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def start_board(tmp_path):
    """Factory: ``start_board(*extra_args, flash=...)`` -> BoardProcess (stopped at teardown)."""
    started: list[BoardProcess] = []

    def start(*extra: str, flash: Path | None = None) -> BoardProcess:
        b = BoardProcess(flash or tmp_path / "flash", *extra)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def micropython_pids_in(flash: Path) -> list[int]:
    """Ids of live micropython processes whose working directory is ``flash``."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if os.readlink(d / "cwd") == str(flash.resolve()) and "micropython" in (
                d / "cmdline"
            ).read_bytes().decode(errors="replace"):
                pids.append(int(d.name))
        except OSError:
            continue
    return pids
