"""The cloud side through the real broker: SSR round trips against a bare MQTT ping-pong,
and event throughput from the board against a bare umqtt.simple publish loop.

Every client here is a persistent :class:`~twintap.mqttclient.Connection` (paho, TLS, the
broker's certificate checked), made once and used for many round trips.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from twintap import TwintapError, rpztopics
from twintap.benchlib.stats import Series
from twintap.mqttclient import Connection, Credentials
from twintap.proto import rpzcodes as rc


def no_delay(conn: Connection) -> Connection:
    """TCP_NODELAY on a connected client's socket: paho writes a PUBACK and the next PUBLISH
    as two segments, and Nagle would hold the second one for the broker's delayed ACK (about
    40 ms), which would measure this client, not the board."""
    sock = conn.client.socket()
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


class AckCollector:
    """An ``on_message`` handler that timestamps acks by their ``refId`` (the topic's tail)."""

    def __init__(self) -> None:
        self.q: queue.Queue[tuple[str, str, float, bytes]] = queue.Queue()

    def __call__(self, topic: str, payload: bytes) -> None:
        t = time.perf_counter()
        tp = rpztopics.parse(topic)
        if tp is not None and tp.kind == "ack":
            self.q.put((tp.cid, tp.ref or "", t, payload))

    def wait(self, ref: str, timeout: float) -> tuple[str, float, bytes]:
        """(cid, arrival time, payload) of the next ack for ``ref`` (others are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TwintapError(f"no ack for SSR {ref} within {timeout:g} s")
            try:
                cid, got, t, payload = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if got == ref:
                return cid, t, payload


def ssr_round_trips(url: str, platform: Credentials, app: str, cid: str, count: int,
                    max_seconds: float, mid0: int = 1000) -> tuple[Series, bytes]:
    """READ ``setpoint`` SSRs one after the other, each timed from publish to ack; returns
    the series and the last ack's payload (the baseline answers with the same bytes)."""
    acks = AckCollector()
    topic = rpztopics.ssr(app, cid)
    with Connection(url, platform, client_id=f"bench-ssr-{cid}", on_message=acks) as conn:
        no_delay(conn.connect(10))
        conn.subscribe([rpztopics.register(app, cid) + "/ack/+"], 1)
        last = b""
        s = Series("ssr")
        clock = time.perf_counter
        start = clock()
        for i in range(count + 5):
            mid = mid0 + i
            body = json.dumps({"mid": mid, "op": rc.READ, "msg": {"n": "setpoint"}})
            t0 = clock()
            conn.publish(topic, body, 1, wait=False)
            _, t1, last = acks.wait(str(mid), 10)
            if i < 5:  # warm-up
                start = clock()
                continue
            s.samples.append(t1 - t0)
            if not _ok(last):
                s.errors += 1
            if clock() - start > max_seconds:
                break
        s.wall = clock() - start
    return s, last


def _ok(payload: bytes) -> bool:
    try:
        op = json.loads(payload).get("op")
    except (ValueError, AttributeError):
        return False
    return isinstance(op, int) and not rc.is_error(op)


class Responder:
    """A bare stand-in device: a paho client with a board's account that answers every SSR
    on its topics at once with ``answer`` (bytes) on ``.../ack/{mid}``."""

    def __init__(self, url: str, creds: Credentials, app: str, cid: str,
                 answer: Callable[[dict], bytes]) -> None:
        self.app, self.cid = app, cid
        self.answer = answer
        self.conn = Connection(url, creds, client_id=rpztopics.client_id(app, cid),
                               on_message=self._on_message)

    def start(self) -> Responder:
        """Connect and subscribe to the device's SSR topics (its own and the app's)."""
        no_delay(self.conn.connect(10))
        _, sub = rpztopics.device_topics(self.app, self.cid)
        self.conn.subscribe(list(sub), 1)
        return self

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            req = json.loads(payload)
        except ValueError:
            return
        ref = req.get("ref", req.get("mid", 0))
        self.conn.publish(rpztopics.ack(self.app, self.cid, ref), self.answer(req), 1,
                          wait=False)

    def stop(self) -> None:
        """Disconnect the stand-in."""
        self.conn.close()


def ping_pong(url: str, platform: Credentials, device: Credentials, app: str, cid: str,
              answer: bytes, count: int, max_seconds: float) -> Series:
    """The floor of an SSR round trip: the same topics, QoS and payload sizes, answered by a
    bare paho client (no board) through the same broker."""
    r = Responder(url, device, app, cid, lambda req: answer).start()
    try:
        return ssr_round_trips(url, platform, app, cid, count, max_seconds, mid0=900000)[0]
    finally:
        r.stop()


@dataclass
class Throughput:
    """Messages counted at a subscriber: how many, and between which arrival times."""

    sent: int
    received: int
    first: float
    last: float
    dropped: int = 0

    @property
    def rate(self) -> float:
        """Messages per second at the subscriber, first to last arrival."""
        span = self.last - self.first
        return (self.received - 1) / span if self.received > 1 and span > 0 else 0.0


class Counter:
    """An ``on_message`` handler counting messages whose payload contains ``needle``."""

    def __init__(self, needle: bytes = b"") -> None:
        self.needle = needle
        self.n = 0
        self.first = 0.0
        self.last = 0.0
        self.lock = threading.Lock()

    def __call__(self, topic: str, payload: bytes) -> None:  # noqa: ARG002
        if self.needle and self.needle not in payload:
            return
        t = time.perf_counter()
        with self.lock:
            if not self.n:
                self.first = t
            self.n += 1
            self.last = t

    def reset(self) -> None:
        """Count from zero again."""
        with self.lock:
            self.n = 0
            self.first = self.last = 0.0

    def drain(self, expected: int, quiet: float, limit: float) -> None:
        """Wait until ``expected`` messages came, or none came for ``quiet`` seconds (what
        was lost stays lost), at most ``limit`` seconds."""
        end = time.monotonic() + limit
        seen, since = self.n, time.monotonic()
        while self.n < expected and time.monotonic() < end:
            time.sleep(0.02)
            if self.n != seen:
                seen, since = self.n, time.monotonic()
            elif time.monotonic() - since > quiet:
                return


def subscriber(url: str, platform: Credentials, topic: str, counter: Counter,
               name: str) -> Connection:
    """A connected platform client counting what arrives on ``topic`` (QoS 1 grant)."""
    conn = Connection(url, platform, client_id=f"bench-sub-{name}", on_message=counter)
    no_delay(conn.connect(10))
    conn.subscribe([topic], 1)
    return conn


def events_dropped(tap_port: int) -> int | None:
    """The board's ``events_dropped`` (Tap variable 240), or None when it cannot be read."""
    from twintap.benchlib.tapbench import RawTcp
    from twintap.proto import frame

    c = RawTcp(tap_port)
    try:
        status, data = c.request(frame.encode_request(frame.GET, 1029, 240, 4))
    finally:
        c.close()
    return int.from_bytes(data, "big") if status == 0x45 and data else None


def event_path_ready(url: str, platform: Credentials, app: str, cid: str, tap_port: int,
                     timeout: float = 30.0) -> float:
    """One Tap write, and wait for its change event at a platform subscriber: the board's
    cloud session is up to its send loop (registration and the platform READ done).
    Returns the seconds it took."""
    from twintap.benchlib.procs import until
    from twintap.benchlib.tapbench import RawTcp, set_setpoint

    counter = Counter(b'"setpoint"')
    conn = subscriber(url, platform, rpztopics.event(app, cid), counter, f"probe-{cid}")
    t0 = time.monotonic()
    try:
        c = RawTcp(tap_port)
        try:
            if c.exchange(set_setpoint(31000), 3) != b"\x44\x90\x00":
                raise TwintapError("the board refused a setpoint write")
        finally:
            c.close()
        until(lambda: counter.n, timeout, "the board's first change event")
    finally:
        conn.close()
    return time.monotonic() - t0


def board_events(url: str, platform: Credentials, app: str, cid: str, tap_port: int,
                 seconds: float, quiet: float) -> Throughput:
    """Tap writes of the setpoint as fast as one TCP client goes, for ``seconds``; the
    change events the board publishes are counted at a platform subscriber."""
    from twintap.benchlib.tapbench import RawTcp, set_setpoint

    counter = Counter(b'"setpoint"')
    conn = subscriber(url, platform, rpztopics.event(app, cid), counter, f"ev-{cid}")
    try:
        dropped0 = events_dropped(tap_port)
        c = RawTcp(tap_port)
        writes = 0
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                writes += 1
                if c.exchange(set_setpoint(1000 + writes % 20000), 3) != b"\x44\x90\x00":
                    raise TwintapError("the board refused a setpoint write")
        finally:
            c.close()
        dropped1 = events_dropped(tap_port)
        dropped = (dropped1 - dropped0) if dropped0 is not None and dropped1 is not None else 0
        counter.drain(writes - dropped, quiet, limit=max(10.0, seconds * 3))
        # drops in the outbox can also happen while it drains
        after = events_dropped(tap_port)
        if after is not None and dropped0 is not None:
            dropped = after - dropped0
    finally:
        conn.close()
    return Throughput(writes, counter.n, counter.first, counter.last, dropped)


def umqtt_events(loop_factory: Callable[[dict], object], url: str, platform: Credentials,
                 device: Credentials, ca_der: Path, app: str, cid: str, qos: int,
                 seconds: float, payload: str, quiet: float) -> Throughput:
    """The floor: umqtt.simple publishing ``payload`` on the device's event topic in a bare
    loop for ``seconds`` (QoS ``qos``), counted at the same kind of subscriber."""
    from twintap.mqttclient import parse_url

    b = parse_url(url)
    counter = Counter()
    topic = rpztopics.event(app, cid)
    conn = subscriber(url, platform, topic, counter, f"ev-{cid}-{qos}")
    try:
        loop = loop_factory({
            "client_id": rpztopics.client_id(app, cid), "host": b.host, "port": b.port,
            "user": device.username, "token": device.password, "ca": str(ca_der),
            "topic": topic, "payload": payload, "qos": qos, "seconds": seconds,
            "max": 10_000_000,
        })
        try:
            sent, _ = loop.result(seconds + 30)  # type: ignore[attr-defined]
        finally:
            loop.stop()  # type: ignore[attr-defined]
        counter.drain(sent, quiet, limit=max(10.0, seconds * 3))
    finally:
        conn.close()
    return Throughput(sent, counter.n, counter.first, counter.last)
