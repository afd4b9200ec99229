"""SSR fuzz: a few hundred random server-sent requests, malformed and valid, to a board
through mosquitto. Each is answered with the status the Rapidomize contract names for its
kind (spec rapidomize.md, "SSR handling"), on one connection the board never loses, and the
board keeps serving Tap."""

from __future__ import annotations

import json
import queue
import random
import string

from tests.rpz.boards import APP, online, provision, tap
from twintap.proto import frame, tapcodes
from twintap.proto import rpzcodes as rc

SEED = 20261122
COUNT = 300
LIMIT = 400  # ssr_max_bytes


def _name(rng: random.Random) -> str:
    return "ghost_" + "".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(1, 12)))


def _garbage(rng: random.Random) -> bytes:
    while True:
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(1, 60)))
        try:
            json.loads(raw)
        except ValueError:  # UnicodeDecodeError is one
            return raw


def case(rng: random.Random, mid: int) -> tuple[str, bytes, int]:
    """One request: (kind, payload, the status its ack must carry)."""
    kind = rng.choice([
        "garbage", "not-object", "no-op", "no-mid", "bad-mid", "status-op", "bad-op",
        "unknown-op", "unknown-name", "name-type", "wrong-type", "out-of-range", "read-only",
        "no-value", "delete", "huge", "nested", "read", "write", "bad-ref", "ref",
    ])

    def req(op: object, msg: object, **extra: object) -> bytes:
        return json.dumps({"mid": mid, "op": op, "msg": msg, **extra}).encode()

    if kind == "garbage":
        return kind, _garbage(rng), rc.BAD_REQUEST
    if kind == "not-object":
        value = rng.choice([7, -3.5, "read", [1, 2], None, True, [{"mid": mid, "op": 1}]])
        return kind, json.dumps(value).encode(), rc.BAD_REQUEST
    if kind == "no-op":
        return kind, json.dumps({"mid": mid, "msg": {"n": "setpoint"}}).encode(), rc.BAD_REQUEST
    if kind == "no-mid":
        return kind, json.dumps({"op": rc.READ, "msg": {"n": "setpoint"}}).encode(), \
            rc.BAD_REQUEST
    if kind == "bad-mid":  # a mid must be a number: these would not even make an ack topic
        bad = rng.choice(["a/#", "+", "x", 1.5, [mid], {"m": mid}, True])
        return kind, json.dumps({"mid": bad, "op": rc.READ, "msg": {}}).encode(), \
            rc.BAD_REQUEST
    if kind == "status-op":
        return kind, req(rng.choice([0x40, 0x44, 0x80, 0x84, 0xA0]), {}), rc.BAD_REQUEST
    if kind == "bad-op":
        return kind, req(rng.choice(["1", 1.0, [1], None, -1, 256, 2**40]), {}), rc.BAD_REQUEST
    if kind == "unknown-op":
        return kind, req(rng.randint(0x08, 0x1F), {"n": "setpoint"}), rc.BAD_REQUEST
    if kind == "unknown-name":
        return kind, req(rc.READ, {"n": _name(rng)}), rc.NOT_FOUND
    if kind == "name-type":
        return kind, req(rc.READ, {"n": rng.choice([5, None, [], {"n": "x"}])}), rc.BAD_REQUEST
    if kind == "wrong-type":
        v = rng.choice(["warm", [1], {"v": 1}, None])
        return kind, req(rng.choice([rc.WRITE, rc.UPDATE]), {"n": "setpoint", "v": v}), \
            rc.NOT_ACCEPTABLE
    if kind == "out-of-range":
        v = rng.choice([40000, -40000, 2**40, -(2**63)])
        return kind, req(rc.WRITE, {"n": "setpoint", "v": v}), rc.NOT_ACCEPTABLE
    if kind == "read-only":
        return kind, req(rc.WRITE, {"n": "temperature", "v": rng.randint(0, 50)}), rc.FORBIDDEN
    if kind == "no-value":
        return kind, req(rc.WRITE, {"n": "setpoint"}), rc.BAD_REQUEST
    if kind == "delete":
        return kind, req(rng.choice([rc.DELETE, rc.PATCH]), {"n": "setpoint"}), rc.FORBIDDEN
    if kind == "huge":
        pad = "z" * rng.randint(LIMIT, 3 * LIMIT)
        return kind, req(rc.WRITE, {"n": "label", "v": pad}), rc.PAYLOAD_TOO_LARGE
    if kind == "nested":
        depth = rng.randint(20, 150)
        return kind, req(rc.READ, json.loads("[" * depth + "]" * depth)), rc.BAD_REQUEST
    if kind == "bad-ref":  # a ref names the ack topic: these would not make one
        bad = rng.choice(["a/b", "#", "+", "", "r" * 65, [mid], {"r": 1}, 1.5])
        return kind, req(rc.READ, {"n": "setpoint"}, ref=bad), rc.BAD_REQUEST
    if kind == "ref":
        return kind, req(rc.READ, {"n": "setpoint"}, ref="r%d" % mid), rc.READ
    if kind == "read":
        return kind, req(rc.READ, {"n": "setpoint"}), rc.READ
    return kind, req(rc.WRITE, {"n": "setpoint", "v": rng.randint(-30000, 30000)}), rc.WRITE


def test_random_ssrs_get_the_contracts_status(bench, platform, start_board, tmp_path):
    flash = tmp_path / "flash"
    provision(bench, flash, "fuzz", ssr_max_bytes=LIMIT, ssr_per_s=100000)
    b = start_board(flash=flash)
    online(b)
    acks: queue.Queue[tuple[str, dict]] = queue.Queue()
    conn = bench.connect(bench.platform_creds(),
                         on_message=lambda t, p: acks.put((t, json.loads(p))))
    conn.subscribe([f"/api/v1/mo/{APP}/cid/fuzz/ack/+"])
    rng = random.Random(SEED)
    seen: dict[str, int] = {}
    for i in range(COUNT):
        mid = 1000 + i
        kind, payload, want = case(rng, mid)
        seen[kind] = seen.get(kind, 0) + 1
        conn.publish(f"$/api/v1/mo/{APP}/cid/fuzz", payload)
        try:
            topic, ack = acks.get(timeout=10)
        except queue.Empty:
            raise AssertionError(f"request {i} ({kind}) {payload[:80]!r}: no ack") from None
        assert ack.get("op") == want, (i, kind, payload[:120], ack)
        if want >= 0x80:
            assert isinstance(ack.get("err"), str) and ack["err"], (kind, ack)
        if kind not in ("garbage", "not-object", "no-mid", "bad-mid"):
            ref = f"r{mid}" if kind == "ref" else mid  # refId: the ref when there is one
            assert ack.get("mid") == mid and topic.endswith(f"/ack/{ref}"), (kind, topic, ack)
    assert len(seen) >= 20, seen  # (almost) every kind came up
    # one session all along: no request cost the board its connection to the broker
    assert sum("[rpz] online as" in line for line in b.lines) == 1
    assert not any("Traceback" in line or "session failed" in line for line in b.lines)
    assert tap(b, frame.GET, "/3//2")[0] == tapcodes.CONTENT
