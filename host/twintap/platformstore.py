"""The bench platform's store (SQLite, ``platform.db``): shadows, event log, acks.

Per instance (``app``, ``cid``; events on an ICApp topic are kept under ``icapp:{icappId}``):
attributes, location, property declarations (``dt``, ``rwx``, unit) and the last value of each
property, registration time, last seen; the event log with sequence checks; the acks.

Sequence checks, by the ``seq`` of each event (in ``msg``, else at the top level): a seq seen
before is a duplicate (stored once, the row's ``dups`` counted); a seq past the next expected
one is a gap (``gaps`` counts them, ``missing`` the seqs not received); an older seq not seen
yet arrives late (stored, flagged, ``missing`` goes down, the shadow is not rolled back).
A seq of 0 or 1 with a different payload than the one stored under it is a restarted counter
(a board whose flash was wiped): a new sequence ``epoch`` begins.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from twintap import TwintapError
from twintap.proto import rpzcodes as rc

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    app TEXT NOT NULL, cid TEXT NOT NULL,
    registered REAL, registrations INTEGER NOT NULL DEFAULT 0, last_seen REAL,
    att TEXT NOT NULL DEFAULT '{}', loc TEXT,
    epoch INTEGER NOT NULL DEFAULT 0, first_seq INTEGER, last_seq INTEGER,
    events INTEGER NOT NULL DEFAULT 0, gaps INTEGER NOT NULL DEFAULT 0,
    missing INTEGER NOT NULL DEFAULT 0, dups INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app, cid)
);
CREATE TABLE IF NOT EXISTS props (
    app TEXT NOT NULL, cid TEXT NOT NULL, n TEXT NOT NULL,
    declared INTEGER NOT NULL DEFAULT 0, dt TEXT, rwx INTEGER, u TEXT,
    v TEXT, has_v INTEGER NOT NULL DEFAULT 0, updated REAL,
    PRIMARY KEY (app, cid, n)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL, cid TEXT NOT NULL, t REAL NOT NULL,
    epoch INTEGER NOT NULL DEFAULT 0, seq INTEGER, mid TEXT, evt TEXT, n TEXT, v TEXT,
    body TEXT NOT NULL, dups INTEGER NOT NULL DEFAULT 0, late INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_seq ON events (app, cid, epoch, seq);
CREATE TABLE IF NOT EXISTS acks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL, cid TEXT NOT NULL, t REAL NOT NULL,
    ref TEXT, mid TEXT, op INTEGER, msg TEXT, err TEXT
);
"""

#: ``dt`` values twintap uses, and the JSON types their values take
DT_TYPES: dict[str, tuple[type, ...]] = {
    "boolean": (bool,), "int": (int,), "float": (int, float), "string": (str,),
}


class RequestError(Exception):
    """A request the platform answers with an error status and a short reason."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _items(value: object, what: str) -> list[dict]:
    """One object or an array of objects -> a list of objects."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, dict) for i in items):
        raise RequestError(rc.BAD_REQUEST, f"{what}: an object or an array of objects")
    return items


def _name(item: dict, what: str) -> str:
    n = item.get("n")
    if not isinstance(n, str) or not n:
        raise RequestError(rc.BAD_REQUEST, f"{what}: 'n' must be a non-empty string")
    return n


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_value(dt: str | None, v: object, name: str) -> None:
    """Raise NOT_ACCEPTABLE when ``v`` is not of the declared type (null is always fine)."""
    types = DT_TYPES.get(dt or "")
    if v is None or types is None:
        return
    ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
    if not ok:
        raise RequestError(rc.NOT_ACCEPTABLE, f"value of {name!r} is not a {dt}")


@dataclass
class Registration:
    """A validated PATCH: attributes, property declarations and location (each optional)."""

    att: list[dict]
    prop: list[dict]
    loc: dict | None


