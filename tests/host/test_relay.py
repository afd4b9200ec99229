"""`twintap relay` in front of the in-process fake Tap: READY line, request delimiting,
several clients serialised onto one link, clean stop, start-up errors."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading

import pytest

from tests.host.faketap import FakeTap
from tests.host.procs import ReadyProcess
from twintap.proto import frame, tapcodes
from twintap.relay import parse_listen, request_length
from twintap.vboard import free_port

GET_SERIAL = frame.encode_request(frame.GET, 3, None, 2)
GET_MAKER = frame.encode_request(frame.GET, 3, None, 0)


@pytest.fixture
def fake():
    f = FakeTap()
    yield f
    f.close()


@pytest.fixture
def relay(fake):
    port = free_port()
    p = ReadyProcess("relay", "--listen", f"tcp://127.0.0.1:{port}", "--to", fake.url)
    p.port = port
    yield p
    p.stop()


def exchange(port: int, *apdus: bytes, n: int = 512) -> list[bytes]:
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for apdu in apdus:
            s.sendall(apdu)
            out.append(s.recv(n))
    return out


def test_helpers():
    assert parse_listen("tcp://127.0.0.1:2001") == ("127.0.0.1", 2001)
    assert parse_listen("0.0.0.0:2001") == ("0.0.0.0", 2001)
    assert request_length(GET_SERIAL) == len(GET_SERIAL)
    assert request_length(GET_SERIAL[:4]) is None
    assert request_length(GET_SERIAL + GET_MAKER[:3]) == len(GET_SERIAL)
    assert request_length(b"\x00\x13noise") == 7


def test_ready_line_and_forwarding(relay, fake):
    assert relay.lines[0] == f"READY listen=tcp://127.0.0.1:{relay.port} to={fake.url}"
    assert exchange(relay.port, GET_SERIAL, GET_MAKER) == [
        frame.encode_response(tapcodes.CONTENT, b"TTFAKE000001"),
        frame.encode_response(tapcodes.CONTENT, b"fake"),
    ]
    relay.wait_for(r"\[I\]\[relay\] client 127\.0\.0\.1:\d+ disconnected \(2 requests\)")
    assert [r[1] for r in fake.requests] == ["/3//2", "/3//0"]


def test_coalesced_and_split_requests(relay):
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as s:
        s.sendall(GET_SERIAL + GET_MAKER)  # two requests in one write: two answers
        want = (frame.encode_response(tapcodes.CONTENT, b"TTFAKE000001")
                + frame.encode_response(tapcodes.CONTENT, b"fake"))
        got = b""
        while len(got) < len(want):
            got += s.recv(512)
        assert got == want
        s.sendall(GET_SERIAL[:6])  # one request in two writes
        s.sendall(GET_SERIAL[6:])
        assert s.recv(512) == frame.encode_response(tapcodes.CONTENT, b"TTFAKE000001")


def test_clients_are_serialised_onto_one_link(relay, fake):
    errors = []

    def client(i: int) -> None:
        try:
            req = frame.encode_request(frame.GET, 1029, 5, 4)
            for _ in range(20):
                (r,) = exchange(relay.port, req)
                assert r == frame.encode_response(tapcodes.CONTENT, b"\x00\x15"), r
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(fake.requests) == 80


def test_stops_cleanly_on_sigterm(relay):
    (r,) = exchange(relay.port, GET_SERIAL)
    assert r.startswith(b"\x45")
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5):
        relay.wait_for(r"client .* connected")
        assert relay.stop(signal.SIGTERM) == 0
    assert relay.lines[-1] == "[I][relay] stopped"


def test_startup_errors_exit_2():
    r = subprocess.run([sys.executable, "-m", "twintap", "relay", "--listen", "nope://x",
                        "--to", "tcp://127.0.0.1:1"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and r.stderr.startswith("twintap: bad --listen")
    r = subprocess.run([sys.executable, "-m", "twintap", "relay", "--listen",
                        f"tcp://127.0.0.1:{free_port()}", "--to",
                        f"tcp://127.0.0.1:{free_port()}"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "twintap: cannot connect to tcp://127.0.0.1:" in r.stderr
    assert "READY" not in r.stdout
