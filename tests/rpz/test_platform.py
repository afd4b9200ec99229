"""The bench platform against a real mosquitto, with paho clients as stand-in boards."""

from __future__ import annotations

import json
import threading

from tests.rpz.fixtures import Bench, LineProcess, run_twintap, twintap_cmd
from twintap import rpztopics
from twintap.mqttclient import Connection
from twintap.proto import rpzcodes as rc

DECLARATION = {
    "att": {"n": "model", "v": "twintap-unix"},
    "prop": [
        {"n": "led", "dt": "boolean", "rwx": 6, "v": False},
        {"n": "temp", "dt": "float", "rwx": 4, "v": 21.5, "u": "Cel"},
        {"n": "blink", "dt": "int", "rwx": 1},
    ],
    "loc": {"lat": 6.9, "lng": 79.8},
}


def register(conn: Connection, inbox, app: str, cid: str, msg: object = None, mid: int = 11):
    conn.publish(rpztopics.register(app, cid),
                 {"mid": mid, "op": rc.PATCH, "msg": DECLARATION if msg is None else msg})
    topic, answer = inbox.get()
    assert topic == rpztopics.ssr(app, cid)
    return answer


def request(conn: Connection, inbox, app: str, cid: str, body: object):
    conn.publish(rpztopics.register(app, cid), body)
    topic, answer = inbox.get()
    assert topic == rpztopics.ssr(app, cid)
    return answer


def devices(platform: LineProcess) -> dict[str, dict]:
    r = run_twintap("platform", "devices", "--dir", platform.dir, "--json")
    assert r.returncode == 0, r.stderr
    return {f"{d['app']}/cid/{d['cid']}": d for d in map(json.loads, r.stdout.splitlines())}


def test_registration_is_answered_and_stored(clients: Bench, platform: LineProcess):
    dev, inbox, _ = clients.device("preg", "dev1")
    answer = register(dev, inbox, "preg", "dev1", mid=4242)
    assert answer == {"mid": 4242, "op": rc.CHANGED, "msg": {"att": 1, "prop": 3, "loc": True}}
    platform.wait_for(r"preg/cid/dev1 registered: 1 att, 3 prop, loc")
    d = devices(platform)["preg/cid/dev1"]
    assert d["registered"] is not None and d["registrations"] == 1
    assert d["att"] == {"model": "twintap-unix"} and d["loc"] == {"lat": 6.9, "lng": 79.8}
    props = {p["n"]: p for p in d["props"]}
    assert props["temp"] == {"n": "temp", "declared": True, "dt": "float", "rwx": 4,
                             "u": "Cel", "v": 21.5}
    assert props["blink"]["v"] is None and props["led"]["v"] is False
    # each field on its own, one object or an array; a later PATCH merges
    answer = register(dev, inbox, "preg", "dev1", {"att": [{"n": "serial", "v": "TT1"}]}, 7)
    assert answer["op"] == rc.CHANGED and answer["mid"] == 7
    d = devices(platform)["preg/cid/dev1"]
    assert d["att"] == {"model": "twintap-unix", "serial": "TT1"} and len(d["props"]) == 3


def test_malformed_registrations_are_refused(clients: Bench, platform: LineProcess):
    dev, inbox, _ = clients.device("pbad", "dev1")
    for msg, status, why in (
        ({}, rc.BAD_REQUEST, "att, prop or loc"),
        ({"prop": {"n": "x", "dt": "int"}}, rc.BAD_REQUEST, "rwx"),
        ({"prop": [{"dt": "int", "rwx": 4}]}, rc.BAD_REQUEST, "'n'"),
        ({"att": [{"n": "a"}]}, rc.BAD_REQUEST, "no 'v'"),
        ({"att": []}, rc.BAD_REQUEST, "att"),
        ({"loc": {"lat": "north"}}, rc.BAD_REQUEST, "loc"),
        ({"prop": {"n": "x", "dt": "int", "rwx": 4, "v": "ten"}}, rc.NOT_ACCEPTABLE, "int"),
    ):
        answer = register(dev, inbox, "pbad", "dev1", msg, mid=99)
        assert answer["mid"] == 99 and answer["op"] == status, (msg, answer)
        assert why in answer["err"] and "msg" not in answer
    dev.publish(rpztopics.register("pbad", "dev1"), b"{not json")
    assert inbox.get()[1] == {"mid": None, "op": rc.BAD_REQUEST,
                              "err": "payload is not a JSON object"}
    answer = request(dev, inbox, "pbad", "dev1", {"mid": 5, "op": rc.DELETE, "msg": {}})
    assert answer["op"] == rc.BAD_REQUEST and answer["mid"] == 5
    assert devices(platform)["pbad/cid/dev1"]["registered"] is None


