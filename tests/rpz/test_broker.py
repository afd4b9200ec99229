"""The bench broker: real mosquitto, TLS with the generated CA, per-board accounts and ACL."""

from __future__ import annotations

import json
import signal
import ssl
import stat
import subprocess

import pytest

from tests.rpz.fixtures import BROKER_READY, Bench, Inbox, LineProcess, run_twintap, twintap_cmd
from twintap import TwintapError, pki, rpztopics
from twintap.broker import BrokerDir
from twintap.mqttclient import Connection, Credentials
from twintap.vboard import free_port


def test_password_hash_is_mosquittos(tmp_path):
    """Our $7$ hash is what mosquitto_passwd writes, so mosquitto checks it."""
    f = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(f), "u1", "s3cret"], check=True)
    line = f.read_text().strip()
    user, hashed = line.split(":", 1)
    _, kind, iterations, salt, _ = hashed.split("$")
    assert (user, kind) == ("u1", "7")
    import base64

    assert pki.mosquitto_hash("s3cret", base64.b64decode(salt), int(iterations)) == hashed
    assert pki.check_mosquitto_hash("s3cret", hashed)
    assert not pki.check_mosquitto_hash("s3cre", hashed)


def test_generated_files(bench: Bench):
    d = BrokerDir(bench.dir)
    assert stat.S_IMODE(d.path.stat().st_mode) == 0o700
    for secret in (d.ca_key, d.server_key, d.platform_json, d.passwd, d.acl):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert pki.server_names(d.server_pem) >= {"localhost", "127.0.0.1"}
    from cryptography import x509

    der = x509.load_der_x509_certificate(d.ca_der.read_bytes())
    assert der == x509.load_pem_x509_certificate(d.ca_pem.read_bytes())
    assert d.running_pid() is not None
    assert json.loads(d.state_json.read_text())["url"] == bench.url


def test_tls_with_the_generated_ca(clients: Bench):
    creds = clients.platform_creds()
    clients.connect(creds)  # 127.0.0.1: an IP subjectAltName
    port = clients.url.rsplit(":", 1)[1]
    c = Connection(f"mqtts://localhost:{port}", creds)  # a DNS subjectAltName
    c.connect(10).close()
    ctx = ssl.create_default_context(cafile=str(clients.ca))
    import socket

    with socket.create_connection(("127.0.0.1", int(port)), 5) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            assert t.version() in ("TLSv1.2", "TLSv1.3")


def test_another_ca_is_refused(clients: Bench, tmp_path):
    pki.make_ca(tmp_path, "some other CA")
    creds = clients.platform_creds()
    creds.ca = tmp_path / "ca.pem"
    with pytest.raises(TwintapError, match="certificate verify failed"):
        Connection(clients.url, creds).connect(10)


def test_wrong_token_unknown_user_and_anonymous_are_refused(clients: Bench):
    added = clients.add("appw", "dev1")
    good = Credentials(added.device.username, added.token, clients.ca)
    clients.connect(good, "appw/cid/dev1")
    for bad in (
        Credentials(added.device.username, added.token + "x", clients.ca),
        Credentials("appw", added.token, clients.ca),  # the spec's default user: not this one
        Credentials("nobody", "nothing", clients.ca),
        Credentials(None, None, clients.ca),
    ):
        with pytest.raises(TwintapError, match="refused") as e:
            Connection(clients.url, bad, "appw/cid/dev1").connect(10)
        assert added.token not in str(e.value)


def test_board_reads_only_its_own_ssrs(clients: Bench):
    a, inbox, _ = clients.device("appa", "A")
    # A also asks for B's SSR topic and the whole app tree: mosquitto grants the
    # subscriptions but its ACL delivers nothing of them.
    a.subscribe([rpztopics.ssr("appa", "B"), "$/api/v1/mo/appa/#", "#"])
    plat = clients.connect(clients.platform_creds())
    # one publisher, one QoS: delivered in order, so when the last message arrives, anything
    # before it that A may read has arrived too
    plat.publish(rpztopics.ssr("appa", "B"), {"mid": 1, "op": 2, "msg": {"n": "x", "v": 1}})
    plat.publish(rpztopics.ssr("appb", "A"), {"mid": 2, "op": 2, "msg": {}})  # another app
    plat.publish(rpztopics.register("appa", "B"), {"mid": 3, "op": 6, "msg": {}})
    plat.publish(rpztopics.ssr_all("appa"), {"mid": 4, "op": 2, "msg": {}})
    plat.publish(rpztopics.ssr("appa", "A"), {"mid": 5, "op": 2, "msg": {}})
    got = [inbox.get(), inbox.get()]
    assert [(t, m["mid"]) for t, m in got] == [
        (rpztopics.ssr_all("appa"), 4), (rpztopics.ssr("appa", "A"), 5)
    ]
    # the same guarantee through a second, unrelated marker
    plat.publish(rpztopics.ssr("appa", "B"), {"mid": 6})
    plat.publish(rpztopics.ssr("appa", "A"), {"mid": 7})
    assert inbox.get()[1]["mid"] == 7
    assert inbox.empty()


