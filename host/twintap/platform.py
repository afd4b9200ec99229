"""``twintap platform``: the bench Rapidomize platform (the server side of spec/rapidomize.md).

``serve`` subscribes to every instance's requests, events and acks and keeps shadows and the
event log in ``DIR/platform.db`` (see :mod:`twintap.platformstore`):

- a registration (PATCH 0x06 on ``/api/v1/mo/{app}/cid/{cid}``) is validated and merged; the
  answer ``{"mid", "op": 0x44 CHANGED, "msg": {"att": N, "prop": N, "loc": bool}}`` (or
  ``{"mid", "op": 0x80, "err"}``) goes to ``$/api/v1/mo/{app}/cid/{cid}``;
- a READ (0x01, same topic; ``{}``, ``{"n"}`` or ``[names]``) is answered
  ``{"mid", "op": 0x45, "msg": [{"n", "v"}, ...]}`` from the shadow (0x84 for an unknown name);
- events are logged with gap and duplicate detection by ``seq``; acks are recorded.

``read``/``write``/``exec``/``info`` send one SSR to ``$/api/v1/mo/{app}/cid/{cid}`` (or, for
write and exec without ``--cid``, to every instance on ``$/api/v1/mo/{app}``) and print the ack
whose ``refId`` (the ``ref`` field when given, else the ``mid``) is theirs: exit 0 on success,
1 on an error status, 2 when no ack came in time. ``events`` and ``devices`` read the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from twintap import StopSignals, TwintapError, rpztopics, say, table
from twintap.broker import DEFAULT_DIR as DEFAULT_BROKER_DIR
from twintap.broker import BrokerDir
from twintap.mqttclient import Connection, Credentials
from twintap.platformstore import RequestError, Store, parse_registration
from twintap.proto import rpzcodes as rc

DEFAULT_DIR = Path(".twintap/platform")
DB_NAME = "platform.db"
ONLINE_WINDOW = 90.0  # seconds: an instance heard from this recently is shown online


def _text(v: object) -> str:
    return json.dumps(v, ensure_ascii=False)


def _who(app: str, cid: str) -> str:
    return f"{app}/cid/{cid}"


class Platform:
    """The platform's MQTT side over a :class:`Store`. :meth:`start`, then :meth:`stop`.

    :meth:`handle` is the protocol logic alone: topic and payload in, answers out.
    """

    def __init__(
        self,
        url: str,
        creds: Credentials,
        directory: Path | str = DEFAULT_DIR,
        echo: Callable[[str], None] | None = None,
        client_id: str | None = None,
    ) -> None:
        self.url = url
        self.creds = creds
        self.dir = Path(directory)
        self.echo = echo or say
        # One persistent session per platform store: while the platform is away (or the
        # broker restarts, with its persistence on) the broker keeps the devices' QoS 1
        # events for it, so that a board's outbox, emptied on PUBACK, loses nothing.
        self.client_id = client_id or "twintap-platform-" + hashlib.sha256(
            str(Path(self.dir).resolve()).encode()
        ).hexdigest()[:8]
        self.store: Store | None = None
        self.conn: Connection | None = None

    def start(self, timeout: float = 10.0) -> str:
        """Open the store, connect, subscribe; returns the READY line."""
        self.store = Store(self.dir / DB_NAME)
        self.conn = Connection(
            self.url, self.creds, self.client_id, on_message=self._on_message, log=self.echo,
            clean_session=False,
        )
        self.conn.connect(timeout)
        granted = self.conn.subscribe(list(rpztopics.PLATFORM_SUBSCRIPTIONS), 1, timeout)
        if any(g >= 0x80 for g in granted):
            self.stop()
            raise TwintapError("the broker refused the platform's subscriptions")
        return f"READY platform broker={self.url}"

    def stop(self) -> None:
        """Disconnect and close the store."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def _on_message(self, topic: str, payload: bytes) -> None:
        for out_topic, answer in self.handle(topic, payload):
            assert self.conn is not None
            self.conn.publish(out_topic, answer, 1, wait=False)

    # -- protocol ------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes, t: float | None = None) -> list[tuple[str, dict]]:
        """Process one message from a device; returns the answers to publish."""
        assert self.store is not None
        t = time.time() if t is None else t
        tp = rpztopics.parse(topic)
        if tp is None:
            self.echo(f"[W][platform] message on unexpected topic {topic}")
            return []
        app = tp.app if tp.app is not None else f"icapp:{tp.icapp}"
        who = _who(app, tp.cid)
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            body = None
        if tp.kind == "register":
            return self._request(tp.app or app, tp.cid, body, t)
        if not isinstance(body, dict):
            self.echo(f"[W][platform] {who}: {tp.kind} dropped: not a JSON object")
            return []
        if tp.kind in ("event", "icapp_event"):
            self._event(app, tp.cid, body, t)
        elif tp.kind == "ack":
            self._ack(app, tp.cid, tp.ref or "", body, t)
        return []

    def _request(self, app: str, cid: str, body: object, t: float) -> list[tuple[str, dict]]:
        assert self.store is not None
        who = _who(app, cid)
        reply_to = rpztopics.ssr(app, cid)
        mid = body.get("mid") if isinstance(body, dict) else None
        self.store.touch(app, cid, t)
        try:
            if not isinstance(body, dict):
                raise RequestError(rc.BAD_REQUEST, "payload is not a JSON object")
            op = body.get("op")
            if not isinstance(op, int) or isinstance(op, bool):
                raise RequestError(rc.BAD_REQUEST, "'op' must be an integer")
            if not rc.is_request(op):
                self.echo(f"[W][platform] {who}: status {rc.dotted(op)} on the request topic")
                return []
            if "mid" not in body:
                raise RequestError(rc.BAD_REQUEST, "no 'mid'")
            msg = body.get("msg")
            if op == rc.PATCH:
                reg = parse_registration(msg)
                self.store.register(app, cid, reg, t)
                self.echo(
                    f"[I][platform] {who} registered: {len(reg.att)} att, {len(reg.prop)} prop"
                    + (", loc" if reg.loc else "")
                )
                summary = {"att": len(reg.att), "prop": len(reg.prop), "loc": reg.loc is not None}
                return [(reply_to, {"mid": mid, "op": rc.CHANGED, "msg": summary})]
            if op == rc.READ:
                values = self.store.read(app, cid, {} if msg is None else msg)
                self.echo(f"[I][platform] {who} read {len(values)} properties")
                return [(reply_to, {"mid": mid, "op": rc.TUN_ACK, "msg": values})]
            raise RequestError(rc.BAD_REQUEST, f"op {rc.name(op)} is not served here")
        except RequestError as e:
            self.echo(f"[W][platform] {who}: {rc.name(e.status)} {rc.dotted(e.status)}: {e.text}")
            return [(reply_to, {"mid": mid, "op": e.status, "err": e.text})]

    def _event(self, app: str, cid: str, body: dict, t: float) -> None:
        assert self.store is not None
        who = _who(app, cid)
        msg = body.get("msg")
        for ev in msg if isinstance(msg, list) else [msg]:
            if not isinstance(ev, dict):
                self.echo(f"[W][platform] {who}: event dropped: 'msg' is not an object")
                continue
            out = self.store.add_event(app, cid, body, ev, t)
            seq = "-" if out.seq is None else out.seq
            if out.status == "dup":
                self.echo(f"[W][platform] {who} duplicate event seq={seq}")
                continue
            if out.gap:
                self.echo(f"[W][platform] {who} gap: seq {out.gap[0]}..{out.gap[1]} missing")
            if out.status == "restart":
                self.echo(f"[W][platform] {who} seq restarted at {seq}")
            what = ev.get("_evt", "-")
            value = f" {ev['n']}={_text(ev.get('v'))}" if isinstance(ev.get("n"), str) else ""
            late = " (late)" if out.status == "late" else ""
            self.echo(f"[I][platform] {who} event seq={seq} {what}{value}{late}")

    def _ack(self, app: str, cid: str, ref: str, body: dict, t: float) -> None:
        assert self.store is not None
        self.store.add_ack(app, cid, ref, body, t)
        op = body.get("op")
        status = f"{rc.name(op)} {rc.dotted(op)}" if isinstance(op, int) else "no op"
        self.echo(f"[I][platform] {_who(app, cid)} ack ref={ref} {status}")


