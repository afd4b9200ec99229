"""Tap request latency over TCP, the pty UART and the emulated BLE radio, against the echo
floors of :mod:`twintap.benchlib.echo`; and the cost of an encrypted (SCRAM) session.

The latency client is the same raw one for the board and its floor: it writes one request
APDU and reads exactly as many bytes as the board's recorded answer has (a Tap response has
no length field; knowing it keeps the client's own idle-window heuristics out of the
figures), checking that they are those bytes. BLE goes through ``twintap.tap.ble``'s emulated
central on the large-frame service (one write, one notification), for both as well.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

from twintap import TwintapError
from twintap.benchlib.stats import Series
from twintap.proto import frame
from twintap.tap import Tap, TcpLink

Exchange = Callable[[bytes, int], bytes]

GET_SERIAL = frame.encode_request(frame.GET, 3, None, 2)
GET_SETPOINT = frame.encode_request(frame.GET, 1029, 5, 4)
GET_FREE_HEAP = frame.encode_request(frame.GET, 3, None, 10)
REQUESTS = {"GET /3//2": GET_SERIAL, "GET /1029/5/4": GET_SETPOINT}
SCRAM_OPTIONS = 0x0018  # security options: SCRAM (and hashed passwords) on


def set_setpoint(value: int) -> bytes:
    """``POST /1029/5/5`` (int16): a Tap write of the setpoint."""
    return frame.encode_request(frame.POST, 1029, 5, 5, struct.pack(">h", value))


class RawTcp:
    """One TCP connection to a Tap port, raw APDUs both ways."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout

    def exchange(self, req: bytes, n: int) -> bytes:
        """Send ``req``; return the next ``n`` bytes."""
        self.sock.sendall(req)
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(max(4096, n - len(buf)))
            if not chunk:
                raise TwintapError("the Tap closed the connection")
            buf += chunk
        return buf

    def request(self, req: bytes) -> tuple[int, bytes]:
        """Send ``req``; return (status, data) of a response of unknown length (until it
        ends with 90 00 and nothing else is waiting)."""
        self.sock.sendall(req)
        buf = b""
        while True:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise TwintapError("the Tap closed the connection")
            buf += chunk
            if len(buf) >= 3 and buf.endswith(frame.SW_OK):
                if not select.select([self.sock], [], [], 0)[0]:
                    return frame.decode_response(buf)

    def close(self) -> None:
        """Close the link."""
        self.sock.close()


class RawPty:
    """The user end of a pty (a virtual board's UART), raw APDUs both ways."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.timeout = timeout

    def exchange(self, req: bytes, n: int) -> bytes:
        """Send ``req``; return the next ``n`` bytes."""
        os.write(self.fd, req)
        buf = b""
        deadline = time.monotonic() + self.timeout
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TwintapError(f"no answer on the pty within {self.timeout:g} s")
            try:
                buf += os.read(self.fd, 4096)
            except BlockingIOError:
                continue
        return buf

    def close(self) -> None:
        """Close the link."""
        os.close(self.fd)


class RawBle:
    """The emulated BLE central (``vble://``) on the large-frame service."""

    def __init__(self, path: Path | str, timeout: float = 5.0) -> None:
        from twintap.tap.ble import VbleLink

        self.link = VbleLink(str(path), service="fast")
        self.timeout = timeout

    def exchange(self, req: bytes, n: int) -> bytes:  # noqa: ARG002 - one notification
        """Write ``req``; return the notification that answers it."""
        return self.link.transact(req, self.timeout)

    def close(self) -> None:
        """Close the link."""
        self.link.close()


def measure(name: str, exchange: Exchange, req: bytes, resp: bytes, count: int,
            max_seconds: float, warmup: int = 20) -> Series:
    """``count`` back-to-back round trips (fewer if ``max_seconds`` runs out) after a
    warm-up; answers other than ``resp`` are counted as errors."""
    for _ in range(warmup):
        exchange(req, len(resp))
    s = Series(name)
    clock = time.perf_counter
    start = clock()
    stop = start + max_seconds
    while len(s.samples) < count:
        t0 = clock()
        got = exchange(req, len(resp))
        t1 = clock()
        s.samples.append(t1 - t0)
        if got != resp:
            s.errors += 1
        if t1 > stop:
            break
    s.wall = clock() - start
    return s


def record_answers(port: int) -> dict[bytes, bytes]:
    """The board's answers to the bench's requests, as raw bytes (over TCP)."""
    c = RawTcp(port)
    try:
        table = {}
        for req in REQUESTS.values():
            status, data = c.request(req)
            if status != 0x45:
                raise TwintapError(f"the board answered {status:#04x} to {req.hex(' ')}")
            table[req] = frame.encode_response(status, data)
        return table
    finally:
        c.close()


def tap_client(port: int, timeout: float = 5.0) -> Tap:
    """The host library's Tap on TCP, with no idle window after ``90 00`` (the library's
    default 10 ms would be most of what is measured)."""
    return Tap(TcpLink("127.0.0.1", port, timeout=timeout, idle=0.0), timeout=timeout)


def library_series(name: str, tap: Tap, path: str, count: int, max_seconds: float,
                   warmup: int = 10) -> Series:
    """Round trips of ``GET path`` through the host library (plain or encrypted)."""
    for _ in range(warmup):
        tap.get(path).body()
    s = Series(name)
    clock = time.perf_counter
    start = clock()
    while len(s.samples) < count and clock() - start < max_seconds:
        t0 = clock()
        resp = tap.get(path)
        s.samples.append(clock() - t0)
        if not resp.ok:
            s.errors += 1
    s.wall = clock() - start
    return s


def timed(fn: Callable[[], object], times: int) -> list[float]:
    """Durations of ``times`` calls of ``fn``."""
    out = []
    for _ in range(times):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def encrypted_overhead(port: int, count: int, max_seconds: float,
                       logins: int) -> dict[str, object]:
    """The same variable read in clear and inside a SCRAM session (encrypted frames, IV
    period 100); SCRAM and basic login times. Leaves the board's security options as found.
    """
    path = "/1029/5/4"
    out: dict[str, object] = {}
    with tap_client(port) as tap:
        if not (hasattr(tap, "auth") and hasattr(tap, "encryption")):
            raise TwintapError("the host library has no tap.auth/tap.encryption")
        out["plain"] = library_series("plain", tap, path, count, max_seconds)

        def basic() -> None:
            tap.auth.login("admin", "admin", method="basic")
            tap.auth.logout()

        out["login_basic"] = timed(basic, logins)
        before = tap.auth.options()
        tap.auth.login("admin", "admin", method="basic")
        tap.put("/1024//6", struct.pack(">H", SCRAM_OPTIONS)).body()
        tap.auth.logout()
        try:
            def scram() -> None:
                tap.auth.login("admin", "admin")
                tap.auth.logout()

            out["login_scram"] = timed(scram, logins)
            if tap.auth.login("admin", "admin") != "scram" or not tap.encryption.active:
                raise TwintapError("the SCRAM login did not start an encrypted session")
            out["encrypted"] = library_series("encrypted", tap, path, count, max_seconds)
            out["frames"] = tap.encryption.frames
        finally:
            if tap.auth.user is None:
                tap.auth.login("admin", "admin")
            tap.put("/1024//6", struct.pack(">H", before)).body()
            tap.auth.logout()
    return out
