"""10,000 random and mutated APDUs against a virtual board over TCP and the pty UART: no
crash, every answer a well-formed response (status, data, 90 00) or the resynchronisation
answer, a valid request served right after, and the heap back near where it started."""

from __future__ import annotations

import random
import socket
import struct
import time

import serial

from twintap.proto import frame, tapcodes

GET_SERIAL = frame.encode_request(frame.GET, 3, None, 2)
VALID_PATHS = [(3, None, 2), (1029, 5, 4), (1029, None, 4), (1028, 2, 1), (1024, None, 9),
               (1029, 6, 4), (1024, None, 89), (1025, 0xFFFF, 0), (1029, 99, 4), (7, 7, 7)]


def mutated(rng: random.Random, garbage: float) -> tuple[bytes, bool]:
    """A request APDU with random content; True when its header is well-formed (the board
    answers it as a request), False for garbage that must make it resynchronise (each costs
    the link's idle time, so the share of garbage is kept small)."""
    if rng.random() >= garbage:  # a well-formed header over random frames and payloads
        obj, inst, res = rng.choice(VALID_PATHS)
        method = rng.choice([1, 2, 3])
        payload = rng.randbytes(rng.choice([0, 1, 2, 4, 7, 16, rng.randint(0, 248)]))
        apdu = bytearray(frame.encode_request(method, obj, inst, res, payload))
        if rng.random() < 0.3:  # flip bytes inside the frame, keep the header's length right
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(5, len(apdu))
                apdu[i] = rng.randrange(256)
        return bytes(apdu), True
    data = bytes([rng.choice([0x00, 0x13, 0xFF, 0x41, 0xA3])]) + rng.randbytes(rng.randint(0, 40))
    return data, False


class Link:
    def __init__(self, board, kind: str) -> None:
        self.kind = kind
        if kind == "tcp":
            self.s = socket.create_connection(("127.0.0.1", board.tcp_port), timeout=5)
        else:
            self.p = serial.serial_for_url(board.ready["uart"], timeout=5)

    def exchange(self, data: bytes) -> bytes:
        if self.kind == "tcp":
            self.s.sendall(data)
        else:
            self.p.write(data)
        # the board answers with one write: the answer is complete when it ends in 90 00
        buf = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not buf.endswith(b"\x90\x00"):
            if self.kind == "tcp":
                chunk = self.s.recv(1024)
            else:
                chunk = self.p.read(1)
                chunk += self.p.read(self.p.in_waiting)
            if not chunk:
                break
            buf += chunk
        if not buf.endswith(b"\x90\x00"):
            raise AssertionError(f"no complete answer to {data.hex()}: {buf.hex()}")
        return buf

    def close(self) -> None:
        (self.s if self.kind == "tcp" else self.p).close()


def free_memory(link: Link) -> int:
    status, data = frame.decode_response(link.exchange(frame.encode_request(frame.GET, 3, None,
                                                                            10)))
    assert status == tapcodes.CONTENT
    return struct.unpack(">I", data)[0]


def test_ten_thousand_random_apdus(start_board, tmp_path):
    b = start_board("--uart", str(tmp_path / "uart"), "--heap", "512K")
    rng = random.Random(20261122)
    # requests, share of garbage (a resync costs the idle time: 500 ms on TCP, 50 ms on UART)
    plan = {"tcp": (8500, 0.004), "uart": (1500, 0.1)}
    baseline = None
    for kind, (n, garbage) in plan.items():
        link = Link(b, kind)
        if baseline is None:
            baseline = free_memory(link)
        for _ in range(n):
            data, well_formed = mutated(rng, garbage)
            answer = link.exchange(data)
            assert answer.endswith(b"\x90\x00") and len(answer) >= 3, (data.hex(), answer.hex())
            if not well_formed:
                assert answer == frame.encode_response(tapcodes.BAD_REQUEST), data.hex()
        assert frame.decode_response(link.exchange(GET_SERIAL))[0] == tapcodes.CONTENT
        link.close()
    link = Link(b, "tcp")
    after = free_memory(link)
    link.close()
    # garbage collected, the heap is back near where it was (within 10 % of the baseline)
    assert after > baseline * 0.9, (baseline, after)
    assert not any("Traceback" in line for line in b.lines)
