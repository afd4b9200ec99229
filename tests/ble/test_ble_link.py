"""Tap over the emulated BLE link: virtual boards started with ``--ble PATH`` and driven by
the host's emulated central (``vble://``), on both GATT services, at MTU 23 and 247 (and
517, which the board caps at its own 263), with frames close to 255 bytes, a corrupted
checksum, a central that leaves mid-frame, one central at a time, the ATT rules the
emulated radio enforces, the CLI (``tap scan``, ``tap --link vble://``) and a reboot."""

from __future__ import annotations

import subprocess
import sys

import pytest

from twintap.proto import blechunk, frame, tapcodes, vble
from twintap.tap import MULTI_ANYTHING, Tap, TapError
from twintap.tap.ble import LEGACY, VbleCentral, scan_vble

LABEL = 6  # boards/unix.json: label, ascii[16]
BOARD_MTU = 263
CASES = [(LEGACY, 23), (LEGACY, 247), ("fast", 247), ("fast", 517)]


def url(board, service: str, mtu: int) -> str:
    return f"vble://{board.radio}?service={service}&mtu={mtu}"


def expected_serial(board) -> str:
    return "TT" + (board.flash / ".efuse").read_bytes().hex().upper()


def app_data_size(service: str, mtu: int) -> int:
    """The longest application data a PUT can carry on this link (12 bytes of APDU header)."""
    if service == LEGACY:
        return blechunk.MAX_FRAME - 12  # 242: a 254-byte frame
    return min(frame.MAX_PAYLOAD, min(mtu, BOARD_MTU) - 3 - 12)


def central(board, mtu: int | None = None) -> VbleCentral:
    c = VbleCentral(board.radio)
    c.connect()
    if mtu:
        c.exchange_mtu(mtu)
    c.discover()
    return c


def legacy_exchange(c: VbleCentral, packets: list[bytes], timeout: float = 3.0) -> list[bytes]:
    """Write raw legacy packets; return the notified packets up to the one at offset 0."""
    h = c.handle(LEGACY)
    for p in packets:
        c.write(h, p)
    got = []
    while not got or got[-1][0] != 0:
        note = c.notification(timeout, h)
        assert note is not None, f"no complete answer; got {got}"
        got.append(note)
    return got


def get_apdu(path: str) -> bytes:
    return frame.encode_request(frame.GET, *frame.parse_path(path))


def twintap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twintap", *args], capture_output=True,
                          text=True, timeout=60)


def test_ready_line_scan_and_cli(ble_board):
    assert ble_board.ready["ble"] == str(ble_board.radio)
    (found,) = scan_vble(ble_board.radio)
    assert found["name"] == "twintap-virtual" and found["services"] == [LEGACY]
    r = twintap("tap", "scan", "--vble", str(ble_board.radio))
    assert r.returncode == 0, r.stderr
    assert "twintap-virtual" in r.stdout and f"vble://{ble_board.radio}" in r.stdout
    r = twintap("tap", "--link", f"vble://{ble_board.radio}", "info")
    assert r.returncode == 0, r.stderr
    assert expected_serial(ble_board) in r.stdout


@pytest.mark.parametrize("service,mtu", CASES)
def test_services_and_mtus_with_frames_close_to_255(ble_board, service, mtu):
    with Tap.connect(url(ble_board, service, mtu)) as tap:
        assert tap.link.service == service
        assert tap.link.mtu == min(mtu, BOARD_MTU)
        assert tap.device.serial_number() == expected_serial(ble_board)
        label = "BLE-label-16chr!"
        tap.variable.write(LABEL, label)
        assert tap.variable.read(LABEL) == label
        rs = tap.interface.multi_request([("GET", "/3//2", b"", MULTI_ANYTHING),
                                          ("GET", "/1029/6/4", b"", MULTI_ANYTHING),
                                          ("GET", "/1029/99/4", b"", MULTI_ANYTHING),
                                          ("GET", "/3//0", b"", MULTI_ANYTHING)])
        assert [r.code for r in rs] == [tapcodes.CONTENT, tapcodes.CONTENT,
                                        tapcodes.NOT_FOUND, tapcodes.CONTENT]
        assert rs[1].data == label.encode()
        if service == LEGACY or mtu > 23:
            n = app_data_size(service, mtu)
            data = bytes((i * 7 + 1) & 0xFF for i in range(n))
            tap.interface.set_application_data(data)
            assert tap.interface.application_data() == data
            assert n >= 232  # request frames of 244 bytes or more


def test_fast_service_at_mtu_23(ble_board):
    with Tap.connect(url(ble_board, "fast", 23)) as tap:
        assert tap.device.serial_number() == expected_serial(ble_board)  # 17-byte response
        with pytest.raises(TapError, match="does not fit the MTU"):  # the central refuses
            tap.interface.set_application_data(bytes(40))
        tap.interface.set_application_data(bytes(8))  # a 20-byte write
        with pytest.raises(TapError) as e:  # a 22-byte response cannot be notified
            tap.get("/1029//4").body()
        assert e.value.code == tapcodes.INTERNAL_SERVER_ERROR
        assert tap.device.serial_number() == expected_serial(ble_board)
    ble_board.wait_for(r"\[W\]\[ble\] response of \d+ bytes > MTU-3 \(20\)")