def test_board_publishes_only_under_its_own_trees(clients: Bench):
    a, _, _ = clients.device("appp", "A", icapp="ic1")
    b_inbox = Inbox()
    plat = clients.connect(clients.platform_creds(), on_message=b_inbox)
    plat.subscribe(["/api/#", "$/api/#"])
    forbidden = [
        rpztopics.event("appp", "B"),  # another board's event topic
        rpztopics.register("appp", "B"),
        rpztopics.ack("appp", "B", 9),
        rpztopics.ssr("appp", "B"),  # an SSR to another board
        rpztopics.ssr("appp", "A"),  # an SSR to itself: only the platform sends SSRs
        rpztopics.ssr_all("appp"),
        rpztopics.event("appq", "A"),  # the same cid in another app
        rpztopics.icapp_event("ic2", "A"),
        "/api/v1/mo/appp",
        "/elsewhere",
    ]
    for t in forbidden:
        a.publish(t, {"mid": 1, "op": 2, "msg": {}})  # mosquitto acks it and drops it
    own, _ = rpztopics.device_topics("appp", "A", "ic1")
    own = [t.replace("+", "77") for t in own]
    for t in own:
        a.publish(t, {"mid": 2, "op": 2, "msg": {}})
    assert [b_inbox.get()[0] for _ in own] == own
    assert b_inbox.empty()


def test_platform_reaches_everything(clients: Bench):
    a, a_inbox, _ = clients.device("appz", "A")
    seen = Inbox()
    plat = clients.connect(clients.platform_creds(), on_message=seen)
    plat.subscribe(["#", "$/#"])
    a.publish(rpztopics.event("appz", "A"), {"seq": 1})
    assert seen.get()[0] == rpztopics.event("appz", "A")
    for t in (rpztopics.ssr("appz", "A"), rpztopics.ssr_all("appz"), "$/anything/else",
              "/api/v1/mo/appz/cid/A/event", "plain/topic"):
        plat.publish(t, {"mid": 1})
        assert seen.get()[0] == t
    assert [a_inbox.get()[0] for _ in range(2)] == [
        rpztopics.ssr("appz", "A"), rpztopics.ssr_all("appz")
    ]


def test_shared_app_account_with_the_documents_mosquitto_clients(clients: Bench):
    """The spec's default user name {appId}, with mosquitto_sub as in the document."""
    added = clients.add("appdoc", "cls-mqtt", username="appdoc")
    assert added.device.username == "appdoc"
    # a second board may share the account (and its token, and its rights)
    assert clients.add("appdoc", "cls-2", username="appdoc", token=added.token).token is None
    with pytest.raises(TwintapError, match="another token"):
        clients.add("appdoc", "cls-3", username="appdoc", token="not-it")
    plat = clients.connect(clients.platform_creds())
    ssr = rpztopics.ssr("appdoc", "cls-mqtt")
    plat.client.publish(ssr, '{"mid":5,"op":1,"msg":{}}', 1, retain=True).wait_for_publish(5)
    try:
        r = subprocess.run(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", clients.url.rsplit(":", 1)[1],
             "-u", "appdoc", "-P", added.token, "--cafile", str(clients.ca),
             "-i", "appdoc/cid/cls-mqtt", "-t", ssr, "-C", "1", "-W", "10", "-V", "mqttv311"],
            capture_output=True, text=True, timeout=20,
        )
    finally:
        plat.client.publish(ssr, b"", 1, retain=True).wait_for_publish(5)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"mid": 5, "op": 1, "msg": {}}


