"""The dashboard end to end: a real broker, platform and virtual board, ``twintap dashboard``
as a process, and its page in headless Chromium. What a person does on the page must reach
the board (checked over Tap), and what happens on the board must show up on the page live.
"""

from __future__ import annotations

import json
import os
import struct
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tests.rpz.boards import APP, online, provision
from twintap.broker import BrokerDir
from twintap.tap import Tap

SETPOINT = 5  # the unix board file's variable ids
TEMPERATURE = 1
LABEL = 6
EVENTS_DROPPED = 240


def props_row(name: str) -> str:
    return f'#props tr[data-n="{name}"]'


def tap_row(vid: int) -> str:
    return f'#tap-vars tr[data-id="{vid}"]'


def screenshot(browser, tmp_path: Path, name: str) -> None:
    """Keep a picture of the page with the test's files; ``TWINTAP_DASHBOARD_SCREENSHOT``
    names a second place for it (how the README's picture is made)."""
    browser.call("eval", js="window.scrollTo(0, 0)")
    browser.call("screenshot", path=str(tmp_path / name), fullPage=True)
    extra = os.environ.get("TWINTAP_DASHBOARD_SCREENSHOT")
    if extra:
        browser.call("screenshot", path=str(Path(extra).resolve()), fullPage=True)


def test_device_twin_ssr_write_and_live_tap_write(dashboard, bench, start_board, browser,
                                                  tmp_path):
    flash = tmp_path / "flash"
    provision(bench, flash, "dash-1")
    b = start_board(flash=flash)
    online(b)
    browser.call("goto", url=dashboard.url)
    # the device, known to the platform, online, with its counters
    row = f'#devices tr[data-key="{APP}/dash-1"]'
    browser.wait(row, r"online")
    browser.call("click", sel=row)
    browser.wait("#twin-title", f"{APP}/cid/dash-1")
    # its twin: attributes, properties with rights, units and values
    browser.wait("#attributes", r"model\s*unix")
    browser.wait(f"{props_row('setpoint')} td.value", r"^21$")
    assert browser.text(f"{props_row('setpoint')} td.rights") == "rw-"
    assert browser.text(f"{props_row('temperature')} td.rights") == "r--"
    assert browser.text(f"{props_row('identify')} td.rights") == "--x"
    assert "C" in browser.text(props_row("temperature"))

    # a write from the page goes out as an SSR, reaches the board, and its ack is shown
    browser.call("fill", sel=f"{props_row('setpoint')} input.write-value", value="27")
    browser.call("click", sel=f"{props_row('setpoint')} button.write")
    ack = browser.wait("#ssr-ack.ok", r"WRITE 0\.02")
    assert '"v": 27' in ack and '"n": "setpoint"' in ack
    assert browser.call("attr", sel="#ssr-ack", name="data-status") == "WRITE 0.02"
    with Tap.connect(f"tcp://127.0.0.1:{b.tcp_port}") as tap:
        assert tap.variable.read(SETPOINT) == 27
    browser.wait(f"{props_row('setpoint')} td.value", r"^27$")  # the ack updated the shadow

    # an error ack carries the status in words and code, and the reason
    browser.call("fill", sel=f"{props_row('setpoint')} input.write-value", value="warm")
    browser.call("click", sel=f"{props_row('setpoint')} button.write")
    err = browser.wait("#ssr-ack.err", r"NOT_ACCEPTABLE 4\.06")
    assert "not an integer" in err
    # an exec echoes its op
    browser.call("fill", sel=f"{props_row('identify')} input.exec-value", value="1")
    browser.call("click", sel=f"{props_row('identify')} button.exec")
    browser.wait("#ssr-ack.ok", r"EXEC 0\.05")
    browser.wait("#acks", r"NOT_ACCEPTABLE 4\.06")  # the acks the platform recorded

    # a Tap write on the board shows up live: twin value and event stream (source tap)
    with Tap.connect(f"tcp://127.0.0.1:{b.tcp_port}") as tap:
        tap.variable.write(SETPOINT, 19)
    browser.wait(f"{props_row('setpoint')} td.value", r"^19$")
    browser.wait('#events tbody tr[data-n="setpoint"]', r"setpoint = 19\s*tap")
    # filtered: only setpoint events, from the Tap
    browser.call("select", sel="#ev-prop", value="setpoint")
    browser.call("select", sel="#ev-src", value="tap")
    browser.wait("#ev-count", r"^1 of \d+ events$")
    browser.call("select", sel="#ev-prop", value="")
    browser.call("select", sel="#ev-src", value="")
    # the live plot of a numeric property (the simulated temperature)
    browser.wait('#ev-plot option[value="temperature"]')
    browser.call("select", sel="#ev-plot", value="temperature")
    browser.wait("#ev-svg text", r"temperature: \d")
    assert browser.call("count", sel="#ev-svg polyline") == 1
    browser.wait(f"{row} td.events", r"^[1-9]\d*$")
    assert browser.text(f"{row} td.gaps") == "0"
    assert browser.call("errors") == []
    screenshot(browser, tmp_path, "twin.png")


