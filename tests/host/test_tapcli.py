"""`twintap tap` against the in-process fake Tap: output, exit statuses, argument errors,
monitor, configure (with the example configuration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.host.faketap import FakeTap
from twintap import cli
from twintap.proto import tapcodes, values
from twintap.tap import config as tapconfig

EXAMPLE = Path(__file__).with_name("tapconfig-example.json")


@pytest.fixture
def fake():
    f = FakeTap()
    yield f
    f.close()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_no_link_is_an_error(capsys, monkeypatch):
    monkeypatch.delenv("TWINTAP_LINK", raising=False)
    rc, out, err = run(capsys, "tap", "info")
    assert rc == 2 and err.strip() == "twintap: no --link given"


def test_link_from_the_environment(capsys, monkeypatch, fake):
    monkeypatch.setenv("TWINTAP_LINK", fake.url)
    rc, out, _ = run(capsys, "tap", "get", "/3//2")
    assert rc == 0 and "TTFAKE000001" in out


def test_argument_errors_exit_2(capsys, fake):
    with pytest.raises(SystemExit) as e:
        cli.main(["tap", "--link", fake.url, "put", "/1024//9"])  # PUT needs HEX
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["tap", "--link", fake.url])  # no command
    assert e.value.code == 2
    capsys.readouterr()
    rc, _, err = run(capsys, "tap", "--link", fake.url, "put", "/1024//9", "zz")
    assert rc == 2 and "twintap: not a hex byte string: 'zz'" in err
    rc, _, err = run(capsys, "tap", "--link", fake.url, "get", "/x/y")
    assert rc == 2 and err.startswith("twintap: GET /x/y: Tap path")
    rc, _, err = run(capsys, "tap", "--link", "tcp://127.0.0.1", "info")
    assert rc == 2 and "expected tcp://HOST:PORT" in err


def test_get_prints_status_hex_and_ascii(capsys, fake):
    rc, out, _ = run(capsys, "tap", "--link", fake.url, "get", "/3//2")
    assert rc == 0
    assert out.splitlines() == [
        "CONTENT (0x45)",
        "data:  " + b"TTFAKE000001".hex(" ") + "  (12 bytes)",
        "ascii: TTFAKE000001",
    ]


def test_error_status_exits_1(capsys, fake):
    rc, out, _ = run(capsys, "tap", "--link", fake.url, "get", "/3//99")
    assert rc == 1 and out.strip() == "NOT_FOUND (0x84)"


def test_put_and_post_send_the_hex_payload(capsys, fake):
    rc, out, _ = run(capsys, "tap", "--link", fake.url, "post", "/1029/5/5", "00 2a")
    assert rc == 0 and out.strip() == "CHANGED (0x44)"
    assert fake.requests[-1] == ("POST", "/1029/5/5", b"\x00\x2a")
    rc, out, _ = run(capsys, "tap", "--link", fake.url, "put", "/1024//9", "0x6869")
    assert rc == 0 and fake.app_name == b"hi"


def test_timeout_is_reported(capsys, fake):
    fake.handler = lambda m, p, b: None
    rc, _, err = run(capsys, "tap", "--link", fake.url, "--timeout", "0.2", "get", "/3//2")
    assert rc == 2 and "no response" in err and "GET /3//2" in err


def test_info(capsys, fake):
    rc, out, _ = run(capsys, "tap", "--link", fake.url, "info")
    assert rc == 0
    rows = {line[:18].strip(): line[18:] for line in out.splitlines()}
    assert rows == {
        "manufacturer": "fake", "model": "fakeboard", "serial": "TTFAKE000001",
        "firmware version": "fw 9.9", "app name": "fake app", "config version": "1.2.3",
        "free memory": "12345 bytes", "profile/group": "0 / 0",
    }


def test_vars_read_write(capsys, fake):
    rc, out, _ = run(capsys, "tap", "--link", fake.url, "vars")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "name", "type", "unit", "access", "value"]
    rows = {x.split()[1]: x.split() for x in lines[1:]}
    assert rows["temperature"] == ["1", "temperature", "float32", "C", "r", "21.5"]
    assert rows["label"] == ["6", "label", "ascii[16]", "rw", "bench"]
    assert rows["triple"] == ["7", "triple", "uint8[3]", "x", "rw", "1,2,3"]
    rc, out, _ = run(capsys, "tap", "--link", fake.url, "write", "setpoint", "-7")
    assert rc == 0 and fake.vars[5]["value"] == b"\xff\xf9"
    assert out.strip() == "setpoint = -7"
    rc, out, _ = run(capsys, "tap", "--link", fake.url, "read", "setpoint")
    assert rc == 0 and out.strip() == "-7"
    rc, out, _ = run(capsys, "tap", "--link", fake.url, "read", "4")
    assert out.strip() == "false"
    rc, _, err = run(capsys, "tap", "--link", fake.url, "write", "setpoint", "x")
    assert rc == 2 and "twintap: variable 5 (int16)" in err
    rc, _, err = run(capsys, "tap", "--link", fake.url, "read", "nope")
    assert rc == 2 and "no variable named 'nope'" in err


def test_monitor_csv_keeps_polling_through_errors(capsys, fake):
    seen = {"n": 0}
    twin = fake.handler

    def flaky(m, p, b):
        if p == "/1029/3/4":
            seen["n"] += 1
            if seen["n"] == 2:
                return (tapcodes.SERVICE_UNAVAILABLE, b"")
        return twin(m, p, b)

    fake.handler = flaky
    rc, out, _ = run(capsys, "tap", "--link", fake.url, "monitor", "temperature", "3",
                     "--csv", "--count", "3", "--period", "20")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "time,temperature,counter"
    assert len(lines) == 4
    assert [x.split(",")[1:] for x in lines[1:]] == [
        ["21.5", "7"], ["21.5", "ERROR SERVICE_UNAVAILABLE"], ["21.5", "7"]]
    gets = [p for m, p, b in fake.requests if p in ("/1029/1/4", "/1029/3/4")]
    assert gets == ["/1029/1/4", "/1029/3/4"] * 3  # one GET per variable per period


def test_monitor_plain_lines(capsys, fake):
    rc, out, _ = run(capsys, "tap", "--link", fake.url, "monitor", "led", "--count", "2",
                     "--period", "10")
    assert rc == 0
    lines = out.splitlines()
    assert len(lines) == 2 and all(x.endswith(" led=false") for x in lines)


def test_configure_plan_from_the_example():
    steps = tapconfig.plan(json.loads(EXAMPLE.read_text()))
    reqs = [(s.method, s.path, s.payload.hex()) for s in steps]
    assert reqs[0] == (3, "/1024//10", "ffffffff")
    assert reqs[1] == (3, "/1024//9", b"twintap bench".hex())
    assert reqs[-1] == (3, "/1024//10", "01020003")
    assert (2, "/1025/1/65535", "") in reqs and (3, "/1025/1/4", "003c") in reqs
    assert reqs.index((2, "/1025/1/65535", "")) < reqs.index((2, "/1028/3/65535", ""))
    assert (3, "/1028/3/4", b"extra".hex()) in reqs
    assert (3, "/1028/3/0", "410003") in reqs  # anonymous rw
    assert (3, "/1028/3/0", "410103") in reqs  # operator = profile 1
    assert (3, "/1028/3/0", "61ffff03") in reqs  # admin
    assert (3, "/1028/3/2", "00000000") in reqs
    assert (3, "/1029/10/1", "e2") in reqs  # IN_TAP_VOLATIL uint16
    assert (3, "/1029/11/1", "88") in reqs  # in_tap_static ascii
    assert (3, "/1029/11/2", "08") in reqs
    assert (3, "/1029/10/6", "0003") in reqs
    assert (3, "/1029/10/8", b"speed:rpm".hex()) in reqs
    assert (3, "/1029/12/8", b"gain:dB".hex()) in reqs
    assert (2, "/1029/10/5", "04b0") in reqs
    assert (2, "/1029/11/5", b"auto".hex()) in reqs
    assert (2, "/1029/12/5", values.encode(values.FLOAT32, 1.5).hex()) in reqs


def test_configure_bad_files():
    with pytest.raises(tapconfig.ConfigError, match="unknown dataType 'WORD'"):
        tapconfig.plan({"data": {"bundles": [{"id": 1, "variables": [
            {"id": 1, "dataType": "WORD"}]}]}})
    with pytest.raises(tapconfig.ConfigError, match="unknown user or group 'bob'"):
        tapconfig.plan({"data": {"bundles": [{"id": 1, "acls": {"bob": {"read": True}}}]}})
    with pytest.raises(tapconfig.ConfigError, match="unknown domain"):
        tapconfig.plan({"data": {"bundles": [{"id": 1, "variables": [
            {"id": 1, "dataType": "INT8", "domain": "RAM"}]}]}})


def test_configure_command(capsys, fake):
    rc, out, err = run(capsys, "tap", "--link", fake.url, "configure", str(EXAMPLE))
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("[1/") and "config version in progress" in lines[0]
    assert lines[-1].startswith("configured: ")
    assert fake.app_name == b"twintap bench"
    assert fake.config_version == values.encode_version("1.2.3")
    assert fake.vars[10]["value"] == b"\x04\xb0" and fake.vars[10]["meta"] == "speed:rpm"


def test_configure_stops_on_the_first_error(capsys, fake):
    fake.fail[("POST", "/1028/3/65535")] = tapcodes.NVM_FULL
    rc, out, err = run(capsys, "tap", "--link", fake.url, "configure", str(EXAMPLE))
    assert rc == 2
    assert err.strip() == "twintap: configure: bundle 3 (extra) create failed: NVM_FULL (0xA7)"
    assert fake.requests[-1] == ("POST", "/1028/3/65535", b"")
    assert fake.config_version == values.encode_version("255.255.65535")  # left in progress


def test_configure_unreadable_file(capsys, tmp_path, fake):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    rc, _, err = run(capsys, "tap", "--link", fake.url, "configure", str(bad))
    assert rc == 2 and err.startswith("twintap: configure: cannot read")
    assert fake.requests == []