def test_read_of_declared_properties(clients: Bench, platform: LineProcess):
    dev, inbox, _ = clients.device("pread", "dev1")
    register(dev, inbox, "pread", "dev1")
    read = {"mid": 1, "op": rc.READ}
    assert request(dev, inbox, "pread", "dev1", {**read, "msg": {}}) == {
        "mid": 1, "op": rc.TUN_ACK,
        "msg": [{"n": "blink", "v": None}, {"n": "led", "v": False}, {"n": "temp", "v": 21.5}],
    }
    assert request(dev, inbox, "pread", "dev1", {**read, "msg": {"n": "temp"}})["msg"] == [
        {"n": "temp", "v": 21.5}
    ]
    assert request(dev, inbox, "pread", "dev1", {**read, "msg": ["temp", "nope", "led"]})[
        "msg"] == [{"n": "temp", "v": 21.5}, {"n": "led", "v": False}]
    answer = request(dev, inbox, "pread", "dev1", {"mid": 3, "op": rc.READ, "msg": {"n": "no"}})
    assert answer == {"mid": 3, "op": rc.NOT_FOUND, "err": "no such property: no"}
    answer = request(dev, inbox, "pread", "dev1", {"mid": 4, "op": rc.READ, "msg": 5})
    assert answer["op"] == rc.BAD_REQUEST
    # another instance of the app has a shadow of its own
    dev2, inbox2, _ = clients.device("pread", "dev2")
    assert request(dev2, inbox2, "pread", "dev2", {**read, "msg": {}})["msg"] == []


def event(seq: int, v: object, mid: int | None = None) -> dict:
    return {"mid": mid or 100 + seq, "op": rc.WRITE,
            "msg": {"_evt": "change", "n": "led", "v": v, "seq": seq, "src": "tap"}}


def test_events_are_logged_with_gap_and_duplicate_detection(clients: Bench,
                                                            platform: LineProcess):
    dev, inbox, _ = clients.device("pevt", "dev1")
    register(dev, inbox, "pevt", "dev1")
    topic = rpztopics.event("pevt", "dev1")
    for body in (event(1, True), event(2, False), event(2, False), event(5, True),
                 event(3, False)):
        dev.publish(topic, body)
    platform.wait_for(r"pevt/cid/dev1 event seq=1 change led=true$")
    platform.wait_for(r"pevt/cid/dev1 event seq=2 change led=false$")
    platform.wait_for(r"pevt/cid/dev1 duplicate event seq=2$")
    platform.wait_for(r"pevt/cid/dev1 gap: seq 3\.\.4 missing$")
    platform.wait_for(r"pevt/cid/dev1 event seq=5 change led=true$")
    platform.wait_for(r"pevt/cid/dev1 event seq=3 change led=false \(late\)$")
    d = devices(platform)["pevt/cid/dev1"]
    assert (d["events"], d["gaps"], d["missing"], d["dups"]) == (4, 1, 1, 1)
    r = run_twintap("platform", "events", "--dir", platform.dir, "--app", "pevt", "--json")
    rows = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [(e["seq"], e["dups"], e["late"]) for e in rows] == [
        (1, 0, 0), (2, 1, 0), (5, 0, 0), (3, 0, 1)
    ]
    assert rows[0]["evt"] == "change" and rows[0]["body"] == event(1, True)
    # the shadow follows the events, not a late (older) one
    answer = request(dev, inbox, "pevt", "dev1", {"mid": 8, "op": rc.READ, "msg": {"n": "led"}})
    assert answer["msg"] == [{"n": "led", "v": True}]
    # a counter that starts again (a wiped board) begins a new sequence, not a duplicate
    dev.publish(topic, event(1, False, mid=999))
    platform.wait_for(r"pevt/cid/dev1 seq restarted at 1$")
    dev.publish(topic, event(2, True, mid=1000))
    platform.wait_for(r"pevt/cid/dev1 event seq=2 change led=true$")
    d = devices(platform)["pevt/cid/dev1"]
    assert (d["events"], d["dups"], d["missing"]) == (6, 1, 1)


