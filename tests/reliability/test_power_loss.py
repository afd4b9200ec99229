"""Power loss: the virtual board is killed with SIGKILL at random moments, 50 times, while it
writes its configuration (tap.json), its variables (twin.json) and its outbox (the broker is
down, so every change is appended to outbox.log). It must always boot, its files must be
whole, and no acknowledged write may be lost."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import threading

from tests.conftest import micropython_pids_in
from twintap.proto import frame, tapcodes, values
from twintap.vboard import free_port

ROUNDS = 50


def request(sock: socket.socket, method: int, path: str, payload: bytes = b"") -> int:
    obj, inst, res = frame.parse_path(path)
    sock.sendall(frame.encode_request(method, obj, inst, res, payload))
    data = b""
    while not data.endswith(b"\x90\x00"):
        chunk = sock.recv(512)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return frame.decode_response(data)


def outbox(flash) -> tuple[list[tuple[int, dict]], int]:
    events, torn = [], 0
    path = flash / "outbox.log"
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            seq, payload = json.loads(line)
        except ValueError:
            torn += 1
            continue
        events.append((seq, json.loads(payload)["msg"]))
    return events, torn


def test_sigkill_while_writing(start_board, tmp_path):
    rng = random.Random(7)
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "config.json").write_text(json.dumps({"rpz": {
        "broker": f"mqtt://127.0.0.1:{free_port()}", "app_id": "pl", "client_id": "pl",
        "token": "x", "backoff_min_ms": 5000, "backoff_max_ms": 5000}}))
    acked_sp, sent_sp = 21, 21  # setpoint: last acknowledged, last sent
    acked_name, sent_name = "twintap", "twintap"
    for round_no in range(ROUNDS):
        b = start_board(flash=flash)
        must_have = acked_sp  # its event went to the outbox before the write was answered
        # it booted: what was acknowledged before the last kill is there
        with socket.create_connection(("127.0.0.1", b.tcp_port), timeout=5) as s:
            st, raw = request(s, frame.GET, "/1029/5/4")
            assert st == tapcodes.CONTENT
            got = values.decode(values.INT16, raw)
            assert got in (acked_sp, sent_sp), (round_no, got, acked_sp, sent_sp)
            acked_sp = sent_sp = got
            st, name = request(s, frame.GET, "/1024//9")
            assert name.decode() in (acked_name, sent_name), (round_no, name)
            acked_name = sent_name = name.decode()
        for f in ("tap.json", "twin.json", "outbox.ack"):
            if (flash / f).exists():
                json.loads((flash / f).read_text())  # whole, not torn
        # the event of the last acknowledged write is in the outbox; every whole line parses,
        # at most one torn line per power loss, seqs strictly increasing
        events, torn = outbox(flash)
        assert torn <= round_no
        seqs = [seq for seq, _ in events]
        assert seqs == sorted(set(seqs))
        if round_no:
            assert ("setpoint", must_have) in [(m["n"], m["v"]) for _, m in events], round_no
        pids = micropython_pids_in(flash)
        assert len(pids) == 1
        killer = threading.Timer(rng.uniform(0.02, 0.4), os.kill, (pids[0], signal.SIGKILL))
        killer.start()
        try:
            with socket.create_connection(("127.0.0.1", b.tcp_port), timeout=5) as s:
                for i in range(10_000):
                    v = (round_no * 1000 + i) % 30000
                    sent_sp = v
                    if request(s, frame.POST, "/1029/5/5", struct.pack(">h", v))[0] == 0x44:
                        acked_sp = v
                    if i % 3 == 0:
                        sent_name = f"r{round_no}-{i}"
                        if request(s, frame.PUT, "/1024//9", sent_name.encode())[0] == 0x44:
                            acked_name = sent_name
        except (ConnectionError, OSError):
            pass  # the board died under us, as planned
        killer.join()
        b.wait_for(r"board exited with status -9")
        b.proc.wait(10)
