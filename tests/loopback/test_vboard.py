"""The virtual board as a user meets it: `twintap vboard run`, Tap over TCP and over its UART
pty, a clean stop, and mpremote on its REPL pty."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import serial

from tests.conftest import micropython_pids_in
from twintap import TwintapError, vboard
from twintap.proto import frame, tapcodes

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "tap.json").read_text())
GET_SERIAL = bytes.fromhex(VECTORS["requests"][0]["apdu"])  # GET /3//2


def tcp_exchange(port: int, *apdus: bytes) -> list[bytes]:
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for apdu in apdus:
            s.sendall(apdu)
            out.append(s.recv(512))
    return out


def expected_serial(flash: Path) -> bytes:
    return ("TT" + (flash / ".efuse").read_bytes().hex().upper()).encode()


def test_ready_line_and_serial_over_tcp(start_board):
    b = start_board("--heap", "192K")
    assert int(b.ready["tcp"]) == b.tcp_port and b.ready["uart"] == "-"
    (resp,) = tcp_exchange(b.tcp_port, GET_SERIAL)
    status, data = frame.decode_response(resp)
    assert status == tapcodes.CONTENT
    assert data == expected_serial(b.flash)
    assert (b.flash / "main.py").is_file() and (b.flash / "board.json").is_file()


def test_unknown_paths_are_not_found_and_garbage_resyncs(start_board):
    b = start_board()
    not_found = frame.encode_response(tapcodes.NOT_FOUND)
    answers = tcp_exchange(
        b.tcp_port,
        frame.encode_request(frame.GET, 3, None, 9),
        frame.encode_request(frame.GET, 1029, 99, 4),
        frame.encode_request(frame.PUT, 4242, 1, 4, b"\x01"),
        bytes.fromhex("a3ca000007010003ffff0002"),  # wrong CLA
        GET_SERIAL,
    )
    assert answers[:3] == [not_found] * 3
    assert answers[3] == frame.encode_response(tapcodes.BAD_REQUEST)
    assert answers[4].startswith(b"\x45TT") and answers[4].endswith(b"\x90\x00")


def test_tap_over_uart_pty(start_board, tmp_path):
    link = tmp_path / "uart"
    b = start_board("--uart", str(link))
    assert b.ready["uart"] == str(link)
    with serial.serial_for_url(str(link), timeout=5) as port:
        port.write(GET_SERIAL)
        resp = port.read(3 + 14)
        assert frame.decode_response(resp) == (tapcodes.CONTENT, expected_serial(b.flash))
        port.write(b"\x00\x13noise")
        assert port.read(3) == frame.encode_response(tapcodes.BAD_REQUEST)
        port.write(GET_SERIAL)
        assert port.read(17) == resp


def test_serial_number_is_stable_across_restarts(start_board, tmp_path):
    flash = tmp_path / "flash"
    first = start_board(flash=flash)
    (a,) = tcp_exchange(first.tcp_port, GET_SERIAL)
    assert first.stop() == 0
    second = start_board(flash=flash)
    (b,) = tcp_exchange(second.tcp_port, GET_SERIAL)
    assert a == b


def test_clean_stop_on_sigint_and_sigterm(start_board, tmp_path):
    for sig in (signal.SIGINT, signal.SIGTERM):
        flash = tmp_path / f"flash-{sig}"
        b = start_board(flash=flash)
        assert micropython_pids_in(flash), "the board process is not running"
        assert b.stop(sig) == 0
        assert "STOPPED" in b.lines and "[I][vboard] stopped" in b.lines
        assert micropython_pids_in(flash) == []


def mpremote(link: Path, *args: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", str(link), *args],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_mpremote_resume_on_the_repl_pty(start_board, tmp_path):
    repl = tmp_path / "repl"
    b = start_board("--repl", str(repl))
    assert b.ready["repl"] == str(repl)
    assert mpremote(repl, "resume", "exec", "print(6 * 7)").strip() == "42"
    listing = mpremote(repl, "resume", "fs", "ls")
    assert "main.py" in listing and "board.json" in listing
    assert json.loads(mpremote(repl, "resume", "fs", "cat", "board.json"))["name"] == "unix"
    # a reboot from the REPL (what platform.reset() does) brings main.py back: Tap answers
    b.lines.clear()
    subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", str(repl), "resume", "exec",
         "import sys; sys.exit(75)"], capture_output=True, timeout=30,
    )
    b.wait_for(r"^READY ")
    (resp,) = tcp_exchange(b.tcp_port, GET_SERIAL)
    assert resp.startswith(b"\x45TT")


def test_plain_mpremote_soft_reset_lands_in_raw_repl(start_board, tmp_path):
    # Without `resume`, mpremote soft-resets first; like a real board the virtual one says
    # "soft reboot" and comes back in the raw REPL without running main.py.
    repl = tmp_path / "repl"
    start_board("--repl", str(repl))
    assert mpremote(repl, "exec", "import sys; print(sys.platform)").strip() == "linux"


def test_a_tap_reboot_with_a_repl_attached_comes_back(start_board, tmp_path):
    # under `micropython -i` SystemExit only reaches the REPL; the supervisor must restart it
    b = start_board("--repl", str(tmp_path / "repl"))
    reboot = frame.encode_request(frame.POST, 3, None, 4)
    assert tcp_exchange(b.tcp_port, reboot) == [frame.encode_response(tapcodes.CHANGED)]
    b.wait_for(r"board rebooting")
    b.wait_for(r"^READY ")
    (resp,) = tcp_exchange(b.tcp_port, GET_SERIAL)
    assert resp.startswith(b"\x45TT")


def test_a_killed_supervisor_takes_its_board_down(start_board, tmp_path):
    import time

    flash = tmp_path / "flash"
    b = start_board(flash=flash)
    assert micropython_pids_in(flash)
    b.proc.kill()  # SIGKILL: no chance to stop the board itself
    b.proc.wait(10)
    deadline = time.monotonic() + 10
    while micropython_pids_in(flash) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert micropython_pids_in(flash) == [], "the board outlived its supervisor"


def test_a_taken_port_is_replaced_and_a_failed_start_says_why(tmp_path, monkeypatch):
    # a port the launcher chose may be taken before the board binds it (boards started
    # together, their own outgoing connections): it starts again on another one; a port the
    # caller gave stays, and the error says what the board said
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        ports = iter([port, port, vboard.free_port()])
        monkeypatch.setattr(vboard, "free_port", lambda host="127.0.0.1": next(ports))
        vb = vboard.VirtualBoard(tmp_path / "a", tcp_port=0, echo=lambda line: None)
        try:
            vb.start(30)
            assert vb.tcp_port != port
            status = frame.decode_response(tcp_exchange(vb.tcp_port, GET_SERIAL)[0])[0]
            assert status == tapcodes.CONTENT
        finally:
            vb.stop()
        vb = vboard.VirtualBoard(tmp_path / "b", tcp_port=port, echo=lambda line: None)
        with pytest.raises(TwintapError, match="exited with status 1 .*EADDRINUSE"):
            vb.start(30)
    finally:
        taken.close()
