"""The board's BLE link against the official IoTize client (npm `@iotize/tap` 2.7.0,
protocol/ble/common), run by node.

`ble_chunks.js`: the library's legacy chunking itself.

Request frames are chunked by the library's BLEPacketSplitter and those very packets are
written, raw, to a virtual board's legacy characteristic through the emulated radio (vble):
the board must reassemble them (right answers). The packets the board notifies back must be
byte-identical to what the library's splitter makes of the same response frame, and the
library's BLEPacketBuilder must rebuild the response from them with a valid checksum.

`ble_driver.js`: the library's own BLE transport (UniversalBleProtocolAdapter, on a
peripheral adapter over the emulated radio, `ble-protocol.js`) drives the board through
`tap.service.*`, on the large-frame and on the legacy service.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.interop.conftest import HERE
from twintap.proto import blechunk, frame
from twintap.tap.ble import LEGACY, VbleCentral

SCRIPT = HERE / "ble_chunks.js"
DRIVER = HERE / "ble_driver.js"
LABEL = "IoTize-BLE-16ch."  # 16 characters: the unix board's label (ascii[16])
APP_DATA = bytes((i * 13 + 5) & 0xFF for i in range(240))  # a 252-byte PUT frame


@pytest.fixture
def vble_board(start_board):
    d = Path(tempfile.mkdtemp(prefix="ttble-"))
    b = start_board("--ble", str(d / "radio.sock"))
    b.radio = d / "radio.sock"
    yield b
    b.stop()
    shutil.rmtree(d, ignore_errors=True)


def library(node: str, split: list[bytes] = (), build: list[list[bytes]] = ()) -> dict:
    doc = {"split": [f.hex() for f in split], "build": [[p.hex() for p in ps] for ps in build]}
    r = subprocess.run([node, str(SCRIPT)], cwd=HERE, input=json.dumps(doc),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    out["split"] = [[bytes.fromhex(p) for p in ps] for ps in out["split"]]
    return out


def request(method: int, path: str, payload: bytes = b"") -> bytes:
    return frame.encode_request(method, *frame.parse_path(path), payload)


def multi(*calls: tuple[int, str]) -> bytes:
    body = b""
    for method, path in calls:
        f = frame.encode_frame(method, *frame.parse_path(path))
        body += struct.pack(">H", len(f)) + f + b"\xff"
    return body


def exchange(c: VbleCentral, packets: list[bytes]) -> list[bytes]:
    h = c.handle(LEGACY)
    for p in packets:
        c.write(h, p)
    got: list[bytes] = []
    while not got or got[-1][0] != 0:
        note = c.notification(3.0, h)
        assert note is not None, f"no complete answer; got {got}"
        got.append(note)
    return got


def test_board_and_library_chunk_alike(node, vble_board):
    serial = "TT" + (vble_board.flash / ".efuse").read_bytes().hex().upper()
    requests = [
        request(frame.GET, "/3//2"),
        request(frame.PUT, "/1029/6/4", LABEL.encode()),
        request(frame.GET, "/1029/6/4"),
        request(frame.GET, "/1024//89", multi((frame.GET, "/3//2"), (frame.GET, "/1029/6/4"),
                                              (frame.GET, "/3//0"), (frame.GET, "/3//1"))),
        request(frame.PUT, "/1024//36", APP_DATA),
        request(frame.GET, "/1024//36"),
        request(frame.GET, "/1029/99/4"),
    ]
    lib = library(node, split=requests)
    for req, packets in zip(requests, lib["split"], strict=True):
        assert packets == blechunk.split(req)  # the shared codec splits as the library does
    with VbleCentral(vble_board.radio) as c:
        c.connect()
        c.exchange_mtu(247)  # the board keeps 20-byte packets on the legacy service
        c.discover()
        board_packets = [exchange(c, packets) for packets in lib["split"]]
    responses = []
    for got in board_packets:
        a = blechunk.Assembler()
        n = None
        for p in got:
            n = a.feed(p)
        responses.append(bytes(a.buf[:n]))
    # the board understood the library's packets
    assert responses[0] == b"\x45" + serial.encode() + b"\x90\x00"
    assert responses[1] == b"\x44\x90\x00"
    assert responses[2] == b"\x45" + LABEL.encode() + b"\x90\x00"
    assert responses[3][0] == 0x45 and serial.encode() in responses[3]
    assert LABEL.encode() in responses[3]
    assert responses[4] == b"\x44\x90\x00"
    assert responses[5] == b"\x45" + APP_DATA + b"\x90\x00"  # a 243-byte response
    assert responses[6] == b"\x84\x90\x00"
    # and chunked them as the library does, which rebuilds them
    lib = library(node, split=responses, build=board_packets)
    for resp, got, mine, built in zip(responses, board_packets, lib["split"], lib["build"],
                                      strict=True):
        assert got == mine, resp.hex()
        assert built == {"complete": True, "checksumValid": True, "data": resp.hex()}


def test_library_rejects_what_the_board_rejects(node, vble_board):
    """A corrupted checksum: the library's builder says invalid, the board answers 0x80."""
    packets = blechunk.split(request(frame.GET, "/3//2"))
    bad = [packets[0][:-1] + bytes(((packets[0][-1] ^ 0x01),))]
    assert library(node, build=[bad])["build"][0]["checksumValid"] is False
    with VbleCentral(vble_board.radio) as c:
        c.connect()
        c.discover()
        got = exchange(c, bad)
        assert got == library(node, split=[b"\x80\x90\x00"])["split"][0]
        assert exchange(c, packets)[0][1] == 0x45  # and serves on


def drive(node: str, board, service: str, calls: list[dict], mtu: int = 517) -> dict:
    r = subprocess.run([node, str(DRIVER), "--vble", str(board.radio), "--service", service,
                        "--mtu", str(mtu)], cwd=HERE, input=json.dumps(calls),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("service", ["large-frame", "legacy"])
def test_library_ble_transport_drives_the_board(node, vble_board, service):
    serial = "TT" + (vble_board.flash / ".efuse").read_bytes().hex().upper()
    label = LABEL.encode().hex()
    calls = [
        {"service": "device", "method": "getSerialNumber"},
        {"service": "interface", "method": "putApplicationData",
         "args": [{"bytes": APP_DATA.hex()}]},
        {"service": "interface", "method": "getApplicationData"},
        {"service": "variable", "method": "setValue", "args": [6, {"bytes": label}]},
        {"service": "variable", "method": "getValue", "args": [6]},
        {"service": "interface", "method": "getAppName"},
    ]
    doc = drive(node, vble_board, service, calls)
    assert doc["connected"] is True and doc["service"] == service, doc
    assert doc["mtu"] == 263  # 517 asked, the board's own is smaller
    values = [r.get("value") for r in doc["results"]]
    assert all(r["ok"] for r in doc["results"]), doc["results"]
    assert values[0] == serial
    assert values[2] == {"bytes": APP_DATA.hex()}
    assert values[4] == {"bytes": label}
    assert values[5] == "twintap"
    if service == "legacy":  # 14 packets for the 252-byte PUT, 13 for its 243-byte answer
        assert doc["stats"]["writes"] >= 14 + 5 and doc["stats"]["notifications"] >= 13 + 5
    else:
        assert doc["stats"]["writes"] == len(calls) == doc["stats"]["notifications"]