def parse_registration(msg: object) -> Registration:
    """Validate a registration ``msg`` (spec: "att", "prop", "loc", each independent)."""
    if not isinstance(msg, dict) or not any(k in msg for k in ("att", "prop", "loc")):
        raise RequestError(rc.BAD_REQUEST, "msg must be an object with att, prop or loc")
    att = []
    if "att" in msg:
        for a in _items(msg["att"], "att"):
            n = _name(a, "att")
            if "v" not in a:
                raise RequestError(rc.BAD_REQUEST, f"att {n!r} has no 'v'")
            att.append({"n": n, "v": a["v"]})
    prop = []
    if "prop" in msg:
        for p in _items(msg["prop"], "prop"):
            n = _name(p, "prop")
            dt, rwx, u = p.get("dt"), p.get("rwx"), p.get("u")
            if not isinstance(dt, str):
                raise RequestError(rc.BAD_REQUEST, f"prop {n!r}: 'dt' must be a string")
            if not isinstance(rwx, int) or isinstance(rwx, bool) or not 0 <= rwx <= 7:
                raise RequestError(rc.BAD_REQUEST, f"prop {n!r}: 'rwx' must be 0..7")
            if u is not None and not isinstance(u, str):
                raise RequestError(rc.BAD_REQUEST, f"prop {n!r}: 'u' must be a string")
            d = {"n": n, "dt": dt, "rwx": rwx, "u": u}
            if "v" in p:
                check_value(dt, p["v"], n)
                d["v"] = p["v"]
            prop.append(d)
    loc = None
    if "loc" in msg:
        loc = msg["loc"]
        if not isinstance(loc, dict) or not _number(loc.get("lat")) or not _number(
            loc.get("lng")
        ):
            raise RequestError(rc.BAD_REQUEST, "loc must be {\"lat\": number, \"lng\": number}")
        if not (-90 <= loc["lat"] <= 90 and -180 <= loc["lng"] <= 180):
            raise RequestError(rc.BAD_REQUEST, "loc out of range")
        loc = {"lat": loc["lat"], "lng": loc["lng"]}
    return Registration(att, prop, loc)


@dataclass
class EventOutcome:
    """What the store made of one event: status is new, late, dup or restart."""

    id: int
    seq: int | None
    status: str
    gap: tuple[int, int] | None = None


def _dumps(v: object) -> str:
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


