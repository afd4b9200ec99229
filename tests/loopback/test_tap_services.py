"""Tap services of the firmware, checked on the wire against virtual boards, over TCP and
over the pty UART: every answer as tap-protocol.md says, errors as result codes, and a link
that keeps serving after bad input."""

from __future__ import annotations

import socket
import struct
import time

import pytest
import serial

from twintap.proto import frame, tapcodes, tlv, values

GET, PUT, POST = frame.GET, frame.PUT, frame.POST


class Link:
    """Raw APDU exchange over TCP or a pty, read until the response is complete."""

    def __init__(self, board, kind: str) -> None:
        self.kind = kind
        if kind == "tcp":
            self.sock = socket.create_connection(("127.0.0.1", board.tcp_port), timeout=5)
        else:
            self.port = serial.serial_for_url(board.ready["uart"], timeout=5)

    def send(self, data: bytes) -> None:
        if self.kind == "tcp":
            self.sock.sendall(data)
        else:
            self.port.write(data)

    def recv(self) -> bytes:
        buf = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.kind == "tcp":
                self.sock.settimeout(0.05 if buf.endswith(b"\x90\x00") else 5)
                try:
                    chunk = self.sock.recv(1024)
                except TimeoutError:
                    return buf
                if not chunk:
                    return buf
            else:
                self.port.timeout = 0.05 if buf.endswith(b"\x90\x00") else 5
                chunk = self.port.read(1)
                chunk += self.port.read(self.port.in_waiting)
                if not chunk:
                    return buf
            buf += chunk
        raise AssertionError(f"no complete response: {buf.hex()}")

    def request(self, method: int, path: str, payload: bytes = b"") -> tuple[int, bytes]:
        obj, inst, res = frame.parse_path(path)
        self.send(frame.encode_request(method, obj, inst, res, payload))
        return frame.decode_response(self.recv())

    def close(self) -> None:
        (self.sock if self.kind == "tcp" else self.port).close()


@pytest.fixture(params=["tcp", "uart"])
def link(request, start_board, tmp_path):
    board = start_board("--uart", str(tmp_path / "uart"))
    lk = Link(board, request.param)
    lk.board = board
    yield lk
    lk.close()


def body(link: Link, method: int, path: str, payload: bytes = b"") -> bytes:
    status, data = link.request(method, path, payload)
    assert tapcodes.is_success(status), f"{path}: {tapcodes.name(status)}"
    return data


def test_device_service(link):
    serial_no = ("TT" + (link.board.flash / ".efuse").read_bytes().hex().upper()).encode()
    assert link.request(GET, "/3//0") == (tapcodes.CONTENT, b"twintap")
    assert link.request(GET, "/3//1") == (tapcodes.CONTENT, b"unix")
    assert link.request(GET, "/3//2") == (tapcodes.CONTENT, serial_no)
    assert body(link, GET, "/3//3").startswith(b"twintap 0.1.0 MicroPython 1.")
    assert body(link, GET, "/3//6") == b"\x01"  # DC
    assert struct.unpack(">I", body(link, GET, "/3//10"))[0] > 1000  # free memory
    assert link.request(POST, "/3//11", struct.pack(">I", 7))[0] == tapcodes.CHANGED
    assert body(link, GET, "/3//11") == struct.pack(">I", 7)
    assert link.request(POST, "/3//12")[0] == tapcodes.CHANGED
    assert body(link, GET, "/3//11") == bytes(4)
    assert link.request(PUT, "/3//13", struct.pack(">I", 1_800_000_000))[0] == tapcodes.CHANGED
    assert body(link, GET, "/3//13").startswith(b"2027-01-15T08:")
    assert link.request(PUT, "/3//13", b"\x01")[0] == tapcodes.NOT_ACCEPTABLE


