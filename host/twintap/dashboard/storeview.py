"""The dashboard's view of the platform store: a read-only SQLite connection of its own
(the platform process writes in WAL mode; readers never block it) and the JSON shapes the
page gets.

:class:`StoreView` opens ``platform.db`` lazily (the platform may start after the dashboard)
and reopens it when the file is replaced. :meth:`StoreView.poll` returns what changed since
the previous call: the instances (whenever they differ), new events and new acks.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from twintap.platform import DB_NAME, ONLINE_WINDOW
from twintap.platformstore import Store
from twintap.proto import rpzcodes as rc

#: events sent on the first poll (the page keeps its own ring)
BACKLOG = 500


class ReadOnlyStore(Store):
    """A :class:`Store` opened read-only (``mode=ro``): the dashboard only queries."""

    def __init__(self, path: Path | str) -> None:
        """Open ``path`` read-only (it must exist); the query methods are Store's own."""
        self.path = Path(path)
        uri = self.path.resolve().as_uri() + "?mode=ro"
        self.db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5)
        self.db.row_factory = sqlite3.Row
        self.lock = threading.RLock()

    def acks_after(self, after: int = 0, limit: int | None = None) -> list[dict]:
        """Recorded acks with id > ``after``, oldest first (``limit``: the last ones only)."""
        sql = "SELECT * FROM acks WHERE id > ? ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.lock:
            rows = [dict(r) for r in self.db.execute(sql, (after,))]
        return rows[::-1]


def rights(rwx: int | None) -> str:
    """A Unix-order ``rwx`` mask (read 4, write 2, execute 1) as ``rw-``; ``?`` when unknown."""
    if not isinstance(rwx, int):
        return "?"
    return "".join(c if rwx & bit else "-" for c, bit in (("r", 4), ("w", 2), ("x", 1)))


def status_text(op: object) -> str:
    """A Rapidomize op-code or status as words and code: ``CHANGED 2.04``."""
    if not isinstance(op, int) or isinstance(op, bool):
        return "no op"
    return f"{rc.name(op)} {rc.dotted(op)}"


def device_json(inst: dict, now: float, window: float = ONLINE_WINDOW) -> dict:
    """One instance of :meth:`Store.instances` as the page shows it."""
    seen = inst.get("last_seen")
    return {
        "app": inst["app"], "cid": inst["cid"],
        "online": seen is not None and now - seen <= window,
        "last_seen": seen, "registered": inst.get("registered"),
        "registrations": inst.get("registrations", 0),
        "events": inst.get("events", 0), "gaps": inst.get("gaps", 0),
        "missing": inst.get("missing", 0), "dups": inst.get("dups", 0),
        "att": inst.get("att") or {}, "loc": inst.get("loc"),
        "props": [
            {**p, "rights": rights(p.get("rwx"))} for p in inst.get("props", [])
        ],
    }


def event_json(e: dict) -> dict:
    """One logged event, without its raw body (its ``src`` taken out of it)."""
    body = e.get("body") if isinstance(e.get("body"), dict) else {}
    msg = body.get("msg") if isinstance(body.get("msg"), dict) else {}
    src = msg.get("src") if isinstance(msg.get("src"), str) else None
    return {
        "id": e["id"], "app": e["app"], "cid": e["cid"], "t": e["t"], "seq": e["seq"],
        "evt": e["evt"], "n": e["n"], "v": e["v"], "src": src,
        "late": bool(e["late"]), "dups": e["dups"],
    }


def ack_json(a: dict) -> dict:
    """One recorded ack, with its status in words and code."""
    msg = json.loads(a["msg"]) if a.get("msg") is not None else None
    op = a.get("op")
    return {
        "id": a["id"], "app": a["app"], "cid": a["cid"], "t": a["t"], "ref": a["ref"],
        "op": op, "status": status_text(op),
        "ok": isinstance(op, int) and not rc.is_error(op),
        "msg": msg, "err": a.get("err"),
    }


@dataclass
class Changes:
    """What one :meth:`StoreView.poll` found."""

    devices: list[dict] | None = None  # None: unchanged since the last poll
    events: list[dict] = field(default_factory=list)
    acks: list[dict] = field(default_factory=list)
    error: str | None = None


class StoreView:
    """Polls ``DIR/platform.db`` for the dashboard (call :meth:`poll` from one thread)."""

    def __init__(self, platform_dir: Path | str, window: float = ONLINE_WINDOW) -> None:
        self.path = Path(platform_dir) / DB_NAME
        self.window = window
        self.store: ReadOnlyStore | None = None
        self._ino: int | None = None
        self.last_event = 0
        self.last_ack = 0
        self._devices_key: str | None = None
        self._devices_at = 0.0

    def _open(self) -> ReadOnlyStore | None:
        try:
            ino = self.path.stat().st_ino
        except OSError:
            self.close()
            return None
        if self.store is not None and ino != self._ino:  # a new store: start over
            self.close()
        if self.store is None:
            self.store = ReadOnlyStore(self.path)
            self._ino = ino
            self.last_event = self.last_ack = 0
            self._devices_key = None
        return self.store

    def close(self) -> None:
        """Close the connection (the next poll opens it again)."""
        if self.store is not None:
            self.store.close()
            self.store = None

    def poll(self, refresh: float = 2.0) -> Changes:
        """Instances (when they changed, or every ``refresh`` seconds for the online state),
        events and acks recorded since the previous poll."""
        out = Changes()
        try:
            store = self._open()
            if store is None:
                out.error = f"no platform store yet at {self.path}"
                if self._devices_key != "":
                    self._devices_key = ""
                    out.devices = []
                return out
            now = time.time()
            devices = [device_json(i, now, self.window) for i in store.instances()]
            key = json.dumps(devices, sort_keys=True)
            if key != self._devices_key or now - self._devices_at >= refresh:
                self._devices_key, self._devices_at = key, now
                out.devices = devices
            first = self.last_event == 0
            rows = store.events(after=self.last_event, limit=BACKLOG if first else None)
            if rows:
                self.last_event = rows[-1]["id"]
            out.events = [event_json(e) for e in rows]
            acks = store.acks_after(self.last_ack, limit=100 if self.last_ack == 0 else None)
            if acks:
                self.last_ack = acks[-1]["id"]
            out.acks = [ack_json(a) for a in acks]
        except sqlite3.Error as e:
            self.close()
            out.error = f"cannot read {self.path}: {e}"
        return out
