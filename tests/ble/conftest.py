"""Fixtures for the BLE tests: virtual boards with the emulated radio (``--ble PATH``).

The radio's unix socket lives in a short directory of its own under the system temporary
directory (a socket path has at most 107 bytes; pytest's tmp_path can be longer).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def radio_path():
    d = Path(tempfile.mkdtemp(prefix="ttble-"))
    yield d / "radio.sock"
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def ble_board(start_board, radio_path):
    """A virtual board serving Tap over TCP and over the emulated BLE radio."""
    b = start_board("--ble", str(radio_path))
    b.radio = radio_path
    return b
