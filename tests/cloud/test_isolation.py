"""The cloud link never stalls the Tap links: with the broker refusing connections, or
accepting them and never answering (a blackhole: no CONNACK, a TLS handshake that never
ends), Tap requests over TCP and UART keep being answered. The bound checked here is the one
README states for the virtual board (TAP_BOUND_S); a stalled link would take the MQTT timeout
(10 s) or forever."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import serial

from twintap.proto import frame, tapcodes
from twintap.vboard import free_port

TAP_BOUND_S = 0.5  # README, "Cloud and Tap isolation"
GET_SERIAL = frame.encode_request(frame.GET, 3, None, 2)


class Blackhole:
    """A TCP server that accepts connections and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(c)

    def close(self) -> None:
        self.sock.close()
        for c in self.accepted:
            c.close()


def write_config(flash, broker: str, ca: bool) -> None:
    flash.mkdir(parents=True, exist_ok=True)
    cfg = {"rpz": {"broker": broker, "app_id": "app1", "client_id": "iso", "token": "t0k3n",
                   "keepalive": 5, "timeout_ms": 10000, "backoff_min_ms": 100,
                   "backoff_max_ms": 400}}
    if ca:  # any DER certificate will do: the handshake never gets far enough to check it
        from twintap import pki

        ca_dir = flash.parent / "ca"
        ca_dir.mkdir()
        pki.make_ca(ca_dir)
        (flash / "ca.der").write_bytes((ca_dir / "ca.der").read_bytes())
        cfg["rpz"]["ca"] = "ca.der"
    (flash / "config.json").write_text(json.dumps(cfg))


def worst_latency(board, seconds: float = 3.0) -> float:
    worst = 0.0
    with socket.create_connection(("127.0.0.1", board.tcp_port), timeout=15) as tcp, \
            serial.serial_for_url(board.ready["uart"], timeout=15) as uart:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for send, recv in ((tcp.sendall, lambda: tcp.recv(64)),
                               (uart.write, lambda: uart.read(17))):
                t0 = time.monotonic()
                send(GET_SERIAL)
                resp = recv()
                worst = max(worst, time.monotonic() - t0)
                assert frame.decode_response(resp)[0] == tapcodes.CONTENT
            time.sleep(0.02)
    return worst


@pytest.mark.parametrize("case", ["refused", "blackhole-mqtt", "blackhole-tls"])
def test_tap_answers_while_the_broker_is_unreachable(case, start_board, tmp_path):
    flash = tmp_path / "flash"
    hole = None
    if case == "refused":
        write_config(flash, f"mqtt://127.0.0.1:{free_port()}", ca=False)
    else:
        hole = Blackhole()
        tls = case == "blackhole-tls"
        write_config(flash, f"{'mqtts' if tls else 'mqtt'}://127.0.0.1:{hole.port}", ca=tls)
    try:
        b = start_board("--uart", str(tmp_path / "uart"), flash=flash)
        worst = worst_latency(b)
        print(f"{case}: worst Tap latency {worst * 1000:.1f} ms")
        assert worst < TAP_BOUND_S, f"a Tap request waited {worst:.3f} s"
        if hole:
            assert hole.accepted, "the board never tried the broker"
        else:
            b.wait_for(r"\[W\]\[rpz\] broker 127\.0\.0\.1")
        assert not any("t0k3n" in line for line in b.lines)
    finally:
        if hole:
            hole.close()
