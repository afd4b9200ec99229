# Rapidomize client logic without a network: outbox persistence, SSR table, events, digest.
# Same file under pytest (CPython) and micropython; files go to a scratch directory.
import json
import os

try:
    from _runner import fw, run
except ImportError:
    from ._runner import fw, run

twin_mod = fw("twin")
values = fw("proto.values")
rc = fw("proto.rpzcodes")
Outbox = fw("rpz.outbox").Outbox
client_mod = fw("rpz.client")
declare = fw("rpz.declare")

_n = [0]


def scratch():
    # a fresh working directory (the board's flash) for each test
    _n[0] += 1
    d = "/tmp/twintap-unit-%d-%d" % (os.getpid() if hasattr(os, "getpid") else 0, _n[0])
    try:
        os.mkdir(d)
    except OSError:
        for f in os.listdir(d):
            os.remove(d + "/" + f)
    os.chdir(d)
    return d


def make_twin():
    tw = twin_mod.Twin()
    P = twin_mod.Prop
    tw.add(P(1, "temperature", values.FLOAT32, 1, twin_mod.R, "C"))
    tw.add(P(4, "led", values.BOOLEAN, 1, twin_mod.R | twin_mod.W))
    tw.add(P(5, "setpoint", values.INT16, 1, twin_mod.R | twin_mod.W, "C", persist=True))
    tw.add(P(6, "label", values.ASCII, 8, twin_mod.R | twin_mod.W))
    tw.add(P(7, "identify", values.UINT8, 1, twin_mod.X))
    return tw


class FakeSession:
    def __init__(self):
        self.sent = []

    def publish(self, topic, msg, qos=0):
        self.sent.append((topic, json.loads(msg), qos))
        return len(self.sent)


def make_client(**cfg):
    c = {"app_id": "app1", "client_id": "d1", "broker": "mqtt://127.0.0.1:1"}
    c.update(cfg)
    tw = make_twin()
    cl = client_mod.RpzClient(c, tw, {"make": "twintap"}, {"identify": lambda v: v or 3})
    cl.session = FakeSession()
    return cl, tw


def ssr(cl, obj, topic="$/api/v1/mo/app1/cid/d1"):
    raw = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
    cl.session.sent = []
    cl._on_message(topic.encode(), raw.encode() if isinstance(raw, str) else raw)
    assert len(cl.session.sent) == 1, cl.session.sent
    return cl.session.sent[0]


def test_outbox_persists_and_acks_in_order():
    scratch()
    ob = Outbox(limit=4)
    for _ in range(3):
        s = ob.next_seq()
        ob.add(s, "event %d" % s)
    ob.ack(1)
    again = Outbox(limit=4)
    assert [it[0] for it in again.items] == [2, 3] and again.seq == 3
    again.ack(3)  # out of order: 2 still pending
    assert [it[0] for it in again.items] == [2] and again.acked == 1
    again.ack(2)
    assert len(again.items) == 0 and again.acked == 3
    assert len(Outbox(limit=4).items) == 0 and Outbox(limit=4).seq == 3


def test_outbox_drops_oldest_and_counts():
    scratch()
    ob = Outbox(limit=3)
    for _ in range(5):
        ob.add(ob.next_seq(), "x")
    assert [it[0] for it in ob.items] == [3, 4, 5] and ob.dropped == 2
    assert Outbox(limit=3).dropped == 2
    for _ in range(10):  # a long outage: the log is rewritten, stays bounded
        s = ob.next_seq()
        ob.add(s, "y%d" % s)
    with open("outbox.log") as f:
        assert len(f.readlines()) <= 7
    again = Outbox(limit=3)
    assert [it[0] for it in again.items] == [13, 14, 15]
    # the heap holds where each event is in the log, which is read when it is sent: right
    # after rewrites, and after a restart
    for box in (ob, again):
        assert [box.payload(at) for _, at in box.items] == ["y13", "y14", "y15"]


def test_outbox_skips_a_torn_line():
    scratch()
    ob = Outbox(limit=4)
    ob.add(ob.next_seq(), "a")
    with open("outbox.log", "a") as f:
        f.write('[2, "b')  # power lost mid-append
    again = Outbox(limit=4)
    assert [it[0] for it in again.items] == [1]
    # the next event is not glued to the torn line (its seq is free again: the torn event
    # was never published, power went before add() returned)
    again.add(again.next_seq(), "c \u00e9")  # (offsets in bytes)
    again.add(again.next_seq(), "d")
    for box in (again, Outbox(limit=4)):
        assert [it[0] for it in box.items] == [1, 2, 3]
        assert [box.payload(at) for _, at in box.items] == ["a", "c \u00e9", "d"]


