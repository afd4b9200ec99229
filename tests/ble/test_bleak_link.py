"""``ble://`` (BleakLink, scan_ble) without a Bluetooth adapter: bleak replaced by a stand-in
with bleak's API (BleakScanner.find_device_by_*/discover, BleakClient connect/services/
start_notify/write_gatt_char/disconnect, mtu_size 23 as BlueZ reports it) whose client
reaches a virtual board through the emulated radio. What runs is twintap's own bleak code:
device lookup by address or name, service choice, notifications, chunking, errors."""

from __future__ import annotations

import asyncio
import types

import pytest

from twintap.tap import Tap, TapError
from twintap.tap import ble as tble
from twintap.tap.ble import FAST_SERVICE, LEGACY, LEGACY_SERVICE, VbleCentral

ADDRESS = "C0:FF:EE:00:00:01"


class FakeBleakError(Exception):
    pass


def fake_bleak(radio) -> types.SimpleNamespace:
    class Device:
        def __init__(self, address, name):
            self.address, self.name = address, name

    class Adv:
        def __init__(self, name, uuids, rssi):
            self.local_name, self.service_uuids, self.rssi = name, uuids, rssi

    board = Device(ADDRESS, "twintap-virtual")

    class Scanner:
        @staticmethod
        async def find_device_by_address(address, timeout=10.0):
            return board if address.lower() == ADDRESS.lower() else None

        @staticmethod
        async def find_device_by_filter(fn, timeout=10.0):
            return board if fn(board, Adv("twintap-virtual", [LEGACY_SERVICE], -40)) else None

        @staticmethod
        async def discover(timeout=5.0, return_adv=False, service_uuids=None):
            assert return_adv and set(service_uuids) == {LEGACY_SERVICE, FAST_SERVICE}
            other = Device("11:22:33:44:55:66", "a heart-rate belt")
            return {board.address: (board, Adv("twintap-virtual", [LEGACY_SERVICE.upper()], -40)),
                    other.address: (other, Adv(None, ["0000180d-0000-1000-8000-00805f9b34fb"],
                                               -70))}

    class Char:
        def __init__(self, uuid, handle):
            self.uuid, self.handle = uuid, handle

    class Services:
        def __init__(self, chars):
            self.chars = {c: Char(c, h) for (_, c), (h, _) in chars.items()}

        def get_characteristic(self, uuid):
            return self.chars.get(uuid)

    class Client:
        def __init__(self, device, disconnected_callback=None, timeout=30):
            assert device is board
            self.gone = disconnected_callback
            self.mtu_size = 23  # what BlueZ reports, whatever was exchanged
            self.task = None

        async def connect(self):
            self.c = VbleCentral(radio)
            self.c.connect()
            self.c.exchange_mtu(517)  # BlueZ exchanges at connection
            self.services = Services(self.c.discover())

        async def start_notify(self, char, callback):
            async def poll():
                while True:
                    try:
                        note = self.c.notification(0, char.handle)
                    except TapError:
                        self.gone(self)
                        return
                    if note is None:
                        await asyncio.sleep(0.002)
                    else:
                        callback(char, bytearray(note))

            self.task = asyncio.get_running_loop().create_task(poll())

        async def write_gatt_char(self, char, data, response=None):
            try:
                self.c.write(char.handle, bytes(data), bool(response))
            except TapError as e:
                raise FakeBleakError(str(e)) from None

        async def disconnect(self):
            if self.task:
                self.task.cancel()
            self.c.disconnect()

    return types.SimpleNamespace(BleakScanner=Scanner, BleakClient=Client)


@pytest.fixture
def bleak_board(ble_board, monkeypatch):
    fake = fake_bleak(ble_board.radio)
    monkeypatch.setattr(tble, "_bleak", lambda: (fake, FakeBleakError))
    return ble_board


def expected_serial(board) -> str:
    return "TT" + (board.flash / ".efuse").read_bytes().hex().upper()


@pytest.mark.parametrize("target", [ADDRESS, ADDRESS.lower(), "twintap-virtual"])
def test_ble_link_by_address_or_name_prefers_large_frames(bleak_board, target):
    with Tap.connect(f"ble://{target}") as tap:
        assert tap.link.service == "fast"
        assert tap.device.serial_number() == expected_serial(bleak_board)
        data = bytes(range(240))
        tap.interface.set_application_data(data)
        assert tap.interface.application_data() == data


def test_ble_link_legacy_service(bleak_board):
    with Tap.connect(f"ble://{ADDRESS}?service=legacy") as tap:
        assert tap.link.service == LEGACY
        tap.variable.write(6, "sixteen-chars-ok")
        assert tap.variable.read(6) == "sixteen-chars-ok"
        data = bytes(range(242))  # a 254-byte frame, the legacy limit
        tap.interface.set_application_data(data)
        assert tap.interface.application_data() == data
        with pytest.raises(TapError, match="254"):
            tap.interface.set_application_data(bytes(243))


def test_ble_link_errors(bleak_board):
    with pytest.raises(TapError, match="no BLE device 'nothing-here'"):
        Tap.connect("ble://nothing-here")
    with pytest.raises(TapError, match="service is legacy or fast"):
        Tap.connect(f"ble://{ADDRESS}?service=both")


def test_ble_scan_lists_only_tap_boards(bleak_board):
    (found,) = tble.scan_ble(1.0)
    assert found == {"name": "twintap-virtual", "address": ADDRESS, "rssi": -40,
                     "services": [LEGACY], "link": f"ble://{ADDRESS}"}
