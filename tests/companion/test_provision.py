"""``twintap provision`` against virtual boards over their REPL pty, with the bench broker and
platform for ``--verify``: every stage reported, a wrong token caught at "authentication",
any subset of fields, per-field errors, a profile file, safe mode, and a provisioning killed
half-way that leaves the previous configuration in force."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.companion.conftest import REPO, ready_again, twintap
from twintap.tap import Tap, TapError

APP = "companion"


def account(bench, cid: str) -> tuple[str, str]:
    added = bench.add(APP, cid, replace=True)
    return added.device.username, added.token


def config(board) -> dict:
    return json.loads((board.flash / "config.json").read_text())


def test_verify_reports_every_stage_then_a_wrong_token(bench, platform, repl_board):
    b = repl_board()
    user, token = account(bench, "p1")
    r = twintap("provision", "--port", b.repl, "--broker", bench.url, "--app-id", APP,
                "--client-id", "p1", "--username", user, "--token", token, "--ca", bench.ca,
                "--admin-password", "Adm1n-pw", "--verify", "--timeout", 30,
                "--platform-dir", platform.dir)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for stage in ("dns", "connection", "tls", "authentication"):
        assert f"\n  {stage:<14}  ok" in out, out
    assert "registration    ok: registered" in out and "(the platform saw it)" in out
    assert "tap             ok: serial TT" in out and "provisioned and verified" in out
    assert "wifi            skipped: no Wi-Fi" in out
    for secret in (token, "Adm1n-pw"):
        assert secret not in out + r.stderr and not any(secret in x for x in b.lines)
    cfg = config(b)
    ca = cfg["rpz"]["ca"]
    assert ca.startswith("ca-")
    assert (b.flash / ca).read_bytes() == (bench.dir / "ca.der").read_bytes()
    admin = cfg["tap"]["users"]["admin"]
    assert set(admin) == {"stored", "server", "salt", "it"} and "Adm1n-pw" not in json.dumps(cfg)
    # the admin password is in force over Tap, the factory one is not
    with Tap.connect(f"tcp://127.0.0.1:{b.tcp_port}") as tap:
        tap.auth.login("admin", "Adm1n-pw")
        tap.auth.logout()
        try:
            tap.auth.login("admin", "admin")
            raise AssertionError("the factory password still works")
        except TapError:
            pass
    # only the token changes (a wrong one): stage authentication fails, the rest is kept
    r = twintap("provision", "--port", b.repl, "--token", "not-the-token", "--verify",
                "--timeout", 20)
    assert r.returncode == 2, r.stdout
    assert "twintap: " in r.stderr and "verification failed at stage authentication" in r.stderr
    assert "connection refused, code 5" in r.stderr and "--token" in r.stderr
    assert "authentication  failed" in r.stdout and "registration    not reached" in r.stdout
    assert "tls             ok" in r.stdout
    assert "Traceback" not in r.stderr and "not-the-token" not in r.stdout + r.stderr
    after = config(b)
    assert after["rpz"] == {**cfg["rpz"], "token": "not-the-token"}
    assert after["tap"] == cfg["tap"]


def test_each_bad_field_is_named(tmp_path):
    (tmp_path / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n")
    r = twintap("provision", "--port", tmp_path / "none", "--app-id", "my app",
                "--client-id", "a/b", "--broker", "http://broker", "--token", "",
                "--ca", tmp_path / "junk.pem", "--wifi-password", "short",
                "--admin-password", "x" * 17)
    assert r.returncode == 2
    for opt in ("--app-id", "--client-id", "--broker", "--token", "--ca", "--wifi-password",
                "--admin-password"):
        assert f"\n  {opt}: " in r.stderr, (opt, r.stderr)
    assert "Traceback" not in r.stderr
    r = twintap("provision", "--port", tmp_path / "none")
    assert "nothing to provision" in r.stderr
    r = twintap("provision", "--port", tmp_path / "none", "--token", "t")
    assert "no such port" in r.stderr


def test_profile_subset_and_missing_fields(bench, repl_board, tmp_path):
    b = repl_board()
    # a subset that leaves the account incomplete on a fresh board is refused, per field
    r = twintap("provision", "--port", b.repl, "--token", "t0k")
    assert r.returncode == 2
    assert "--app-id: the app id is empty (the board has none yet: give --app-id)" in r.stderr
    assert not (b.flash / "config.json").exists()
    # a virtual board has no Wi-Fi to give... except its simulated one
    (tmp_path / "ca.pem").write_bytes(bench.ca.read_bytes())
    (tmp_path / "p.toml").write_text(
        'broker = "mqtts://127.0.0.1:8883"\napp-id = "demo"\nclient_id = "c9"\n'
        'token = "tok"\nca = "ca.pem"\nwifi_ssid = "twintap-lab"\n'
        'wifi_password = "lab-password"\n')
    r = twintap("provision", "--port", b.repl, "--profile", tmp_path / "p.toml",
                "--client-id", "c10")
    assert r.returncode == 0, r.stderr
    assert "token ****" in r.stdout and "tok\n" not in r.stdout
    ready_again(b)
    cfg = config(b)
    assert cfg["rpz"]["client_id"] == "c10" and cfg["rpz"]["app_id"] == "demo"
    assert cfg["wifi"] == {"ssid": "twintap-lab", "password": "lab-password"}
    (tmp_path / "bad.toml").write_text('colour = "blue"\n')
    r = twintap("provision", "--port", b.repl, "--profile", tmp_path / "bad.toml")
    assert "unknown key 'colour'" in r.stderr


def test_a_killed_provisioning_leaves_the_old_configuration(repl_board):
    b = repl_board()
    r = twintap("provision", "--port", b.repl, "--broker", "mqtt://127.0.0.1:9",
                "--app-id", "old", "--client-id", "c1", "--token", "t")
    assert r.returncode == 0, r.stderr
    ready_again(b)
    b.wait_for(r"^\[W\]\[rpz\] broker 127\.0\.0\.1:9: ")
    old = (b.flash / "config.json").read_text()
    tmp = b.flash / "config.json.tmp"
    proc = subprocess.Popen(
        [sys.executable, "-m", "twintap", "provision", "--port", str(b.repl),
         "--broker", "mqtt://127.0.0.1:10", "--app-id", "new", "--client-id", "c2",
         "--token", "t2", "--admin-password", "pw", "--chunk-size", "16"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not tmp.exists():
            assert proc.poll() is None, "provisioning ended before it wrote anything"
            assert time.monotonic() < deadline
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)  # half-way through config.json.tmp
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (b.flash / "config.json").read_text() == old
    # power cycle: the board boots with the old configuration, not in safe mode
    b.stop()
    b2 = repl_board()
    b2.wait_for(r"^\[W\]\[rpz\] broker 127\.0\.0\.1:9: ")
    assert not any("safe mode" in line for line in b2.lines), b2.lines
    # and provisioning it again works
    r = twintap("provision", "--port", b2.repl, "--client-id", "c3")
    assert r.returncode == 0, r.stderr
    assert json.loads((b2.flash / "config.json").read_text())["rpz"]["client_id"] == "c3"
