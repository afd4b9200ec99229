"""Helpers for tests that run virtual boards against the bench broker and platform."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from twintap.benchlib.procs import until as _until
from twintap.broker import BrokerDir
from twintap.platform import send_ssr
from twintap.platformstore import Store
from twintap.proto import frame, values

APP = "bench"


def provision(bench, flash: Path, cid: str, *, token: str | None = None,
              ca_der: bytes | None = None, username: str | None = None,
              client_id: str | None = None, **extra) -> str:
    """Give a board an account on the bench broker and write its config.json."""
    added = bench.add(APP, cid, replace=True)
    flash.mkdir(parents=True, exist_ok=True)
    (flash / "ca.der").write_bytes(ca_der or (bench.dir / "ca.der").read_bytes())
    rpz = {
        "broker": bench.url, "app_id": APP, "client_id": client_id or cid,
        "username": username or added.device.username, "token": token or added.token,
        "ca": "ca.der", "keepalive": 5, "timeout_ms": 5000,
        "backoff_min_ms": 200, "backoff_max_ms": 1000,
    }
    rpz.update(extra)
    (flash / "config.json").write_text(json.dumps({"rpz": rpz}))
    return added.token


def store(platform) -> Store:
    return Store(platform.dir / "platform.db", create=False)


def until(fn, timeout: float = 20.0, what: str = "condition"):
    """Poll the platform's store until fn() is truthy (not a sleep for readiness: a
    condition with a deadline); fails the test on the deadline."""
    return _until(fn, timeout, what, 0.1)


def instance(platform, cid: str) -> dict | None:
    for i in store(platform).instances():
        if i["app"] == APP and i["cid"] == cid:
            return i
    return None


def events(platform, cid: str, name: str | None = None) -> list[dict]:
    return [e for e in store(platform).events(APP, cid) if name is None or e["n"] == name]


def tap(board, method: int, path: str, payload: bytes = b"") -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", board.tcp_port), timeout=5) as s:
        obj, inst, res = frame.parse_path(path)
        s.sendall(frame.encode_request(method, obj, inst, res, payload))
        return frame.decode_response(s.recv(512))


def set_point(board, v: int) -> None:
    assert tap(board, frame.POST, "/1029/5/5", values.encode(values.INT16, v))[0] == 0x44


def ssr(bench, cid: str, op: int, msg: object, timeout: float = 10.0) -> dict:
    return send_ssr(bench.url, bench.platform_creds(), APP, cid, op, msg, timeout)[0].body


def online(board) -> None:
    board.wait_for(r"\[I\]\[rpz\] online as ")


class Bench2:
    """Just what provision() and ssr() need from a bench."""

    def __init__(self, d: Path, url: str) -> None:
        self.dir = d
        self.url = url

    def add(self, app, cid, **kw):
        from twintap.broker import add_device

        return add_device(self.dir, app, cid, **kw)

    def platform_creds(self):
        return BrokerDir(self.dir).platform_credentials()


