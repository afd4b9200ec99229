"""Virtual boards against a real mosquitto (TLS, accounts, ACL) and the bench platform: the
Rapidomize contract end to end, from the board's side."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.rpz.boards import (
    APP,
    Bench2,
    events,
    instance,
    online,
    provision,
    set_point,
    ssr,
    tap,
    until,
)
from tests.rpz.fixtures import LineProcess, twintap_cmd
from twintap import pki
from twintap.platform import send_ssr
from twintap.proto import frame, tapcodes, values
from twintap.proto import rpzcodes as rc


def test_registers_once_and_answers_every_ssr(bench, platform, start_board, tmp_path):
    flash = tmp_path / "flash"
    provision(bench, flash, "e2e-1", ssr_max_bytes=400, ssr_per_s=30)
    b = start_board(flash=flash)
    online(b)
    inst = until(lambda: instance(platform, "e2e-1"), what="registration")
    until(lambda: (instance(platform, "e2e-1") or {}).get("registrations") == 1)
    inst = instance(platform, "e2e-1")
    assert {p["n"] for p in inst["props"]} >= {"temperature", "setpoint", "identify", "led"}
    assert inst["att"]["model"] == "unix" and inst["att"]["serial"].startswith("TT")
    # every op, success
    r = ssr(bench, "e2e-1", rc.READ, {"n": "setpoint"})
    assert r["op"] == rc.READ and r["msg"] == {"n": "setpoint", "v": 21}
    r = ssr(bench, "e2e-1", rc.READ, ["led", "label"])
    assert r["msg"] == [{"n": "led", "v": False}, {"n": "label", "v": "bench"}]
    assert len(ssr(bench, "e2e-1", rc.READ, {})["msg"]) >= 6
    r = ssr(bench, "e2e-1", rc.WRITE, {"n": "setpoint", "v": 30})
    assert r["op"] == rc.WRITE and r["msg"] == {"n": "setpoint", "v": 30}
    # an SSR write is what the next Tap read returns
    assert tap(b, frame.GET, "/1029/5/4") == (tapcodes.CONTENT, values.encode(values.INT16, 30))
    r = ssr(bench, "e2e-1", rc.UPDATE, [{"n": "led", "v": True}, {"n": "label", "v": "x"}])
    assert r["op"] == rc.UPDATE and r["msg"][1] == {"n": "label", "v": "x"}
    r = ssr(bench, "e2e-1", rc.EXEC, {"n": "identify", "v": 2})
    assert r["op"] == rc.EXEC and r["msg"] == {"n": "identify", "v": 2}
    r = ssr(bench, "e2e-1", rc.INFO, {})
    assert r["op"] == rc.INFO and {"n": "make", "v": "twintap"} in r["msg"]["att"]
    assert ssr(bench, "e2e-1", rc.NOP, None)["op"] == rc.NOP
    # every error status
    errors = [
        (rc.WRITE, {"n": "setpoint", "v": "warm"}, rc.NOT_ACCEPTABLE),
        (rc.WRITE, {"n": "temperature", "v": 1}, rc.FORBIDDEN),
        (rc.READ, {"n": "ghost"}, rc.NOT_FOUND),
        (rc.DELETE, {"n": "setpoint"}, rc.FORBIDDEN),
        (rc.WRITE, {"v": 1}, rc.BAD_REQUEST),
        (rc.WRITE, {"n": "label", "v": "y" * 500}, rc.PAYLOAD_TOO_LARGE),
    ]
    for op, msg, status in errors:
        r = ssr(bench, "e2e-1", op, msg)
        assert r["op"] == status and r["err"], (op, msg, r)
    # malformed JSON and an oversized payload, raw, as a broken platform would send them
    acks = []
    conn = bench.connect(bench.platform_creds(), on_message=lambda t, p: acks.append(
        (t, json.loads(p))))
    conn.subscribe([f"/api/v1/mo/{APP}/cid/e2e-1/ack/+"])
    conn.publish(f"$/api/v1/mo/{APP}/cid/e2e-1", b"{not json")
    conn.publish(f"$/api/v1/mo/{APP}/cid/e2e-1", b'{"mid": 4242, "v": "' + b"z" * 9000 + b'"}')
    until(lambda: len(acks) >= 2, what="acks of the raw requests")
    assert acks[0][1]["op"] == rc.BAD_REQUEST
    assert acks[1] == (f"/api/v1/mo/{APP}/cid/e2e-1/ack/4242",
                       {"mid": 4242, "op": rc.PAYLOAD_TOO_LARGE, "err": "payload above 400 bytes"})
    # a flood gets 0x9D, and the board keeps serving
    acks.clear()
    for i in range(45):
        conn.publish(f"$/api/v1/mo/{APP}/cid/e2e-1", json.dumps({"mid": 7000 + i, "op": 0}))
    until(lambda: len(acks) >= 45, what="acks of the flood")
    assert rc.TOO_MANY_REQUESTS in [a[1]["op"] for a in acks]
    assert tap(b, frame.GET, "/3//2")[0] == tapcodes.CONTENT
    # restarted with the same declaration: no second registration
    assert b.stop() == 0
    b2 = start_board(flash=flash)
    b2.wait_for(r"declaration unchanged: not registering again")
    assert instance(platform, "e2e-1")["registrations"] == 1
    # a changed declaration registers again
    assert b2.stop() == 0
    cfg = json.loads((flash / "config.json").read_text())
    cfg["rpz"]["location"] = {"lat": 6.9, "lng": 79.9}
    (flash / "config.json").write_text(json.dumps(cfg))
    b3 = start_board(flash=flash)
    b3.wait_for(r"\[I\]\[rpz\] registered ")
    assert instance(platform, "e2e-1")["registrations"] == 2
    assert instance(platform, "e2e-1")["loc"] == {"lat": 6.9, "lng": 79.9}


def test_events_from_tap_writes_ssr_and_sensors(bench, platform, start_board, tmp_path):
    flash = tmp_path / "flash"
    provision(bench, flash, "e2e-2")
    b = start_board(flash=flash)
    online(b)
    set_point(b, 17)
    ssr(bench, "e2e-2", rc.WRITE, {"n": "led", "v": True})
    until(lambda: [e for e in events(platform, "e2e-2", "setpoint") if e["v"] == 17])
    until(lambda: events(platform, "e2e-2", "led"))
    until(lambda: events(platform, "e2e-2", "counter"), what="a sensor event")
    ev = events(platform, "e2e-2", "setpoint")[-1]["body"]["msg"]
    assert ev["_evt"] == "change" and ev["src"] == "tap" and isinstance(ev["seq"], int)
    assert events(platform, "e2e-2", "led")[-1]["body"]["msg"]["src"] == "rpz"
    assert events(platform, "e2e-2", "counter")[-1]["body"]["msg"]["src"] == "sensor"
    inst = instance(platform, "e2e-2")
    assert inst["missing"] == 0 and inst["dups"] == 0


def test_qos1_outbox_survives_broker_and_board_restarts(own_broker, start_board, tmp_path):
    broker = own_broker()
    bench = Bench2(own_broker.dir, broker.ready["url"])
    pdir = tmp_path / "platform"
    plat = LineProcess(twintap_cmd("platform", "serve", "--broker-dir", own_broker.dir, "--dir",
                                   pdir), r"^READY platform")
    plat.dir = pdir
    try:
        flash = tmp_path / "flash"
        provision(bench, flash, "e2e-3")
        b = start_board(flash=flash)
        online(b)
        until(lambda: instance(plat, "e2e-3"), what="registration")
        # broker down: Tap writes go on, their events wait in the outbox
        assert broker.stop() == 0
        for v in range(1, 6):
            set_point(b, v)
        broker = own_broker()
        until(lambda: [e for e in events(plat, "e2e-3", "setpoint") if e["v"] == 5],
              timeout=30, what="the events queued during the outage")
        # broker down again, and the board restarts before it comes back
        assert broker.stop() == 0
        for v in range(6, 9):
            set_point(b, v)
        assert b.stop() == 0
        assert (flash / "outbox.log").is_file()
        b = start_board(flash=flash)
        broker = own_broker()
        until(lambda: [e for e in events(plat, "e2e-3", "setpoint") if e["v"] == 8],
              timeout=30, what="the events queued across the board restart")
        got = [e["v"] for e in events(plat, "e2e-3", "setpoint")]
        assert got == list(range(1, 9)), got
        seqs = [e["seq"] for e in events(plat, "e2e-3")]
        assert len(seqs) == len(set(seqs)), "an event was stored twice"
        assert sorted(seqs) == list(range(min(seqs), max(seqs) + 1)), "an event was lost"
        assert instance(plat, "e2e-3")["missing"] == 0
        # two reconnects and a reboot with an unchanged declaration: registered once
        assert instance(plat, "e2e-3")["registrations"] == 1
    finally:
        plat.stop()


def test_a_board_cannot_receive_another_boards_ssrs(bench, platform, start_board, tmp_path):
    # board "e2e-spy" uses its own account but claims the client id of "e2e-victim"
    bench.add(APP, "e2e-victim", replace=True)
    flash = tmp_path / "flash"
    provision(bench, flash, "e2e-spy", client_id="e2e-victim")
    b = start_board(flash=flash)
    online(b)
    with pytest.raises(Exception, match="no ack"):
        send_ssr(bench.url, bench.platform_creds(), APP, "e2e-victim", rc.READ,
                 {"n": "setpoint"}, 3)
    assert not any("SSR" in line for line in b.lines)


def test_wrong_ca_and_wrong_token_are_refused(bench, platform, start_board, tmp_path):
    other = tmp_path / "other-ca"
    other.mkdir()
    pki.make_ca(other)
    flash = tmp_path / "flash-ca"
    provision(bench, flash, "e2e-ca", ca_der=(other / "ca.der").read_bytes())
    b = start_board(flash=flash)
    b.wait_for(r"\[W\]\[rpz\] broker ")
    flash2 = tmp_path / "flash-token"
    provision(bench, flash2, "e2e-tok", token="not-the-token")
    b2 = start_board(flash=flash2)
    b2.wait_for(r"\[W\]\[rpz\] broker .*connection refused, code 5")
    assert instance(platform, "e2e-ca") is None and instance(platform, "e2e-tok") is None
    assert not any("not-the-token" in line for line in b2.lines)
    assert tap(b, frame.GET, "/3//2")[0] == tapcodes.CONTENT  # Tap unaffected


def test_the_seed_how_to_with_mosquitto_clients(bench, platform, start_board, tmp_path):
    """The reference document's own "How to": mosquitto_pub an SSR to the board's topic and
    see the ack with mosquitto_sub (local host, port and CA instead of the public ones)."""
    flash = tmp_path / "flash"
    provision(bench, flash, "e2e-howto")
    b = start_board(flash=flash)
    online(b)
    creds = bench.platform_creds()
    host, port = bench.url.split("//")[1].rsplit(":", 1)
    common = ["-h", host, "-p", port, "--cafile", str(bench.dir / "ca.pem"), "-V", "mqttv311",
              "-u", creds.username, "-P", creds.password]
    ack_topic = f"/api/v1/mo/{APP}/cid/e2e-howto/ack/999"
    sub = subprocess.Popen(  # stdbuf: line-buffered through a pipe, so SUBACK shows at once
        ["stdbuf", "-oL", "mosquitto_sub", *common, "-t", ack_topic, "-C", "1", "-W", "20",
         "-d"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # wait until mosquitto_sub's subscription is acknowledged (-d prints SUBACK)
        for line in sub.stdout:
            if "SUBACK" in line:
                break
        subprocess.run(
            ["mosquitto_pub", *common, "-t", f"$/api/v1/mo/{APP}/cid/e2e-howto", "-q", "1",
             "-m", '{"mid": 999, "op": 2, "msg": {"n": "led", "v": true}}'], check=True,
            timeout=20)
        out, _ = sub.communicate(timeout=25)
    finally:
        if sub.poll() is None:
            sub.kill()
    ack = json.loads([x for x in out.splitlines() if x.startswith("{")][-1])
    assert ack == {"mid": 999, "op": 2, "msg": {"n": "led", "v": True}}


def test_startup_read_takes_the_values_the_platform_holds(bench, platform, start_board,
                                                          tmp_path):
    # the platform's shadow gets setpoint 17 from the board's change event; the board then
    # loses its stored values and, at the next start, takes 17 back with its start-up READ
    # (of the properties it may be written: read-only ones keep their own values)
    flash = tmp_path / "flash"
    provision(bench, flash, "e2e-read")
    b = start_board(flash=flash)
    online(b)
    set_point(b, 17)
    until(lambda: [e for e in events(platform, "e2e-read", "setpoint") if e["v"] == 17])
    assert b.stop() == 0
    (flash / "twin.json").unlink()
    b2 = start_board(flash=flash)
    b2.wait_for(r"declaration unchanged: not registering again")
    until(lambda: tap(b2, frame.GET, "/1029/5/4") == (tapcodes.CONTENT,
                                                       values.encode(values.INT16, 17)),
          what="setpoint 17 from the platform")
    # the board's copy is stored again: a restart offline keeps it
    assert b2.stop() == 0
    assert json.loads((flash / "twin.json").read_text()).get("setpoint") == 17
