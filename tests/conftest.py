"""Shared fixtures: virtual boards started as real `twintap vboard run` processes.

Every process a test starts is stopped by its own id at teardown; readiness is a READY line
on stdout, never a sleep.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.procs import LineProcess
from twintap.vboard import free_port

# the bench broker and platform fixtures (bench, platform, clients, own_broker), for every
# test directory
pytest_plugins = ["tests.rpz.fixtures"]

REPO = Path(__file__).resolve().parents[1]
READY_RE = re.compile(
    r"^READY tcp=(?P<tcp>\S+) uart=(?P<uart>\S+)(?: repl=(?P<repl>\S+))?(?: ble=(?P<ble>\S+))?$"
)


class BoardProcess(LineProcess):
    """A `twintap vboard run` subprocess, with its output collected line by line."""

    def __init__(self, flash: Path, *extra: str, tcp_port: int | None = None) -> None:
        self.flash = flash
        self.tcp_port = tcp_port or free_port()
        super().__init__(
            [sys.executable, "-m", "twintap", "vboard", "run", "--dir", str(flash),
             "--tcp-port", str(self.tcp_port), *extra],
            READY_RE, 20.0,
        )


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