# -- SSRs from the command line -----------------------------------------------------------------
@dataclass
class Ack:
    """One instance's answer to an SSR."""

    cid: str
    body: dict

    @property
    def ok(self) -> bool:
        """True unless the ack carries an error status (class 4 or 5) or is malformed."""
        op = self.body.get("op")
        return isinstance(op, int) and not isinstance(op, bool) and not rc.is_error(op)

    def describe(self) -> str:
        """``WRITE 0.02 {"n": ..}`` or ``NOT_FOUND 4.04: reason``."""
        op = self.body.get("op")
        if not isinstance(op, int) or isinstance(op, bool):
            return f"malformed ack: {_text(self.body)}"
        head = f"{rc.name(op)} {rc.dotted(op)}"
        if rc.is_error(op):
            return f"{head}: {self.body.get('err', '')}"
        return f"{head} {_text(self.body['msg'])}" if "msg" in self.body else head


def send_ssr(
    url: str,
    creds: Credentials,
    app: str,
    cid: str | None,
    op: int,
    msg: object,
    timeout: float = 5.0,
    ref: str | None = None,
) -> list[Ack]:
    """Send one SSR and collect its acks.

    To one instance (``cid``): returns the first ack, or raises ``TwintapError`` after
    ``timeout``. To every instance (``cid`` None, write and exec only): returns the acks that
    came within ``timeout`` (maybe none).
    """
    if cid is None and op not in (rc.WRITE, rc.EXEC):
        raise TwintapError("only write and exec go to every instance: give --cid")
    mid = secrets.randbelow(2**31 - 2) + 1
    want = str(ref) if ref is not None else str(mid)
    acks: queue.Queue[Ack] = queue.Queue()

    def on_message(topic: str, payload: bytes) -> None:
        tp = rpztopics.parse(topic)
        if tp is None or tp.kind != "ack" or tp.app != app:
            return
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            body = {"raw": payload.decode("utf-8", "replace")}
        if tp.ref == want or (ref is None and body.get("mid") == mid):
            acks.put(Ack(tp.cid, body))

    request: dict = {"mid": mid, "op": op, "msg": msg}
    if ref is not None:
        request["ref"] = ref
    if cid is None:
        ack_filter, target = f"{rpztopics.MO}{app}/cid/+/ack/+", rpztopics.ssr_all(app)
    else:
        ack_filter, target = rpztopics.register(app, cid) + "/ack/+", rpztopics.ssr(app, cid)
    with Connection(url, creds, on_message=on_message) as conn:
        conn.connect(timeout)
        conn.subscribe([ack_filter], 1, timeout)
        conn.publish(target, request, 1, timeout)
        deadline = time.monotonic() + timeout
        got: list[Ack] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                got.append(acks.get(timeout=left))
            except queue.Empty:
                break
            if cid is not None:
                return got
    if cid is not None:
        raise TwintapError(f"no ack within {timeout:g} s")
    return got


