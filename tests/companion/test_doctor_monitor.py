"""Safe mode, ``twintap doctor`` and ``twintap monitor`` against virtual boards over their
REPL pty: a board with a broken configuration keeps serving Tap and says why at every boot;
the doctor report shows it with every secret masked; the monitor colours levels and comes
back after the board goes away."""

from __future__ import annotations

import json
import re
import signal
import socket

import serial

from tests.companion.conftest import ready_again, twintap
from tests.rpz.fixtures import LineProcess, twintap_cmd
from twintap.proto import frame, improv, tapcodes

GET_SERIAL = frame.encode_request(frame.GET, 3, None, 2)


def serves_tap(board) -> None:
    with socket.create_connection(("127.0.0.1", board.tcp_port), timeout=5) as s:
        s.sendall(GET_SERIAL)
        assert frame.decode_response(s.recv(512))[0] == tapcodes.CONTENT
    with serial.serial_for_url(str(board.uart), timeout=3) as port:
        port.write(GET_SERIAL)
        assert frame.decode_response(port.read(17))[0] == tapcodes.CONTENT


def test_safe_mode_and_the_doctor_report(repl_board, tmp_path):
    flash = tmp_path / "board"
    flash.mkdir()
    (flash / "config.json").write_text(json.dumps({
        "wifi": {"ssid": "twintap-lab", "password": "lab-password"},
        "rpz": {"broker": "http://broker", "app_id": "a", "token": "SECRET-TOKEN-123"},
    }))
    b = repl_board()
    b.wait_for(r"^\[I\]\[wifi\] connected to twintap-lab")  # the valid part is kept
    assert any(line.startswith("[E][main] safe mode: config.json: rpz.broker: broker URL must"
                               " be mqtt://") for line in b.lines), b.lines
    serves_tap(b)
    r = twintap("doctor", "--port", b.repl)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "safe mode        config.json: rpz.broker: broker URL must be" in out
    assert "INVALID:\n    rpz.broker: broker URL must be mqtt://" in out
    assert '"token": "****"' in out and '"password": "****"' in out
    assert "SECRET-TOKEN-123" not in out and "lab-password" not in out
    assert "micropython      1.29" in out and "twintap          0.1.0" in out
    assert "wifi             connected (twintap-lab, ip 127.0.0.1, rssi -48)" in out
    assert "mqtt             not configured" in out
    assert "[E][main] safe mode: config.json: rpz.broker" in out  # the board's own ring
    assert "Chip: not read" in out
    ready_again(b)  # the doctor let the firmware run again
    serves_tap(b)
    # unparsable, and valid-looking but fatal at start-up: safe mode too, never a crash
    for text, why in (("{not json", r"config\.json is not valid JSON"),
                      ('{"properties": [{"id": 99}]}', r"start-up failed with config\.json "
                                                       r"\(KeyError")):
        b.stop()
        (flash / "config.json").write_text(text)
        b = repl_board()
        rx = re.compile(r"^\[E\]\[main\] safe mode: " + why)
        assert any(rx.match(line) for line in b.lines), b.lines  # logged before READY
        serves_tap(b)
    r = twintap("doctor", "--port", b.repl, "--no-chip")
    assert "safe mode        start-up failed with config.json (KeyError" in r.stdout


def wrong_wifi(board) -> None:
    with serial.serial_for_url(str(board.uart), timeout=1) as port:
        port.write(improv.encode_rpc(improv.WIFI_SETTINGS,
                                     improv.encode_wifi("twintap-lab", "wrong-password")))
        port.read(64)


def test_monitor_colours_levels_and_reconnects(repl_board):
    b = repl_board()
    mon = LineProcess(twintap_cmd("monitor", "--port", b.repl, "--color", "always"),
                      ready=r"^--- twintap monitor on ")
    try:
        # warnings in yellow, info plain: a wrong Wi-Fi password given over Improv
        wrong_wifi(b)
        mon.wait_for(r"^\[I\]\[wifi\] joining twintap-lab$")
        mon.wait_for("^\x1b\\[33m\\[W\\]\\[wifi\\] cannot join twintap-lab: "
                     "wrong password\x1b\\[0m$")
        # the monitor has the port: another command says it is busy, and leaves it alone
        r = twintap("provision", "--port", b.repl, "--client-id", "x")
        assert r.returncode == 2
        assert r.stderr.startswith(f"twintap: {b.repl} is busy: another program has it open")
        # the board goes away and comes back on the same link
        b.stop()
        mon.wait_for(r"\[W\]\[monitor\] .*repl: .*waiting for it to come back")
        b2 = repl_board()
        assert b2.repl == b.repl
        mon.wait_for(r"\[W\]\[monitor\] .*repl: back", timeout=20)
        wrong_wifi(b2)
        mon.wait_for("^\x1b\\[33m\\[W\\]\\[wifi\\] cannot join twintap-lab")
    finally:
        assert mon.stop(signal.SIGINT) == 0, mon.lines