class Store:
    """The platform's SQLite store; safe to use from several threads of one process."""

    def __init__(self, path: Path | str, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise TwintapError(f"no platform store at {self.path} (run twintap platform serve)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        self.db.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        if create:
            with self.lock, self.db:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self.lock:
            self.db.close()

    # -- instances -----------------------------------------------------------------------
    def touch(self, app: str, cid: str, t: float | None = None) -> None:
        """The instance exists and was heard from at ``t``."""
        t = time.time() if t is None else t
        with self.lock, self.db:
            self.db.execute(
                "INSERT INTO instances (app, cid, last_seen) VALUES (?, ?, ?) "
                "ON CONFLICT (app, cid) DO UPDATE SET last_seen = excluded.last_seen",
                (app, cid, t),
            )

    def _instance(self, app: str, cid: str) -> sqlite3.Row:
        row = self.db.execute(
            "SELECT * FROM instances WHERE app = ? AND cid = ?", (app, cid)
        ).fetchone()
        if row is None:
            self.db.execute("INSERT INTO instances (app, cid) VALUES (?, ?)", (app, cid))
            return self._instance(app, cid)
        return row

    def _set_value(self, app: str, cid: str, n: str, v: object, t: float) -> None:
        self.db.execute(
            "INSERT INTO props (app, cid, n, v, has_v, updated) VALUES (?, ?, ?, ?, 1, ?) "
            "ON CONFLICT (app, cid, n) DO UPDATE SET v = excluded.v, has_v = 1, "
            "updated = excluded.updated",
            (app, cid, n, json.dumps(v), t),
        )

    def register(self, app: str, cid: str, reg: Registration, t: float | None = None) -> None:
        """Merge a registration into the instance's shadow (values given become current)."""
        t = time.time() if t is None else t
        with self.lock, self.db:
            inst = self._instance(app, cid)
            att = json.loads(inst["att"])
            att.update({a["n"]: a["v"] for a in reg.att})
            loc = json.dumps(reg.loc) if reg.loc is not None else inst["loc"]
            self.db.execute(
                "UPDATE instances SET att = ?, loc = ?, registered = ?, last_seen = ?, "
                "registrations = registrations + 1 WHERE app = ? AND cid = ?",
                (json.dumps(att), loc, t, t, app, cid),
            )
            for p in reg.prop:
                self.db.execute(
                    "INSERT INTO props (app, cid, n, declared, dt, rwx, u) "
                    "VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT (app, cid, n) DO UPDATE SET "
                    "declared = 1, dt = excluded.dt, rwx = excluded.rwx, u = excluded.u",
                    (app, cid, p["n"], p["dt"], p["rwx"], p["u"]),
                )
                if "v" in p:
                    self._set_value(app, cid, p["n"], p["v"], t)

    def read(self, app: str, cid: str, msg: object) -> list[dict]:
        """Answer a READ of declared properties: ``{}`` all, ``{"n"}`` one, ``[names]`` those.

        Every requested property the platform knows is returned with its value (null when it
        holds none); an unknown single name is NOT_FOUND, unknown names in an array are left
        out.
        """
        with self.lock:
            rows = {
                r["n"]: r for r in self.db.execute(
                    "SELECT n, v, has_v FROM props WHERE app = ? AND cid = ? ORDER BY n",
                    (app, cid),
                )
            }
        if isinstance(msg, dict) and not msg:
            names = list(rows)
        elif isinstance(msg, dict) and isinstance(msg.get("n"), str):
            if msg["n"] not in rows:
                raise RequestError(rc.NOT_FOUND, f"no such property: {msg['n']}")
            names = [msg["n"]]
        elif isinstance(msg, list) and all(isinstance(n, str) for n in msg):
            names = [n for n in dict.fromkeys(msg) if n in rows]
        else:
            raise RequestError(rc.BAD_REQUEST, "msg must be {}, {\"n\": name} or [names]")
        return [
            {"n": n, "v": json.loads(rows[n]["v"]) if rows[n]["has_v"] else None}
            for n in names
        ]

    # -- events --------------------------------------------------------------------------
    def add_event(
        self, app: str, cid: str, body: dict, msg: dict, t: float | None = None
    ) -> EventOutcome:
        """Log one event (``msg`` is the event object inside ``body``) and check its seq."""
        t = time.time() if t is None else t
        seq = msg.get("seq", body.get("seq"))
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            seq = None
        canonical = _dumps(body)
        with self.lock, self.db:
            inst = self._instance(app, cid)
            epoch, first, last = inst["epoch"], inst["first_seq"], inst["last_seq"]
            self.db.execute(
                "UPDATE instances SET last_seen = ? WHERE app = ? AND cid = ?", (t, app, cid)
            )
            status, gap = "new", None
            if seq is not None:
                row = self.db.execute(
                    "SELECT id, body FROM events WHERE app = ? AND cid = ? AND epoch = ? "
                    "AND seq = ? ORDER BY id LIMIT 1", (app, cid, epoch, seq),
                ).fetchone()
                if row is not None and (row["body"] == canonical or seq > 1):
                    self.db.execute("UPDATE events SET dups = dups + 1 WHERE id = ?", (row["id"],))
                    self.db.execute(
                        "UPDATE instances SET dups = dups + 1 WHERE app = ? AND cid = ?",
                        (app, cid),
                    )
                    return EventOutcome(row["id"], seq, "dup")
                if row is not None:  # seq 0 or 1 again, another payload: a restarted counter
                    epoch, first, last, status = epoch + 1, None, None, "restart"
                missing = 0
                if last is None:
                    first = last = seq
                elif seq == last + 1:
                    last = seq
                elif seq > last + 1:
                    gap, missing, last = (last + 1, seq - 1), seq - last - 1, seq
                elif seq >= first:
                    status, missing = "late", -1
                else:  # older than anything seen in this epoch
                    status, missing, first = "late", first - seq - 1, seq
                self.db.execute(
                    "UPDATE instances SET epoch = ?, first_seq = ?, last_seq = ?, "
                    "gaps = gaps + ?, missing = MAX(0, missing + ?) WHERE app = ? AND cid = ?",
                    (epoch, first, last, 1 if gap else 0, missing, app, cid),
                )
            n = msg.get("n") if isinstance(msg.get("n"), str) else None
            cur = self.db.execute(
                "INSERT INTO events (app, cid, t, epoch, seq, mid, evt, n, v, body, late) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    app, cid, t, epoch, seq, _dumps(body.get("mid")),
                    msg.get("_evt") if isinstance(msg.get("_evt"), str) else None,
                    n, json.dumps(msg["v"]) if "v" in msg else None, canonical,
                    1 if status == "late" else 0,
                ),
            )
            self.db.execute(
                "UPDATE instances SET events = events + 1 WHERE app = ? AND cid = ?", (app, cid)
            )
            # "_evt" marks a state change: the shadow follows (not with a late, older value)
            if status != "late" and "_evt" in msg and n is not None and "v" in msg:
                self._set_value(app, cid, n, msg["v"], t)
            return EventOutcome(cur.lastrowid, seq, status, gap)

    def add_ack(
        self, app: str, cid: str, ref: str, ack: dict, t: float | None = None
    ) -> None:
        """Record an ack; a successful READ/WRITE/UPDATE ack also updates the shadow."""
        t = time.time() if t is None else t
        op = ack.get("op") if isinstance(ack.get("op"), int) else None
        with self.lock, self.db:
            self._instance(app, cid)
            self.db.execute(
                "UPDATE instances SET last_seen = ? WHERE app = ? AND cid = ?", (t, app, cid)
            )
            self.db.execute(
                "INSERT INTO acks (app, cid, t, ref, mid, op, msg, err) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    app, cid, t, ref, _dumps(ack.get("mid")), op,
                    json.dumps(ack["msg"]) if "msg" in ack else None,
                    str(ack["err"]) if "err" in ack else None,
                ),
            )
            if op in (rc.READ, rc.WRITE, rc.UPDATE):
                msg = ack.get("msg")
                for it in msg if isinstance(msg, list) else [msg]:
                    if isinstance(it, dict) and isinstance(it.get("n"), str) and "v" in it:
                        self._set_value(app, cid, it["n"], it["v"], t)

    # -- queries -------------------------------------------------------------------------
    def instances(self) -> list[dict]:
        """Every instance, with its counters and shadow."""
        with self.lock:
            out = []
            for r in self.db.execute("SELECT * FROM instances ORDER BY app, cid"):
                d = dict(r)
                d["att"] = json.loads(d["att"])
                d["loc"] = json.loads(d["loc"]) if d["loc"] else None
                d["props"] = [
                    {
                        "n": p["n"], "declared": bool(p["declared"]), "dt": p["dt"],
                        "rwx": p["rwx"], "u": p["u"],
                        "v": json.loads(p["v"]) if p["has_v"] else None,
                    }
                    for p in self.db.execute(
                        "SELECT * FROM props WHERE app = ? AND cid = ? ORDER BY n",
                        (d["app"], d["cid"]),
                    )
                ]
                out.append(d)
            return out

    def events(
        self, app: str | None = None, cid: str | None = None, after: int = 0,
        limit: int | None = None,
    ) -> list[dict]:
        """Logged events with id > ``after``, oldest first (``limit``: the last ones only)."""
        where, params = ["id > ?"], [after]
        if app is not None:
            where.append("app = ?")
            params.append(app)
        if cid is not None:
            where.append("cid = ?")
            params.append(cid)
        sql = "SELECT * FROM events WHERE " + " AND ".join(where) + " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.lock:
            rows = [dict(r) for r in self.db.execute(sql, params)]
        for r in rows:
            r["v"] = json.loads(r["v"]) if r["v"] is not None else None
            r["mid"] = json.loads(r["mid"]) if r["mid"] is not None else None
            r["body"] = json.loads(r["body"])
        return rows[::-1]

    def acks(self, app: str | None = None, cid: str | None = None) -> list[dict]:
        """Recorded acks, oldest first."""
        sql, params = "SELECT * FROM acks", []
        if app is not None and cid is not None:
            sql, params = sql + " WHERE app = ? AND cid = ?", [app, cid]
        with self.lock:
            return [dict(r) for r in self.db.execute(sql + " ORDER BY id", params)]