def parse_value(text: str) -> object:
    """A command-line value: JSON when it parses (``true``, ``12``, ``"12"``), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- CLI ---------------------------------------------------------------------------------------
def connection_settings(args) -> tuple[str, Credentials]:
    """Broker URL and platform credentials from the options and the broker directory."""
    creds = Credentials()
    url = args.broker
    bdir = BrokerDir(args.broker_dir) if args.broker_dir else None
    if bdir is not None and bdir.platform_json.is_file():
        creds = bdir.platform_credentials()
        url = url or bdir.running_url()
    if args.username:
        creds.username = args.username
        creds.password = args.password or os.environ.get("TWINTAP_PASSWORD")
    if args.ca:
        creds.ca = Path(args.ca)
    if not url:
        where = f" and no broker running in {bdir.path}" if bdir else ""
        raise TwintapError(f"no --broker URL{where}")
    if creds.username is None:
        raise TwintapError("no credentials: give --broker-dir or --username/--password")
    return url, creds


def serve(args) -> int:
    """``twintap platform serve``: play the platform until SIGINT/SIGTERM (exit 0)."""
    url, creds = connection_settings(args)
    p = Platform(url, creds, args.dir)
    stop = StopSignals()
    say(p.start())
    stop.wait()
    p.stop()
    say("[I][platform] stopped")
    return 0


def _ssr(args) -> int:
    op = {"read": rc.READ, "write": rc.WRITE, "exec": rc.EXEC, "info": rc.INFO}[args.ssr]
    if args.ssr == "read":
        names = args.names
        msg: object = {} if not names else {"n": names[0]} if len(names) == 1 else names
    elif args.ssr == "info":
        msg = {}
    else:
        msg = {"n": args.name}
        if args.value is not None:
            msg["v"] = parse_value(args.value)
    url, creds = connection_settings(args)
    acks = send_ssr(url, creds, args.app, args.cid, op, msg, args.timeout, args.ref)
    if args.cid is None and not acks:
        raise TwintapError(f"no ack within {args.timeout:g} s")
    for a in acks:
        if args.json:
            print(json.dumps(a.body if args.cid else {"cid": a.cid, **a.body}))
        else:
            print(a.describe() if args.cid else f"{_who(args.app, a.cid)} {a.describe()}")
    return 0 if all(a.ok for a in acks) else 1


def _event_line(e: dict) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["t"]))
    seq = "-" if e["seq"] is None else e["seq"]
    value = f" {e['n']}={_text(e['v'])}" if e["n"] is not None else ""
    flags = (" [late]" if e["late"] else "") + (f" [dup x{e['dups']}]" if e["dups"] else "")
    return f"{when} {_who(e['app'], e['cid'])} seq={seq} {e['evt'] or '-'}{value}{flags}"


def _events(args) -> int:
    store = Store(Path(args.dir) / DB_NAME, create=False)
    stop = StopSignals() if args.follow else None
    last = 0
    rows = store.events(args.app, args.cid, limit=args.limit)
    while True:
        for e in rows:
            last = e["id"]
            if args.json:
                print(json.dumps(e))
            else:
                print(_event_line(e))
        if not args.follow:
            break
        print(end="", flush=True)
        if stop.wait(0.25):  # tail: new rows, as `tail -f` polls
            break
        rows = store.events(args.app, args.cid, after=last)
    store.close()
    return 0


def _ago(t: float | None, now: float) -> str:
    if t is None:
        return "-"
    s = max(0, int(now - t))
    return f"{s}s ago" if s < 120 else f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago"


def _devices(args) -> int:
    store = Store(Path(args.dir) / DB_NAME, create=False)
    insts = store.instances()
    store.close()
    now = time.time()
    if args.json:
        for i in insts:
            i["online"] = i["last_seen"] is not None and now - i["last_seen"] <= args.window
            print(json.dumps(i))
        return 0
    rows = [("APP", "CID", "STATUS", "LAST SEEN", "REGISTERED", "EVENTS", "GAPS", "MISSING",
             "DUPS")]
    for i in insts:
        online = i["last_seen"] is not None and now - i["last_seen"] <= args.window
        reg = "-" if i["registered"] is None else time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(i["registered"])
        )
        rows.append((
            i["app"], i["cid"], "online" if online else "offline", _ago(i["last_seen"], now),
            reg, str(i["events"]), str(i["gaps"]), str(i["missing"]), str(i["dups"]),
        ))
    for line in table(rows):
        print(line)
    return 0


def add_parser(sub) -> None:
    """Register ``twintap platform``."""
    p = sub.add_parser("platform", help="play the Rapidomize platform (bench)")
    psub = p.add_subparsers(dest="platform_cmd", required=True)

    def with_store(q) -> None:
        q.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                       help=f"platform directory with {DB_NAME} (default: {DEFAULT_DIR})")

    def with_broker(q) -> None:
        q.add_argument("--broker", help="broker URL, e.g. mqtts://127.0.0.1:8883 "
                       "(default: the broker running in --broker-dir)")
        q.add_argument("--broker-dir", type=Path, default=DEFAULT_BROKER_DIR,
                       help="broker directory: platform account and CA "
                       f"(default: {DEFAULT_BROKER_DIR})")
        q.add_argument("--ca", help="CA certificate (PEM) to verify the broker with")
        q.add_argument("--username", help="user name (instead of the broker directory's)")
        q.add_argument("--password", help="password (or set TWINTAP_PASSWORD)")

    s = psub.add_parser("serve", help="serve devices until SIGINT/SIGTERM")
    with_store(s)
    with_broker(s)
    s.set_defaults(func=serve)

    for name, what in (("read", "read properties"), ("write", "write a property"),
                       ("exec", "execute a function"), ("info", "ask for the declaration")):
        q = psub.add_parser(name, help=f"SSR: {what} on a device and print its ack")
        q.add_argument("--app", required=True, help="app id")
        q.add_argument("--cid", default=None if name in ("write", "exec") else
                       rpztopics.DEFAULT_CID,
                       help="client id (default: _"
                       + ("; write and exec without --cid go to every instance)"
                          if name in ("write", "exec") else ")"))
        if name == "read":
            q.add_argument("names", nargs="*", metavar="NAME", help="properties (none: all)")
        elif name == "write":
            q.add_argument("name", metavar="NAME")
            q.add_argument("value", metavar="VALUE", help="JSON if it parses, else a string")
        elif name == "exec":
            q.add_argument("name", metavar="NAME")
            q.add_argument("value", metavar="VALUE", nargs="?", help="argument (JSON or text)")
        q.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the ack")
        q.add_argument("--ref", help="a 'ref' for the SSR (the ack comes on .../ack/REF)")
        q.add_argument("--json", action="store_true", help="print the ack as JSON")
        with_broker(q)
        q.set_defaults(func=_ssr, ssr=name)

    e = psub.add_parser("events", help="print the event log")
    with_store(e)
    e.add_argument("--app")
    e.add_argument("--cid")
    e.add_argument("--follow", "-f", action="store_true", help="then print new events")
    e.add_argument("--limit", type=int, help="only the last N events")
    e.add_argument("--json", action="store_true", help="one JSON object per event")
    e.set_defaults(func=_events)

    d = psub.add_parser("devices", help="print the instances the platform knows")
    with_store(d)
    d.add_argument("--window", type=float, default=ONLINE_WINDOW,
                   help=f"seconds since last heard to count as online (default {ONLINE_WINDOW:g})")
    d.add_argument("--json", action="store_true", help="one JSON object per instance")
    d.set_defaults(func=_devices)
