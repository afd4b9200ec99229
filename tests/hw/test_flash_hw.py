"""A real ESP32 on USB, through esptool: skipped when no ESP32 serial bridge is attached.

``TWINTAP_PORT`` picks the port (default: the one board found by VID/PID). Reading the chip
is harmless; writing needs ``TWINTAP_HW_FIRMWARE=FILE.bin`` and ``TWINTAP_HW_BOARD=NAME``
(the board file), because it replaces what the board runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from twintap import TwintapError, flash, ports

pytestmark = pytest.mark.hw


@pytest.fixture(scope="module")
def port() -> str:
    wanted = os.environ.get("TWINTAP_PORT")
    if wanted:
        return wanted
    found = ports.candidates()
    if not found:
        pytest.skip("no ESP32 board on USB (set TWINTAP_PORT to name one)")
    if len(found) > 1:
        pytest.skip("several boards on USB: set TWINTAP_PORT")
    return found[0].device


def test_chip_and_flash_are_read(port):
    info = flash.chip_info(port)
    assert info["chip"].startswith("ESP32")
    assert len(info["mac"].split(":")) == 6 and info["flash"] != "unknown"


def test_flash_a_real_board(port):
    fw, board = os.environ.get("TWINTAP_HW_FIRMWARE"), os.environ.get("TWINTAP_HW_BOARD")
    if not fw or not board:
        pytest.skip("set TWINTAP_HW_FIRMWARE and TWINTAP_HW_BOARD to write a firmware")
    try:
        res = flash.flash(port, board, Path(fw))
    except TwintapError as e:
        pytest.fail(str(e))
    assert res.verified and res.size == Path(fw).stat().st_size


def test_deploy_romfs_to_a_real_board(port):
    # needs MicroPython 1.25+ with a ROMFS partition on the board (TWINTAP_HW_ROMFS=1 says so)
    board = os.environ.get("TWINTAP_HW_BOARD")
    if not board or os.environ.get("TWINTAP_HW_ROMFS") != "1":
        pytest.skip("set TWINTAP_HW_BOARD and TWINTAP_HW_ROMFS=1 to write the ROMFS partition")
    from twintap import deploy
    from twintap.repl import BoardRepl

    res = deploy.deploy(port, board, romfs=True, say=lambda line: None)
    assert res.target.endswith("in ROMFS")
    with BoardRepl(port) as repl:
        f = deploy.facts(repl)
        where = repl.exec("import twintap.app; print(twintap.app.__file__)")
    assert not any(p.startswith("lib/twintap/") for p in f["files"])
    assert where.strip().startswith("/rom/lib/twintap/")
