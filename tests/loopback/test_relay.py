"""`twintap relay` from a free TCP port to a virtual board's UART pty: the same answers as the
board's own TCP port, several clients in turn, a clean stop on SIGINT."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from tests.host.procs import ReadyProcess
from twintap.proto import frame, tapcodes
from twintap.tap import Tap
from twintap.vboard import free_port

GET_SERIAL = frame.encode_request(frame.GET, 3, None, 2)
GET_MAKER = frame.encode_request(frame.GET, 3, None, 0)


def expected_serial(flash: Path) -> bytes:
    return ("TT" + (flash / ".efuse").read_bytes().hex().upper()).encode()


def tcp_exchange(port: int, *apdus: bytes) -> list[bytes]:
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for apdu in apdus:
            s.sendall(apdu)
            out.append(s.recv(512))
    return out


@pytest.fixture
def setup(start_board, tmp_path):
    b = start_board("--uart", str(tmp_path / "uart"))
    port = free_port()
    relay = ReadyProcess("relay", "--listen", f"tcp://127.0.0.1:{port}", "--to", b.ready["uart"])
    relay.port = port
    yield b, relay
    relay.stop()


def test_relay_answers_as_the_board(setup):
    b, relay = setup
    assert relay.ready.string == f"READY listen=tcp://127.0.0.1:{relay.port} to={b.ready['uart']}"
    (direct,) = tcp_exchange(b.tcp_port, GET_SERIAL)
    (via,) = tcp_exchange(relay.port, GET_SERIAL)
    assert via == direct == frame.encode_response(tapcodes.CONTENT, expected_serial(b.flash))


def test_two_clients_in_turn(setup):
    b, relay = setup
    for _ in range(2):
        serial, maker, bad = tcp_exchange(relay.port, GET_SERIAL, GET_MAKER,
                                          frame.encode_request(frame.GET, 3, None, 99))
        assert serial == frame.encode_response(tapcodes.CONTENT, expected_serial(b.flash))
        assert maker == frame.encode_response(tapcodes.CONTENT, b"twintap")
        assert bad == frame.encode_response(tapcodes.NOT_FOUND)
        relay.wait_for(r"^\[I\]\[relay\] client \S+ disconnected \(3 requests\)$")
    with Tap.connect(f"tcp://127.0.0.1:{relay.port}") as one, \
            Tap.connect(f"tcp://127.0.0.1:{relay.port}") as two:
        assert one.device.serial_number() == two.device.serial_number()
        two.variable.write(5, 19)
        assert one.variable.read(5) == 19


def test_relay_stops_on_sigint(setup):
    b, relay = setup
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5):
        relay.wait_for(r"client \S+ connected")
        assert relay.stop(signal.SIGINT) == 0
    assert relay.lines[-1] == "[I][relay] stopped"
    # the UART is free again: the client library can open it directly
    with Tap.connect(b.ready["uart"]) as tap:
        assert tap.device.serial_number().encode() == expected_serial(b.flash)