def test_add_device_cli_on_a_running_broker(clients: Bench):
    creds = Credentials("appcli/cid/d1", "tok-given-1", clients.ca)
    with pytest.raises(TwintapError, match="refused"):
        Connection(clients.url, creds).connect(10)
    r = run_twintap("broker", "add-device", "--dir", clients.dir, "--app", "appcli", "--cid",
                    "d1", "--token", "tok-given-1")
    assert r.returncode == 0, r.stderr
    assert "tok-given-1" not in r.stdout  # a given token is not printed back
    assert "broker: reloaded" in r.stdout
    clients.connect(creds, "appcli/cid/d1")  # in effect as soon as add-device returned

    r = run_twintap("broker", "add-device", "--dir", clients.dir, "--app", "appcli", "--cid",
                    "d2")
    assert r.returncode == 0, r.stderr
    tokens = [ln.split(": ", 1)[1] for ln in r.stdout.splitlines() if ln.startswith("token: ")]
    assert len(tokens) == 1 and len(tokens[0]) >= 24
    token = tokens[0]
    assert r.stdout.count(token) == 1  # printed once
    clients.connect(Credentials("appcli/cid/d2", token, clients.ca), "appcli/cid/d2")
    d = BrokerDir(clients.dir)
    assert stat.S_IMODE(d.devices_json.stat().st_mode) == 0o600
    for f in (d.devices_json, d.passwd, d.acl, d.platform_json):
        assert token not in f.read_text()
    assert not any(token in line for line in clients.proc.lines)

    r = run_twintap("broker", "add-device", "--dir", clients.dir, "--app", "appcli", "--cid",
                    "d2")
    assert r.returncode == 2 and "exists" in r.stderr
    r = run_twintap("broker", "add-device", "--dir", clients.dir, "--app", "appcli", "--cid",
                    "d2", "--replace", "--json")
    assert r.returncode == 0, r.stderr
    new = json.loads(r.stdout)
    assert new["client_id"] == "appcli/cid/d2" and new["token"] != token
    with pytest.raises(TwintapError, match="refused"):
        Connection(clients.url, Credentials("appcli/cid/d2", token, clients.ca)).connect(10)
    clients.connect(Credentials("appcli/cid/d2", new["token"], clients.ca))

    r = run_twintap("broker", "remove-device", "--dir", clients.dir, "--app", "appcli",
                    "--cid", "d1")
    assert r.returncode == 0, r.stderr
    with pytest.raises(TwintapError, match="refused"):
        Connection(clients.url, creds).connect(10)
    r = run_twintap("broker", "devices", "--dir", clients.dir)
    assert "appcli/cid/d2" in r.stdout and "appcli/cid/d1" not in r.stdout


def test_bad_names_are_refused(clients: Bench):
    for app, cid, user in (("a/b", "c", None), ("a", "c+", None), ("a", "c", "x y"),
                           ("a", "c", "twintap-platform"), ("a", "#", None)):
        with pytest.raises(TwintapError):
            clients.add(app, cid, username=user)


def test_run_stops_cleanly_and_refuses_a_second_broker(tmp_path):
    port = free_port()
    p = LineProcess(twintap_cmd("broker", "run", "--dir", tmp_path, "--port", port),
                    BROKER_READY)
    d = BrokerDir(tmp_path)
    pid = d.running_pid()
    assert pid is not None and p.ready["ca"] == str(d.ca_pem)
    r = run_twintap("broker", "run", "--dir", tmp_path, "--port", free_port())
    assert r.returncode == 2 and "already serves" in r.stderr
    assert p.stop(signal.SIGTERM) == 0
    assert not (tmp_path / "mosquitto.pid").exists()
    import os

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # a second run reuses the CA and the accounts
    ca = d.ca_pem.read_bytes()
    p = LineProcess(twintap_cmd("broker", "run", "--dir", tmp_path, "--port", port),
                    BROKER_READY)
    assert d.ca_pem.read_bytes() == ca
    assert p.stop() == 0


def test_port_in_use_is_reported(clients: Bench, tmp_path):
    port = clients.url.rsplit(":", 1)[1]
    r = run_twintap("broker", "run", "--dir", tmp_path, "--port", port)
    assert r.returncode == 2
    assert "Address already in use" in r.stderr