def test_interface_service(link):
    assert body(link, GET, "/1024//9") == b"twintap"
    assert values.decode_version(body(link, GET, "/1024//10")) == "1.0.0"
    assert body(link, GET, "/1024//2") == b"\x00\x00"  # anonymous profile
    assert body(link, GET, "/1024//7") == b"\x00\x00"
    assert body(link, GET, "/1024//6") == b"\x00\x00"
    expected = 0x20 if link.kind == "tcp" else 0x100  # WIFI / UART
    assert body(link, GET, "/1024//3") == struct.pack(">H", expected)
    assert body(link, GET, "/1024//21") == struct.pack(">H", 0x120)
    assert body(link, GET, "/1024//88") == struct.pack(">HH", 255, 255)
    assert len(body(link, GET, "/1024//4")) == 4
    for res, text in ((9, b"bench app"), (84, b"TT-1"), (11, b"$2/http://x")):
        assert link.request(PUT, f"/1024//{res}", text)[0] == tapcodes.CHANGED
        assert body(link, GET, f"/1024//{res}") == text
    assert link.request(PUT, "/1024//36", bytes(range(40)))[0] == tapcodes.CHANGED
    assert body(link, GET, "/1024//36") == bytes(range(40))
    assert link.request(PUT, "/1024//10", values.encode_version("1.2.300"))[0] == 0x44
    assert body(link, GET, "/1024//10") == bytes.fromhex("0102012c")
    assert link.request(POST, "/1024//10")[0] == tapcodes.CHANGED  # reload


def test_multi_request(link):
    items = b"".join(
        struct.pack(">H", len(f)) + f + bytes((exp,))
        for f, exp in (
            (frame.encode_frame(GET, 3, None, 2), 0xFF),
            (frame.encode_frame(GET, 1029, 5, 4), 0x7F),
            (frame.encode_frame(GET, 3, None, 99), 0x7F),  # NOT_FOUND: stops here
            (frame.encode_frame(GET, 3, None, 0), 0xFF),
        )
    )
    data = body(link, GET, "/1024//89", items)
    out = []
    while data:
        n = struct.unpack_from(">H", data)[0]
        out.append((data[2], data[3 : 2 + n]))
        data = data[2 + n :]
    assert [s for s, _ in out] == [0x45, 0x45, 0x84]
    assert out[0][1].startswith(b"TT") and out[1][1] == struct.pack(">h", 21)
    assert link.request(GET, "/1024//89", b"\x00\x09\x01")[0] == tapcodes.BAD_REQUEST


def test_variables_declarations_and_values(link):
    expected = {
        1: ("temperature:C", values.FLOAT32, 1, 1),
        2: ("humidity:%", values.FLOAT32, 1, 1),
        3: ("counter:", values.UINT32, 1, 1),
        4: ("led:", values.BOOLEAN, 1, 2),
        5: ("setpoint:C", values.INT16, 1, 2),
        6: ("label:", values.ASCII, 16, 2),
    }
    for vid, (meta, t, count, bundle) in expected.items():
        assert body(link, GET, f"/1029/{vid}/8").decode() == meta
        assert values.split_type_byte(body(link, GET, f"/1029/{vid}/1")[0])[1] == t
        assert body(link, GET, f"/1029/{vid}/2") == bytes((count,))
        assert body(link, GET, f"/1029/{vid}/6") == struct.pack(">H", bundle)
    assert body(link, GET, "/1029/1/9") == b"C"
    assert 20.0 <= values.decode(values.FLOAT32, body(link, GET, "/1029/1/4")) <= 25.0
    assert body(link, GET, "/1029/5/4") == struct.pack(">h", 21)
    assert body(link, GET, "/1029/6/4") == b"bench"
    assert body(link, GET, "/1029/1/3") == bytes((0x41, 0, 1))  # anonymous: read
    assert body(link, GET, "/1029/4/3") == bytes((0x41, 0, 3))  # anonymous: read + write
    # writes: POST /5 as the data layer does, PUT /4 too
    assert link.request(POST, "/1029/5/5", struct.pack(">h", -40)) == (tapcodes.CHANGED, b"")
    assert body(link, GET, "/1029/5/4") == struct.pack(">h", -40)
    assert link.request(PUT, "/1029/6/4", b"hello") == (tapcodes.CHANGED, b"")
    assert body(link, GET, "/1029/6/4") == b"hello"
    assert link.request(POST, "/1029/4/5", b"\xfe")[0] == tapcodes.CHANGED  # library's false
    assert body(link, GET, "/1029/4/4") == b"\x00"
    # errors
    assert link.request(POST, "/1029/1/5", b"\x00\x00\x00\x00")[0] == tapcodes.UNAUTHORIZED
    assert link.request(POST, "/1029/5/5", b"\x01")[0] == tapcodes.NOT_ACCEPTABLE
    assert link.request(POST, "/1029/6/5", b"x" * 17)[0] == tapcodes.NOT_ACCEPTABLE
    assert link.request(GET, "/1029/99/4")[0] == tapcodes.NOT_FOUND
    assert link.request(POST, "/1029/5/4", b"\x00\x01")[0] == tapcodes.METHOD_NOT_ALLOWED
    assert link.request(PUT, "/1029/5/1", bytes((0x22,)))[0] == tapcodes.RESOURCE_LOCKED


