"""The Tap client library and `twintap tap` against real virtual boards, over TCP and over
the UART pty: identity, variables and bundles of boards/unix.json, multi-request, the CLI
commands (info, get, vars, read, write, monitor, configure)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from twintap.proto import tapcodes
from twintap.tap import MULTI_ANYTHING, Tap, TapError

EXAMPLE = Path(__file__).parents[1] / "host" / "tapconfig-example.json"
UNIX_VARS = {
    "temperature": (1, "float32", 1, "C", 1, "r"),
    "humidity": (2, "float32", 1, "%", 1, "r"),
    "counter": (3, "uint32", 1, "", 1, "r"),
    "led": (4, "bool", 1, "", 2, "rw"),
    "setpoint": (5, "int16", 1, "C", 2, "rw"),
    "label": (6, "ascii", 16, "", 2, "rw"),
}


def expected_serial(flash: Path) -> str:
    return "TT" + (flash / ".efuse").read_bytes().hex().upper()


@pytest.fixture
def board(start_board, tmp_path):
    return start_board("--uart", str(tmp_path / "uart"))


def links(b) -> list[str]:
    return [f"tcp://127.0.0.1:{b.tcp_port}", b.ready["uart"]]


def twintap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twintap", *args], capture_output=True,
                          text=True, timeout=120)


def test_serial_number_over_tcp_and_uart(board):
    for url in [*links(board), f"serial://{board.ready['uart']}?baud=115200"]:
        with Tap.connect(url) as tap:
            assert tap.device.serial_number() == expected_serial(board.flash), url
            assert tap.get("/3//2").code == tapcodes.CONTENT
            assert tap.device.manufacturer() == "twintap"


def test_cli_info_prints_the_serial(board):
    for url in links(board):
        r = twintap("tap", "--link", url, "info")
        assert r.returncode == 0, r.stderr
        assert re.search(r"^serial\s+" + expected_serial(board.flash) + "$", r.stdout, re.M)
        assert re.search(r"^manufacturer\s+twintap$", r.stdout, re.M)


def test_cli_get_unknown_path_is_not_found(board):
    for url in links(board):
        r = twintap("tap", "--link", url, "get", "/3//99")
        assert r.returncode == 1, r.stderr
        assert r.stdout.strip() == "NOT_FOUND (0x84)"
    r = twintap("tap", "--link", links(board)[0], "get", "/3//2")
    assert r.returncode == 0 and f"ascii: {expected_serial(board.flash)}" in r.stdout


def test_variables_are_discovered_by_name(board):
    for url in links(board):
        with Tap.connect(url) as tap:
            found = {v["name"]: v for v in tap.variables()}
            assert set(UNIX_VARS) <= set(found), url
            for name, want in UNIX_VARS.items():
                v = found[name]
                got = (v["id"], v["type"], v["count"], v["unit"], v["bundle"], v["access"])
                assert got == want, name
            assert 20.0 <= found["temperature"]["value"] <= 25.0
            assert tap.variable.find("setpoint") == 5


def test_read_and_write_variables(board):
    for i, url in enumerate(links(board)):
        with Tap.connect(url) as tap:
            v = tap.variable
            assert 20.0 <= v.read(1) <= 25.0 and 40.0 <= v.read(2) <= 60.0
            assert isinstance(v.read(3), int)
            v.write(5, 22 + i)
            assert v.read(5) == 22 + i
            v.write(4, True)
            assert v.read(4) is True
            v.write(4, "false")
            assert v.read(4) is False
            v.write(6, f"hello {i}")
            assert v.read(6) == f"hello {i}"
            v.put_raw(5, b"\xff\xfe")
            assert v.read(5) == -2
            with pytest.raises(TapError) as e:
                v.write(1, 1.0)  # temperature is read-only
            assert e.value.code is not None and e.value.code & 0x80
            with pytest.raises(TapError, match="NOT_FOUND"):
                v.read_raw(99)


def test_bundles(board):
    with Tap.connect(links(board)[0]) as tap:
        assert tap.bundle.name(1) == "sensors" and tap.bundle.name(2) == "controls"
        assert sorted(tap.bundle.values(1)) == [1, 2, 3]
        controls = tap.bundle.values(2)
        assert sorted(controls) == [4, 5, 6]
        assert controls[5] == tap.variable.read_raw(5)
        assert sorted(tap.variable.all_values()) == [1, 2, 3, 4, 5, 6]
        assert tap.variable.bundle_id(6) == 2


def test_interface_and_multi_request(board):
    with Tap.connect(links(board)[1]) as tap:
        assert re.fullmatch(r"\d+\.\d+\.\d+", tap.interface.config_version())
        assert isinstance(tap.interface.app_name(), str)
        assert tap.interface.current_group_id() == 0  # anonymous
        req, resp = tap.interface.max_frame_size()
        assert req >= 255 - 5 and resp > 0
        rs = tap.interface.multi_request([("GET", "/3//2", b"", MULTI_ANYTHING),
                                          ("GET", "/1029/99/4", b"", MULTI_ANYTHING),
                                          ("GET", "/3//0", b"", MULTI_ANYTHING)])
        assert [r.code_name for r in rs] == ["CONTENT", "NOT_FOUND", "CONTENT"]
        assert rs[0].data.decode() == expected_serial(board.flash)
        assert rs[2].data == b"twintap"


def test_cli_vars_read_write_monitor(board):
    for url in links(board):
        r = twintap("tap", "--link", url, "vars")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["id", "name", "type", "unit", "access", "value"]
        names = [x.split()[1] for x in lines[1:]]
        assert names[:6] == list(UNIX_VARS)
        assert any(x.split()[:3] == ["6", "label", "ascii[16]"] for x in lines)
        r = twintap("tap", "--link", url, "write", "setpoint", "24")
        assert r.returncode == 0 and r.stdout.strip() == "setpoint = 24", r.stderr
        r = twintap("tap", "--link", url, "read", "setpoint")
        assert (r.returncode, r.stdout.strip()) == (0, "24")
        r = twintap("tap", "--link", url, "read", "5")
        assert r.stdout.strip() == "24"
        r = twintap("tap", "--link", url, "write", "counter", "3")
        assert r.returncode == 2 and r.stderr.startswith("twintap: POST /1029/3/5: ")
        r = twintap("tap", "--link", url, "monitor", "counter", "temperature", "--csv",
                    "--count", "3", "--period", "100")
        assert r.returncode == 0, r.stderr
        rows = r.stdout.splitlines()
        assert rows[0] == "time,counter,temperature" and len(rows) == 4
        for row in rows[1:]:
            stamp, counter, temp = row.split(",")
            assert int(counter) >= 0 and 20.0 <= float(temp) <= 25.0


def test_cli_configure_the_example(board):
    url = links(board)[0]
    r = twintap("tap", "--link", url, "configure", str(EXAMPLE))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1].startswith("configured: ")
    with Tap.connect(links(board)[1]) as tap:
        assert tap.interface.app_name() == "twintap bench"
        assert tap.interface.config_version() == "1.2.3"
        assert tap.bundle.name(3) == "extra"
        assert tap.variable.find("speed") == 10
        assert tap.variable.read(10) == 1200 and tap.variable.unit(10) == "rpm"
        assert tap.variable.read(11) == "auto" and tap.variable.count(11) == 8
        assert tap.variable.read(12) == 1.5 and tap.variable.unit(12) == "dB"
        assert tap.variable.type(11).domain == 2 and tap.variable.type(10).domain == 3
        assert sorted(tap.bundle.values(3)) == [10, 11, 12]
        assert tap.group.name(1) == "operator" and tap.group.session_lifetime(1) == 60
        tap.variable.write(10, 1500)
        assert tap.variable.read(10) == 1500