def test_events_and_devices_output(clients: Bench, platform: LineProcess):
    dev, inbox, _ = clients.device("pout", "dev1")
    register(dev, inbox, "pout", "dev1")
    dev.publish(rpztopics.event("pout", "dev1"), event(1, True))
    platform.wait_for(r"pout/cid/dev1 event seq=1")
    follow = LineProcess(twintap_cmd("platform", "events", "--dir", platform.dir, "--app",
                                     "pout", "--follow"))
    try:
        follow.wait_for(r" pout/cid/dev1 seq=1 change led=true$")
        dev.publish(rpztopics.event("pout", "dev1"), event(3, "x"))
        dev.publish(rpztopics.event("pout", "dev1"), event(3, "x"))
        follow.wait_for(r" pout/cid/dev1 seq=3 change led=\"x\"")
    finally:
        assert follow.stop() == 0
    r = run_twintap("platform", "events", "--dir", platform.dir, "--app", "pout")
    assert r.returncode == 0
    assert r.stdout.splitlines()[-1].endswith("pout/cid/dev1 seq=3 change led=\"x\" [dup x1]")
    r = run_twintap("platform", "devices", "--dir", platform.dir)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["APP", "CID", "STATUS", "LAST", "SEEN", "REGISTERED", "EVENTS",
                                "GAPS", "MISSING", "DUPS"]
    row = next(ln.split() for ln in lines if ln.startswith("pout "))
    assert row[:3] == ["pout", "dev1", "online"] and row[-4:] == ["2", "1", "1", "1"]


class Responder:
    """A stand-in board that answers SSRs on its ack topic with ``answer(request)``."""

    def __init__(self, bench: Bench, app: str, cid: str, answer, ref=None) -> None:
        self.app, self.cid, self.answer = app, cid, answer
        self.ref = ref or (lambda req: req.get("ref", req["mid"]))
        self.requests: list[tuple[str, dict]] = []
        self.got = threading.Event()
        self.conn, inbox, _ = bench.device(app, cid, subscribe=False)
        self.conn.on_message = self._on_message
        _, sub = rpztopics.device_topics(app, cid)
        self.conn.subscribe(sub)

    def _on_message(self, topic: str, payload: bytes) -> None:
        req = json.loads(payload)
        self.requests.append((topic, req))
        self.got.set()
        ack = self.answer(req)
        if ack is not None:
            self.conn.publish(rpztopics.ack(self.app, self.cid, self.ref(req)), ack, wait=False)