def test_board_chunks_are_20_byte_packets_at_any_mtu(ble_board):
    data = bytes(range(200))
    with central(ble_board, 247) as c:
        put = frame.encode_request(frame.PUT, 1024, None, 36, data)
        assert legacy_exchange(c, blechunk.split(put)) == blechunk.split(b"\x44\x90\x00")
        got = legacy_exchange(c, blechunk.split(get_apdu("/1024//36")))
        assert got == blechunk.split(b"\x45" + data + b"\x90\x00")
        assert [len(p) for p in got] == [20] * 10 + [204 % 19 + 1]


def test_corrupted_checksum_gets_bad_request_and_the_link_serves(ble_board):
    with central(ble_board) as c:
        packets = blechunk.split(get_apdu("/3//2"))
        bad = packets[0][:-1] + bytes(((packets[0][-1] + 1) & 0xFF,))
        assert legacy_exchange(c, [bad]) == blechunk.split(b"\x80\x90\x00")
        long = blechunk.split(frame.encode_request(frame.PUT, 1024, None, 36, bytes(60)))
        long[0] = long[0][:5] + b"\xee" + long[0][6:]  # a data byte, not the checksum
        assert legacy_exchange(c, long) == blechunk.split(b"\x80\x90\x00")
        got = legacy_exchange(c, packets)
        assert got == blechunk.split(b"\x45" + expected_serial(ble_board).encode() + b"\x90\x00")
    with Tap.connect(url(ble_board, LEGACY, 23)) as tap:
        assert tap.interface.application_data() != bytes(60)  # the corrupted PUT never ran


def test_central_leaving_mid_frame_then_next_central(ble_board):
    with Tap.connect(url(ble_board, LEGACY, 23)) as tap:
        tap.interface.set_application_data(b"before")
    c = central(ble_board)
    put = blechunk.split(frame.encode_request(frame.PUT, 1024, None, 36, bytes(range(100))))
    h = c.handle(LEGACY)
    for p in put[:3]:  # 3 of 6 packets, then the central is gone
        c.write(h, p)
    c.close()
    ble_board.wait_for(r"ble#\d+ disconnected")
    with central(ble_board) as c2:  # the next central starts clean
        got = legacy_exchange(c2, blechunk.split(get_apdu("/1024//36")))
        assert got == blechunk.split(b"\x45before\x90\x00")
        # the same central sends half a frame, then a whole one: the half one is dropped
        c2.write(c2.handle(LEGACY), put[0])
        got = legacy_exchange(c2, blechunk.split(get_apdu("/3//2")))
        assert got == blechunk.split(b"\x45" + expected_serial(ble_board).encode() + b"\x90\x00")


def test_one_central_at_a_time_and_reconnects(ble_board):
    first = central(ble_board)
    with pytest.raises(TapError, match="does not accept a connection"):
        VbleCentral(ble_board.radio).connect(timeout=0.3)
    assert scan_vble(ble_board.radio) == []  # not advertising while a central is served
    first.disconnect()
    for _ in range(3):  # reconnects work, each with a fresh session
        with Tap.connect(url(ble_board, "fast", 247)) as tap:
            assert tap.device.serial_number() == expected_serial(ble_board)
            assert tap.interface.current_group_id() == 0


def test_radio_enforces_att_rules(ble_board):
    with central(ble_board) as c:
        h = c.handle("fast")
        c.send(vble.WRITE, b"\x01" + h.to_bytes(2, "big") + bytes(21))  # past the central
        with pytest.raises(TapError, match="ATT error 0x0D"):
            c._reply(2.0, vble.WRITTEN)
        c.send(vble.WRITE, b"\x01\x7f\x00" + bytes(4))
        with pytest.raises(TapError, match="ATT error 0x01"):
            c._reply(2.0, vble.WRITTEN)
        assert c.exchange_mtu(100) == 100
        with pytest.raises(TapError, match="ATT error 0x06"):  # once per connection
            c.exchange_mtu(200)
        c.write(h, get_apdu("/3//2"))
        assert c.notification(2.0, h) == b"\x45" + expected_serial(ble_board).encode() + (
            b"\x90\x00")


def test_reboot_over_ble_rebinds_the_radio(ble_board):
    with Tap.connect(url(ble_board, LEGACY, 23)) as tap:
        tap.device.reboot()
    ble_board.wait_for(r"board rebooting")
    ble_board.wait_for(r"^READY ")
    with Tap.connect(url(ble_board, "fast", 247)) as tap:
        assert tap.device.serial_number() == expected_serial(ble_board)