def test_bundles_and_read_profile(link):
    bid, items = tlv.decode_bundle(body(link, GET, "/1028/2/1"))
    assert bid == 2 and [i for i, _ in items] == [4, 5, 6]
    assert dict(items)[6] == b"bench"
    bid, items = tlv.decode_bundle(body(link, GET, "/1029//4"))
    assert [i for i, _ in items] == [1, 2, 3, 4, 5, 6]
    assert body(link, GET, "/1028/1/4") == b"sensors"
    assert link.request(PUT, "/1028/1/2", struct.pack(">I", 5000))[0] == tapcodes.CHANGED
    assert body(link, GET, "/1028/1/2") == struct.pack(">I", 5000)
    assert link.request(GET, "/1028/9/1")[0] == tapcodes.NOT_FOUND
    # the ACL decides what anonymous reads
    assert link.request(PUT, "/1028/1/0", bytes((0x41, 0, 0)))[0] == tapcodes.CHANGED
    # no read right on the bundle: its values are refused, not emptied (tap/auth security)
    assert link.request(GET, "/1028/1/1") == (tapcodes.UNAUTHORIZED, b"")
    assert link.request(GET, "/1029/1/4") == (tapcodes.UNAUTHORIZED, b"")
    assert body(link, GET, "/1029/1/3") == bytes((0x41, 0, 0))


def test_create_variable_bundle_group_over_tap(link):
    assert link.request(POST, "/1028/7/65535")[0] == tapcodes.CHANGED
    assert link.request(PUT, "/1028/7/4", b"extra")[0] == tapcodes.CHANGED
    assert link.request(PUT, "/1028/7/0", bytes((0x41, 0, 3)))[0] == tapcodes.CHANGED
    assert link.request(POST, "/1029/20/65535")[0] == tapcodes.CHANGED
    steps = [
        ("/1029/20/1", bytes((values.type_byte(values.DOMAIN_STATIC, values.UINT16),))),
        ("/1029/20/2", b"\x02"),
        ("/1029/20/6", struct.pack(">H", 7)),
        ("/1029/20/8", b"pressure:hPa"),
        ("/1029/20/0", struct.pack(">I", 0x2000_0000)),
    ]
    for path, payload in steps:
        assert link.request(PUT, path, payload)[0] == tapcodes.CHANGED, path
    assert link.request(POST, "/1029/20/5", bytes.fromhex("03f203f3")) == (0x44, b"")
    assert body(link, GET, "/1029/20/4") == bytes.fromhex("03f203f3")
    assert tlv.decode_bundle(body(link, GET, "/1028/7/1")) == (
        7, [(20, bytes.fromhex("03f203f3"))]
    )
    assert body(link, GET, "/1029/20/0") == struct.pack(">I", 0x2000_0000)
    assert link.request(POST, "/1029/1/65535")[0] == tapcodes.RESOURCE_LOCKED  # board-defined
    assert link.request(POST, "/1025/3/65535")[0] == tapcodes.CHANGED
    assert link.request(PUT, "/1025/3/0", b"operator")[0] == tapcodes.CHANGED
    assert link.request(PUT, "/1025/3/4", struct.pack(">H", 60))[0] == tapcodes.CHANGED
    assert body(link, GET, "/1025/3/0") == b"operator"
    assert body(link, GET, "/1025/3/4") == struct.pack(">H", 60)
    assert body(link, GET, "/1025/65535/0") == b"admin"
    assert link.request(GET, "/1025/9/0")[0] == tapcodes.NOT_FOUND