def test_ssr_read():
    scratch()
    cl, tw = make_client()
    topic, ack, qos = ssr(cl, {"mid": 5, "op": rc.READ, "msg": {"n": "setpoint"}})
    assert topic == "/api/v1/mo/app1/cid/d1/ack/5" and qos == 1
    assert ack == {"mid": 5, "op": rc.READ, "msg": {"n": "setpoint", "v": 0}}
    _, ack, _ = ssr(cl, {"mid": 6, "op": rc.READ, "msg": ["led", "label"]})
    assert ack["msg"] == [{"n": "led", "v": False}, {"n": "label", "v": ""}]
    _, ack, _ = ssr(cl, {"mid": 7, "op": rc.READ, "msg": {}})
    names = sorted(x["n"] for x in ack["msg"])
    assert "identify" not in names and "temperature" in names
    _, ack, _ = ssr(cl, {"mid": 8, "ref": "r-8", "op": rc.READ, "msg": {"n": "nope"}})
    assert ack["op"] == rc.NOT_FOUND and "err" in ack
    assert ssr(cl, {"mid": 9, "op": rc.READ, "msg": {"n": "identify"}})[1]["op"] == rc.FORBIDDEN


def test_ssr_write_update_exec_info_nop():
    scratch()
    cl, tw = make_client()
    _, ack, _ = ssr(cl, {"mid": 1, "op": rc.WRITE, "msg": {"n": "setpoint", "v": -3}})
    assert ack == {"mid": 1, "op": rc.WRITE, "msg": {"n": "setpoint", "v": -3}}
    assert tw.get("setpoint").value == -3
    _, ack, _ = ssr(cl, {"mid": 2, "op": rc.UPDATE, "msg": [{"n": "led", "v": True},
                                                           {"n": "label", "v": "hi"}]})
    assert ack["op"] == rc.UPDATE and tw.get("led").value is True
    _, ack, _ = ssr(cl, {"mid": 3, "op": rc.EXEC, "msg": {"n": "identify", "v": 2}})
    assert ack["msg"] == {"n": "identify", "v": 2}
    _, ack, _ = ssr(cl, {"mid": 4, "op": rc.INFO, "msg": {}})
    assert ack["msg"]["att"] == [{"n": "make", "v": "twintap"}]
    assert {"n": "setpoint", "dt": "int", "rwx": 6, "v": -3, "u": "C"} in ack["msg"]["prop"]
    assert ssr(cl, {"mid": 5, "op": rc.NOP})[1] == {"mid": 5, "op": rc.NOP, "msg": None}


def test_ssr_errors():
    scratch()
    cl, tw = make_client(ssr_max_bytes=200, ssr_per_s=50)
    cases = [
        ({"mid": 1, "op": rc.WRITE, "msg": {"n": "setpoint", "v": "hot"}}, rc.NOT_ACCEPTABLE),
        ({"mid": 2, "op": rc.WRITE, "msg": {"n": "setpoint", "v": 40000}}, rc.NOT_ACCEPTABLE),
        ({"mid": 3, "op": rc.WRITE, "msg": {"n": "label", "v": "far too long"}},
         rc.NOT_ACCEPTABLE),
        ({"mid": 4, "op": rc.WRITE, "msg": {"n": "temperature", "v": 1}}, rc.FORBIDDEN),
        ({"mid": 5, "op": rc.WRITE, "msg": {"n": "ghost", "v": 1}}, rc.NOT_FOUND),
        ({"mid": 6, "op": rc.WRITE, "msg": {"n": "setpoint"}}, rc.BAD_REQUEST),
        ({"mid": 7, "op": rc.DELETE, "msg": {"n": "setpoint"}}, rc.FORBIDDEN),
        ({"mid": 8, "op": rc.PATCH, "msg": {}}, rc.FORBIDDEN),
        ({"mid": 9, "op": rc.EXEC, "msg": {"n": "led"}}, rc.FORBIDDEN),
        ({"mid": 10, "op": 0x45, "msg": {}}, rc.BAD_REQUEST),
        ({"op": rc.READ, "msg": {}}, rc.BAD_REQUEST),
        ({"mid": 12, "op": "read"}, rc.BAD_REQUEST),
        ({"mid": 13, "op": rc.WRITE, "msg": {"n": "x" * 300, "v": 1}}, rc.PAYLOAD_TOO_LARGE),
        ("{not json", rc.BAD_REQUEST),
        ([1, 2], rc.BAD_REQUEST),
    ]
    for obj, status in cases:
        topic, ack, _ = ssr(cl, obj)
        assert ack["op"] == status, (obj, ack)
        assert isinstance(ack["err"], str) and "msg" not in ack
    assert tw.get("setpoint").value == 0  # nothing changed by the failures
    # a write of several values is all or nothing
    bad = {"mid": 20, "op": rc.WRITE, "msg": [{"n": "setpoint", "v": 5}, {"n": "led", "v": 9}]}
    assert ssr(cl, bad)[1]["op"] == rc.NOT_ACCEPTABLE and tw.get("setpoint").value == 0
    # requests to every instance: write and exec only
    _, ack, _ = ssr(cl, {"mid": 21, "op": rc.READ, "msg": {}}, "$/api/v1/mo/app1")
    assert ack["op"] == rc.FORBIDDEN
    _, ack, _ = ssr(cl, {"mid": 22, "op": rc.WRITE, "msg": {"n": "led", "v": 1}},
                    "$/api/v1/mo/app1")
    assert ack["op"] == rc.WRITE


