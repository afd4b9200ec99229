"""Fixtures for the companion commands (flash, deploy, provision, doctor, monitor) against
virtual boards reached through their REPL pty, the way a user reaches a real board through
its USB serial port. The bench broker and platform fixtures (``bench``, ``platform``) for
``--verify`` come from tests/rpz/fixtures.py, which tests/conftest.py loads for every test.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import serial

REPO = Path(__file__).resolve().parents[2]

# `fakeesp://NAME` ports: an emulated ESP32 ROM bootloader (tests/companion/urlhandler)
if "tests.companion.urlhandler" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("tests.companion.urlhandler")


def twintap(*args: object, timeout: float = 90.0) -> subprocess.CompletedProcess:
    """``twintap ARGS`` in this interpreter, to completion (stdout and stderr as text)."""
    return subprocess.run([sys.executable, "-m", "twintap", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.fixture
def repl_board(start_board, tmp_path):
    """Factory: ``repl_board(name="b", *extra)`` -> a virtual board with a REPL pty
    (``b.repl``) and a UART pty (``b.uart``), stopped at teardown."""

    def start(name: str = "board", *extra: str):
        b = start_board("--repl", str(tmp_path / f"{name}.repl"),
                        "--uart", str(tmp_path / f"{name}.uart"), *extra,
                        flash=tmp_path / name)
        b.repl = tmp_path / f"{name}.repl"
        b.uart = tmp_path / f"{name}.uart"
        return b

    return start


def ready_again(board, timeout: float = 20.0) -> re.Match:
    """Wait for the board's next READY line (after a reset)."""
    return board.wait_for(r"^READY ", timeout)