def test_target_service(link):
    assert body(link, GET, "/1027//1") == b"\x04"  # DIRECT_IO
    assert body(link, GET, "/1027//3") == b"\x01"
    assert link.request(POST, "/1027//3")[0] == tapcodes.CHANGED
    assert link.request(GET, "/1027//33", bytes(9))[0] == tapcodes.NOT_IMPLEMENTED
    assert link.request(POST, "/1027//37", bytes(12))[0] == tapcodes.NOT_IMPLEMENTED


def test_bad_input_gets_result_codes_and_the_link_keeps_serving(link):
    ok = frame.encode_request(GET, 3, None, 2)
    cases = [
        (bytes.fromhex("a3ca000007010003ffff0002"), tapcodes.BAD_REQUEST),  # CLA
        (bytes.fromhex("a2cb000007010003ffff0002"), tapcodes.BAD_REQUEST),  # INS
        (bytes.fromhex("a2ca000007020003ffff0002"), tapcodes.METHOD_NOT_ALLOWED),
        (bytes.fromhex("a2ca000007090003ffff0002"), tapcodes.METHOD_NOT_ALLOWED),
        (bytes.fromhex("a2ca000003010003"), tapcodes.BAD_REQUEST),  # Lc < 7
        (bytes.fromhex("a2ca000009010003ffff0002"), tapcodes.BAD_REQUEST),  # Lc > data
        (bytes.fromhex("a2ca00"), tapcodes.BAD_REQUEST),  # truncated header
        (bytes(range(200)), tapcodes.BAD_REQUEST),  # garbage
    ]
    for data, code in cases:
        link.send(data)
        assert link.recv() == frame.encode_response(code), data.hex()
        link.send(ok)
        assert frame.decode_response(link.recv())[0] == tapcodes.CONTENT, data.hex()


def test_written_values_survive_a_restart(start_board, tmp_path):
    flash = tmp_path / "flash"
    b = start_board(flash=flash)
    lk = Link(b, "tcp")
    assert lk.request(POST, "/1029/5/5", struct.pack(">h", 33))[0] == tapcodes.CHANGED
    assert lk.request(PUT, "/1029/6/4", b"kept")[0] == tapcodes.CHANGED
    assert lk.request(PUT, "/1024//9", b"renamed")[0] == tapcodes.CHANGED
    lk.close()
    assert b.stop() == 0
    b2 = start_board(flash=flash)
    lk = Link(b2, "tcp")
    assert body(lk, GET, "/1029/5/4") == struct.pack(">h", 33)
    assert body(lk, GET, "/1029/6/4") == b"kept"
    assert body(lk, GET, "/1024//9") == b"renamed"
    lk.close()


def test_reboot_and_factory_reset(start_board, tmp_path):
    b = start_board()
    lk = Link(b, "tcp")
    assert lk.request(POST, "/1029/5/5", struct.pack(">h", 30))[0] == tapcodes.CHANGED
    assert lk.request(POST, "/3//4") == (tapcodes.CHANGED, b"")
    lk.close()
    b.wait_for(r"board rebooting")
    b.wait_for(r"^READY ")
    lk = Link(b, "tcp")
    assert body(lk, GET, "/1029/5/4") == struct.pack(">h", 30)
    assert lk.request(POST, "/3//5") == (tapcodes.CHANGED, b"")
    lk.close()
    b.wait_for(r"^READY ")
    lk = Link(b, "tcp")
    assert body(lk, GET, "/1029/5/4") == struct.pack(">h", 21)  # back to the default
    lk.close()


def test_several_tcp_clients_at_once(start_board):
    b = start_board()
    links = [Link(b, "tcp") for _ in range(4)]
    for i, lk in enumerate(links):
        lk.send(frame.encode_request(GET, 1029, 5 if i % 2 else 6, 4))
    answers = [lk.recv() for lk in links]
    assert answers[0] == answers[2] and answers[1] == answers[3]
    for lk in links:
        lk.close()