def test_write_prints_the_ack(clients: Bench, platform: LineProcess):
    def answer(req):
        return {"mid": req["mid"], "op": req["op"], "msg": req["msg"]}

    board = Responder(clients, "pssr", "dev1", answer)
    r = run_twintap("platform", "write", "--broker-dir", clients.dir, "--app", "pssr",
                    "--cid", "dev1", "led", "true")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'WRITE 0.02 {"n": "led", "v": true}'
    topic, req = board.requests[-1]
    assert topic == rpztopics.ssr("pssr", "dev1")
    assert set(req) == {"mid", "op", "msg"} and isinstance(req["mid"], int)
    assert (req["op"], req["msg"]) == (rc.WRITE, {"n": "led", "v": True})
    platform.wait_for(rf"pssr/cid/dev1 ack ref={req['mid']} WRITE 0\.02$")
    for value, parsed in (("blue", "blue"), ('"12"', "12"), ("12", 12), ("[1,2]", [1, 2])):
        r = run_twintap("platform", "write", "--broker-dir", clients.dir, "--app", "pssr",
                        "--cid", "dev1", "color", value, "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["msg"] == {"n": "color", "v": parsed}
        assert board.requests[-1][1]["msg"]["v"] == parsed


def test_read_exec_info_and_ref(clients: Bench, platform: LineProcess):
    def answer(req):
        if req["op"] == rc.READ:
            return {"mid": req["mid"], "op": rc.READ, "msg": {"n": "temp", "v": 20.5}}
        if req["op"] == rc.INFO:
            return {"mid": req["mid"], "op": rc.INFO, "msg": {"att": [], "prop": []}}
        return {"mid": req["mid"], "op": rc.EXEC, "msg": {"n": "blink", "v": "done"}}

    board = Responder(clients, "pssr2", "_", answer)
    base = ("--broker-dir", clients.dir, "--app", "pssr2")
    r = run_twintap("platform", "read", *base, "temp")  # --cid defaults to _
    assert (r.returncode, r.stdout.strip()) == (0, 'READ 0.01 {"n": "temp", "v": 20.5}')
    assert board.requests[-1][1]["msg"] == {"n": "temp"}
    run_twintap("platform", "read", *base, "temp", "led")
    assert board.requests[-1][1]["msg"] == ["temp", "led"]
    r = run_twintap("platform", "exec", *base, "--cid", "_", "blink", "3")
    assert r.returncode == 0 and board.requests[-1][1]["msg"] == {"n": "blink", "v": 3}
    run_twintap("platform", "exec", *base, "--cid", "_", "blink")
    assert board.requests[-1][1]["msg"] == {"n": "blink"}
    r = run_twintap("platform", "info", *base)
    assert r.stdout.strip() == 'INFO 0.07 {"att": [], "prop": []}'
    assert board.requests[-1][1] == {"mid": board.requests[-1][1]["mid"], "op": rc.INFO,
                                     "msg": {}}
    # with a ref, the ack comes on .../ack/{ref} (spec Decision)
    r = run_twintap("platform", "read", *base, "temp", "--ref", "flow-7")
    assert r.returncode == 0, r.stderr
    assert board.requests[-1][1]["ref"] == "flow-7"
    platform.wait_for(r"pssr2/cid/_ ack ref=flow-7 READ 0\.01$")


def test_error_ack_exits_1(clients: Bench, platform: LineProcess):
    Responder(clients, "pssr3", "dev1",
              lambda req: {"mid": req["mid"], "op": rc.NOT_FOUND, "err": "no such property"})
    r = run_twintap("platform", "write", "--broker-dir", clients.dir, "--app", "pssr3",
                    "--cid", "dev1", "nope", "1")
    assert r.returncode == 1, r.stderr
    assert r.stdout.strip() == "NOT_FOUND 4.04: no such property"


def test_no_ack_exits_2(clients: Bench, platform: LineProcess):
    board = Responder(clients, "pssr4", "dev1", lambda req: None)
    r = run_twintap("platform", "write", "--broker-dir", clients.dir, "--app", "pssr4",
                    "--cid", "dev1", "led", "true", "--timeout", "1")
    assert r.returncode == 2
    assert r.stderr.strip() == "twintap: no ack within 1 s"
    assert board.got.is_set()  # it was delivered; the board just did not answer
    # an ack for another SSR (another mid) is not this one's
    Responder(clients, "pssr5", "dev1",
              lambda req: {"mid": req["mid"] + 1, "op": rc.WRITE, "msg": {}},
              ref=lambda req: req["mid"] + 1)
    r = run_twintap("platform", "write", "--broker-dir", clients.dir, "--app", "pssr5",
                    "--cid", "dev1", "led", "true", "--timeout", "1")
    assert r.returncode == 2


def test_write_to_every_instance(clients: Bench, platform: LineProcess):
    def answer(req):
        return {"mid": req["mid"], "op": req["op"], "msg": req["msg"]}

    a = Responder(clients, "pall", "a", answer)
    b = Responder(clients, "pall", "b", answer)
    r = run_twintap("platform", "write", "--broker-dir", clients.dir, "--app", "pall",
                    "led", "false", "--timeout", "1.5")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == [
        'pall/cid/a WRITE 0.02 {"n": "led", "v": false}',
        'pall/cid/b WRITE 0.02 {"n": "led", "v": false}',
    ]
    assert a.requests[-1][0] == b.requests[-1][0] == rpztopics.ssr_all("pall")
    r = run_twintap("platform", "read", "--broker-dir", clients.dir, "--app", "pall",
                    "--cid", "zzz", "led", "--timeout", "0.5")
    assert r.returncode == 2


def test_library_api_in_process(tmp_path):
    """Broker, add_device, Platform and send_ssr as a test or a script would use them."""
    from tests.rpz.fixtures import Inbox
    from twintap.broker import Broker, add_device
    from twintap.mqttclient import Credentials
    from twintap.platform import Platform, send_ssr
    from twintap.vboard import free_port

    log: list[str] = []
    b = Broker(tmp_path / "broker", port=free_port(), echo=log.append)
    assert b.start().startswith(f"READY {b.url} ca=")
    plat = None
    try:
        added = add_device(b.dir.path, "plib", "d1")
        assert added.reloaded and added.device.username == "plib/cid/d1"
        creds = b.dir.platform_credentials()
        plat = Platform(b.url, creds, tmp_path / "platform", echo=log.append)
        assert plat.start() == f"READY platform broker={b.url}"
        inbox = Inbox()
        with Connection(b.url, Credentials(added.device.username, added.token, b.dir.ca_pem),
                        "plib/cid/d1", on_message=inbox) as dev:
            dev.connect()
            dev.subscribe(rpztopics.device_topics("plib", "d1")[1])
            assert register(dev, inbox, "plib", "d1")["op"] == rc.CHANGED

            def answer(topic: str, payload: bytes) -> None:
                req = json.loads(payload)
                dev.publish(rpztopics.ack("plib", "d1", req["mid"]),
                            {"mid": req["mid"], "op": rc.EXEC, "msg": {"n": "blink", "v": 1}},
                            wait=False)

            dev.on_message = answer
            acks = send_ssr(b.url, creds, "plib", "d1", rc.EXEC, {"n": "blink"}, timeout=5)
            assert [(a.cid, a.ok, a.describe()) for a in acks] == [
                ("d1", True, 'EXEC 0.05 {"n": "blink", "v": 1}')
            ]
    finally:
        if plat:
            plat.stop()
        assert b.stop() == 0
    assert any("plib/cid/d1 registered" in line for line in log)
    assert b.dir.running_pid() is None
