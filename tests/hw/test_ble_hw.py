"""A real board over BLE, through bleak: skipped when this machine has no Bluetooth adapter
or no twintap board advertises in range.

``TWINTAP_BLE=NAME-or-ADDRESS`` picks the board; otherwise the strongest one a scan finds.
The test writes the board's application data (``/1024//36``) and puts it back."""

from __future__ import annotations

import os

import pytest

from twintap.tap import Tap, TapError
from twintap.tap.ble import FAST, LEGACY, adapter_present, scan_ble

pytestmark = pytest.mark.hw


@pytest.fixture(scope="module")
def target() -> str:
    if not adapter_present():
        pytest.skip("no Bluetooth adapter on this machine")
    wanted = os.environ.get("TWINTAP_BLE")
    if wanted:
        return wanted
    try:
        found = scan_ble(5.0)
    except TapError as e:
        pytest.skip(f"BLE scan impossible here: {e}")
    if not found:
        pytest.skip("no Tap board advertising in range (set TWINTAP_BLE to name one)")
    return found[0]["address"]


@pytest.mark.parametrize("service", [FAST, LEGACY])
def test_real_board_over_ble(target, service):
    with Tap.connect(f"ble://{target}?service={service}", timeout=4.0) as tap:
        assert tap.link.service == service
        serial = tap.device.serial_number()
        assert serial.startswith("TT") and len(serial) == 14
        before = tap.interface.application_data()
        data = bytes(range(200)) if service == LEGACY else bytes(range(100))
        try:
            tap.interface.set_application_data(data)
            assert tap.interface.application_data() == data
        finally:
            tap.interface.set_application_data(before)