def test_ssr_internal_error_keeps_the_client_running():
    scratch()
    cl, tw = make_client()

    def broken(v):
        raise KeyError("bug")

    cl.actions["identify"] = broken
    _, ack, _ = ssr(cl, {"mid": 1, "op": rc.EXEC, "msg": {"n": "identify"}})
    assert ack == {"mid": 1, "op": rc.INTERNAL_SERVER_ERROR, "err": "internal error"}
    assert ssr(cl, {"mid": 2, "op": rc.NOP})[1]["op"] == rc.NOP


def test_ssr_rate_limit():
    scratch()
    cl, tw = make_client(ssr_per_s=3)
    got = [ssr(cl, {"mid": i, "op": rc.NOP})[1]["op"] for i in range(6)]
    assert got[:3] == [rc.NOP] * 3 and rc.TOO_MANY_REQUESTS in got[3:]


def test_events_carry_seq_and_source():
    scratch()
    cl, tw = make_client()
    tw.write(tw.get("setpoint"), 12, "tap")
    tw.write(tw.get("led"), True, "rpz")
    tw.write(tw.get("label"), "x", "platform")  # values taken from the platform: no event
    evs = [json.loads(cl.outbox.payload(at)) for _, at in cl.outbox.items]
    assert [e["msg"]["seq"] for e in evs] == [1, 2]
    assert evs[0]["op"] == rc.WRITE and evs[0]["msg"]["_evt"] == "change"
    assert evs[0]["msg"]["n"] == "setpoint" and evs[0]["msg"]["v"] == 12
    assert evs[1]["msg"]["src"] == "rpz"


def test_a_full_heap_drops_the_event_not_the_write():
    scratch()
    cl, tw = make_client()
    add = cl.outbox.add

    def full(seq, payload):
        raise MemoryError("memory allocation failed")

    cl.outbox.add = full
    assert tw.write(tw.get("setpoint"), 12, "tap") == 12  # the write stands
    assert tw.get("setpoint").value == 12
    assert cl.outbox.dropped == 1 and tw.get("events_dropped").value == 1
    cl.outbox.add = add
    tw.write(tw.get("setpoint"), 13, "tap")  # the next event goes, with the next seq
    evs = [json.loads(cl.outbox.payload(at)) for _, at in cl.outbox.items]
    assert [(e["msg"]["v"], e["msg"]["seq"]) for e in evs] == [(13, 2)]


def test_responses_to_our_requests_are_not_ssrs():
    scratch()
    cl, tw = make_client()

    class Ev:
        done = False

        def set(self):
            self.done = True

    ev = Ev()
    pending = cl._pending = [99, ev, None]
    cl.session.sent = []
    cl._on_message(b"$/api/v1/mo/app1/cid/d1", b'{"mid": 99, "op": 68}')
    assert ev.done and pending[2] == {"mid": 99, "op": 68}
    assert cl.session.sent == []


def test_declaration_digest():
    scratch()
    cl, tw = make_client()
    d1 = declare.digest(declare.declaration(cl))
    tw.write(tw.get("setpoint"), 7, "tap")  # values do not count
    assert declare.digest(declare.declaration(cl)) == d1
    tw.get("setpoint").unit = "K"
    assert declare.digest(declare.declaration(cl)) != d1


def test_registration_pieces_are_the_whole_json_text():
    # declare._patch sends the PATCH as pieces (one per property); joined they must be the
    # very text json.dumps makes of the whole request, and its length counts bytes
    scratch()
    for loc in (None, {"lat": 6.9, "lon": 79.8}):
        cl, tw = make_client(**({"location": loc} if loc else {}))
        cl.attributes = {"make": "twintap", "model": "unix \u00b0C"}  # not ASCII
        sent = []
        cl.session.publish = lambda topic, msg, qos=0, sent=sent: sent.append((topic, msg, qos))
        mid, n, dg = declare._patch(cl, {})
        assert n == len(tw.by_name) and len(sent) == 1
        topic, text, qos = sent[0]
        whole = "".join(text)
        assert qos == 1 and topic == cl.topics.register
        assert whole == json.dumps({"mid": mid, "op": rc.PATCH, "msg": declare.declaration(cl)})
        assert len(text) == len(whole.encode())
        assert dg == declare.digest(declare.declaration(cl))
        assert declare._patch(cl, {"digest": dg})[0] is None  # unchanged: nothing sent


def test_parse_broker():
    pb = client_mod.parse_broker
    assert pb("mqtts://localhost:18883") == ("localhost", 18883, True)
    assert pb("mqtt://10.0.0.1") == ("10.0.0.1", 1883, False)
    assert pb("mqtts://ics.example") == ("ics.example", 8883, True)
    for bad in ("http://x", "mqtt://", "mqtts://:99"):
        try:
            pb(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


if __name__ == "__main__":
    run(globals())