def test_tap_panel_connect_login_write_and_monitor(dashboard, bench, start_board, browser,
                                                   tmp_path):
    flash = tmp_path / "flash"
    provision(bench, flash, "dash-2")
    radio = tmp_path / "ble.sock"
    b = start_board("--ble", str(radio), flash=flash)
    # a second board for the serial link: a board with both a UART pty and a BLE radio
    # currently crashes when a second TCP client comes (a firmware issue, reported)
    uart = tmp_path / "uart"
    start_board("--uart", str(uart), flash=tmp_path / "flash-uart")
    online(b)
    browser.call("goto", url=dashboard.url)
    browser.call("click", sel=f'#devices tr[data-key="{APP}/dash-2"]')
    browser.call("select", sel=f"{props_row('led')} select.write-value", value="true")
    browser.call("click", sel=f"{props_row('led')} button.write")
    browser.wait("#ssr-ack.ok", r'WRITE 0\.02.*"v": true')
    # a serial link (the board's UART pty), replaced by each next connection
    browser.call("fill", sel="#tap-url", value=str(uart))
    browser.call("click", sel="#tap-connect")
    browser.wait("#tap-status", f"connected to {uart}: TT")
    browser.wait(f"{tap_row(LABEL)} td.value", r"^bench$")
    # the emulated BLE radio
    browser.call("fill", sel="#tap-url", value=f"vble://{radio}")
    browser.call("click", sel="#tap-connect")
    browser.wait("#tap-status", f"connected to vble://{radio}: TT")
    browser.wait(f"{tap_row(LABEL)} td.value", r"^bench$")
    # then TCP, replacing it
    url = f"tcp://127.0.0.1:{b.tcp_port}"
    browser.call("fill", sel="#tap-url", value=url)
    browser.call("click", sel="#tap-connect")
    browser.wait("#tap-status", f"connected to {url}: TT")
    browser.wait(tap_row(SETPOINT), r"setpoint\s*int16\s*C\s*rw")

    # write from the panel: the board has it
    browser.call("fill", sel=f"{tap_row(SETPOINT)} input.write-value", value="23")
    browser.call("click", sel=f"{tap_row(SETPOINT)} button.write")
    browser.wait("#tap-msg.ok", r"wrote setpoint = 23 \(read back\)")
    with Tap.connect(url) as tap:
        assert tap.variable.read(SETPOINT) == 23
        tap.variable.write(LABEL, "from-tap")
    browser.call("click", sel=f"{tap_row(LABEL)} button.read")
    browser.wait(f"{tap_row(LABEL)} td.value", r"^from-tap$")

    # monitor: values polled server-side and pushed; a board-side change shows up live
    browser.call("click", sel=f"{tap_row(TEMPERATURE)} input.monitor")
    browser.call("click", sel=f"{tap_row(SETPOINT)} input.monitor")
    with Tap.connect(url) as tap:
        tap.variable.write(SETPOINT, 25)
    browser.wait(f"{tap_row(SETPOINT)} td.value", r"^25$")
    browser.wait('#tap-svg polyline[data-label="setpoint"]')
    browser.wait('#tap-svg polyline[data-label="temperature"]')

    # log in: admin sees the variable outside any bundle; a wrong password is refused
    browser.call("fill", sel="#tap-user", value="admin")
    browser.call("fill", sel="#tap-password", value="wrong-Pa55word")
    browser.call("click", sel="#tap-login")
    browser.wait("#tap-msg.err", r"refused")
    assert browser.call("eval", js="document.querySelector('#tap-password').value") == ""
    browser.call("fill", sel="#tap-password", value="admin")
    browser.call("click", sel="#tap-login")
    browser.wait("#tap-who", r"logged in as admin")
    browser.wait(tap_row(EVENTS_DROPPED), r"events_dropped")
    browser.wait('#tap-svg polyline[data-label="setpoint"]')  # monitoring went on
    browser.call("click", sel="#tap-logout")
    browser.wait("#tap-who", r"^anonymous$")
    assert browser.call("count", sel=tap_row(EVENTS_DROPPED)) == 0
    assert browser.call("errors") == []
    screenshot(browser, tmp_path, "tap.png")
    browser.call("click", sel="#tap-disconnect")
    browser.wait("#tap-status", r"^not connected$")
    # nothing secret reached the dashboard's output
    assert not [line for line in dashboard.lines if "Pa55word" in line]


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain PNG of one colour (a stand-in for the bench's plots)."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def get(url: str) -> tuple[int, dict, bytes]:
    """GET ``url``: status, headers, body (errors included)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def post(url: str, body: object, headers: dict | None = None) -> tuple[int, dict]:
    """POST JSON to ``url``: status and the JSON answer."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_bench_report_appears_with_its_plots(dashboard, browser):
    browser.call("goto", url=dashboard.url)
    browser.wait("#bench-report", r"no bench report yet")
    (dashboard.bench_dir / "latency.png").write_bytes(png(40, 20, (31, 111, 235)))
    (dashboard.bench_dir / "extra.png").write_bytes(png(20, 10, (207, 34, 46)))
    (dashboard.bench_dir / "report.md").write_text(
        "# twintap bench\n\n| link | p50 ms |\n|---|---|\n| tcp | 1.2 |\n\n"
        "![Tap latency](latency.png)\n\n- made <script>window.bad = 1</script> here\n"
        "- ![outside](../secret.png) ![remote](https://example.invalid/x.png)\n"
    )
    browser.wait("#bench-report h1", r"twintap bench")  # pushed live (no reload)
    browser.wait("#bench-report td", r"1\.2")
    assert browser.call("attr", sel="#bench-report img", name="src") == "/bench/latency.png"
    assert browser.call("count", sel="#bench-report img") == 1  # nothing from elsewhere
    assert browser.call("eval", js="document.querySelectorAll('#bench-report script').length"
                        " + (window.bad || 0)") == 0
    browser.wait("#bench-images figcaption", r"extra\.png")  # plots the report does not show
    assert browser.call(
        "eval", js="document.querySelector('#bench-report img').naturalWidth") == 40
    status, headers, body = get(dashboard.url + "/bench/latency.png")
    assert status == 200 and headers["Content-Type"] == "image/png" and body[:4] == b"\x89PNG"
    assert get(dashboard.url + "/bench/../x.png")[0] == 404
    assert get(dashboard.url + "/bench/%2e%2e/%2e%2e/etc/passwd")[0] == 404


def test_no_secret_on_the_page_and_only_its_own_origin_acts(dashboard, bench):
    secret = BrokerDir(bench.dir).platform_credentials().password
    added = bench.add(APP, "dash-secret", replace=True)
    assert secret and added.token
    state = get(dashboard.url + "/api/state")[2].decode()
    page = "".join(get(dashboard.url + p)[2].decode()
                   for p in ("/", "/static/app.js", "/static/style.css"))
    for text in (state, page, "\n".join(dashboard.lines)):
        assert secret not in text and added.token not in text
    status, headers, _ = get(dashboard.url + "/")
    assert status == 200 and "script-src 'self'" in headers["Content-Security-Policy"]
    # another site's page cannot make the dashboard act; nor can a form post
    ssr = {"app": APP, "cid": "dash-secret", "op": "write", "n": "led", "v": True}
    assert post(dashboard.url + "/api/ssr", ssr, {"Origin": "http://evil.example"})[0] == 403
    req = urllib.request.Request(dashboard.url + "/api/ssr", data=b"app=x", method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        urllib.request.urlopen(req, timeout=5)
        raise AssertionError("a form post was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 415
    # bad requests say why; an SSR to a device that is not there times out as an error
    assert post(dashboard.url + "/api/ssr", {"app": APP, "op": "write"})[0] == 400
    code, r = post(dashboard.url + "/api/ssr", {**ssr, "timeout": 0.5})
    assert code == 200 and r["ok"] is False and "no ack within" in r["error"]
    code, r = post(dashboard.url + "/api/tap/read", {"id": 1})
    assert r == {"ok": False, "error": "not connected to a Tap: connect first"}
