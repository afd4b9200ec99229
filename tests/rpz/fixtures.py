"""Fixtures for the Rapidomize bench: a real mosquitto (``twintap broker run``) and the bench
platform (``twintap platform serve``), each a subprocess on a free port, ready when it prints
its READY line (never a sleep), stopped by its own process id at teardown.

Stand-in devices are paho clients with a board's credentials (``Bench.device``).
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.procs import LineProcess
from twintap import broker as brokerlib
from twintap import rpztopics
from twintap.mqttclient import Connection, Credentials
from twintap.vboard import free_port

BROKER_READY = re.compile(r"^READY (?P<url>mqtts://127\.0\.0\.1:\d+) ca=(?P<ca>\S+)$")
PLATFORM_READY = re.compile(r"^READY platform broker=(?P<url>\S+)$")


def twintap_cmd(*args: object) -> list[str]:
    """The command line of ``twintap ARGS`` in this interpreter."""
    return [sys.executable, "-m", "twintap", *map(str, args)]


def run_twintap(*args: object, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run ``twintap ARGS`` to completion; stdout and stderr as text."""
    return subprocess.run(twintap_cmd(*args), capture_output=True, text=True, timeout=timeout)


class Inbox:
    """An ``on_message`` handler that queues (topic, JSON or raw payload)."""

    def __init__(self) -> None:
        self.q: queue.Queue[tuple[str, object]] = queue.Queue()

    def __call__(self, topic: str, payload: bytes) -> None:
        try:
            body: object = json.loads(payload)
        except ValueError:
            body = payload
        self.q.put((topic, body))

    def get(self, timeout: float = 10.0) -> tuple[str, object]:
        """The next message; fails the test after ``timeout``."""
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s") from None

    def empty(self) -> bool:
        return self.q.empty()


@dataclass
class Bench:
    """A running broker: its directory, URL, and helpers to make clients."""

    dir: Path
    url: str
    proc: LineProcess
    conns: list[Connection] = field(default_factory=list)

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    def platform_creds(self) -> Credentials:
        return brokerlib.BrokerDir(self.dir).platform_credentials()

    def connect(self, creds: Credentials, client_id: str | None = None,
                on_message: Callable[[str, bytes], None] | None = None) -> Connection:
        """A connected client, closed at teardown."""
        c = Connection(self.url, creds, client_id, on_message=on_message)
        c.connect(10)
        self.conns.append(c)
        return c

    def add(self, app: str, cid: str, **kw) -> brokerlib.Added:
        """A board account, in effect on the running broker when this returns."""
        added = brokerlib.add_device(self.dir, app, cid, **kw)
        assert added.reloaded
        return added

    def device(self, app: str, cid: str, subscribe: bool = True,
               **kw) -> tuple[Connection, Inbox, str]:
        """A stand-in board: its account, a client with its credentials and client id,
        subscribed to its SSR topics; returns (connection, inbox, token)."""
        added = self.add(app, cid, **kw)
        assert added.token
        inbox = Inbox()
        conn = self.connect(
            Credentials(added.device.username, added.token, self.ca),
            rpztopics.client_id(app, cid), inbox,
        )
        if subscribe:
            _, sub = rpztopics.device_topics(app, cid, kw.get("icapp"))
            assert conn.subscribe(sub) == [1] * len(sub)
        return conn, inbox, added.token

    def close_clients(self) -> None:
        for c in self.conns:
            c.close()
        self.conns.clear()


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Bench:
    """``twintap broker run`` on a free port, for the whole module."""
    d = tmp_path_factory.mktemp("broker")
    proc = LineProcess(
        twintap_cmd("broker", "run", "--dir", d, "--port", free_port()), BROKER_READY
    )
    b = Bench(d, proc.ready["url"], proc)
    yield b
    b.close_clients()
    assert proc.stop() == 0, proc.lines


@pytest.fixture
def clients(bench: Bench) -> Bench:
    """The module's broker; clients made through it are closed after each test."""
    yield bench
    bench.close_clients()


@pytest.fixture(scope="module")
def platform(bench: Bench, tmp_path_factory) -> LineProcess:
    """``twintap platform serve`` against the module's broker."""
    d = tmp_path_factory.mktemp("platform")
    proc = LineProcess(
        twintap_cmd("platform", "serve", "--broker-dir", bench.dir, "--dir", d), PLATFORM_READY
    )
    proc.dir = d  # type: ignore[attr-defined]
    yield proc
    assert proc.stop() == 0, proc.lines


@pytest.fixture
def own_broker(tmp_path):
    """A broker of the test's own, to stop and start again on the same port."""
    d = tmp_path / "broker"
    port = free_port()
    procs = []

    def start() -> LineProcess:
        p = LineProcess(twintap_cmd("broker", "run", "--dir", d, "--port", port), BROKER_READY)
        procs.append(p)
        return p

    start.dir = d
    yield start
    for p in procs:
        p.stop()
