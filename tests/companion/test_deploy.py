"""``twintap deploy`` against a virtual board over its REPL pty: only what changed is copied,
stale firmware files go, configuration stays, the board restarts with the new firmware."""

from __future__ import annotations

import hashlib
import socket

from tests.companion.conftest import ready_again, twintap
from twintap import deploy
from twintap.proto import frame, tapcodes


def tap_serial(board) -> bytes:
    with socket.create_connection(("127.0.0.1", board.tcp_port), timeout=5) as s:
        s.sendall(frame.encode_request(frame.GET, 3, None, 2))
        status, data = frame.decode_response(s.recv(512))
    assert status == tapcodes.CONTENT
    return data


def test_deploy_copies_what_changed_and_resets(repl_board):
    b = repl_board()
    (b.flash / "config.json").write_text('{"tap": {}}')
    # the board came with the same bytecode: nothing to copy
    r = twintap("deploy", "--port", b.repl)
    assert r.returncode == 0, r.stderr
    assert "0 copied (0 bytes)" in r.stdout and "board reset" in r.stdout
    assert "firmware as .mpy v6 x64" in r.stdout
    ready_again(b)
    # sources instead: every module copied, every .mpy removed, the board still serves
    r = twintap("deploy", "--port", b.repl, "--source")
    assert r.returncode == 0, r.stderr
    n_py = len(list((deploy.FIRMWARE / "twintap").rglob("*.py")))
    assert f"{n_py} copied" in r.stdout and f"{n_py} removed" in r.stdout
    ready_again(b)
    lib = b.flash / "lib" / "twintap"
    assert not list(lib.rglob("*.mpy"))
    app = (deploy.FIRMWARE / "twintap" / "app.py").read_bytes()
    assert hashlib.sha256((lib / "app.py").read_bytes()).digest() == hashlib.sha256(app).digest()
    assert tap_serial(b).startswith(b"TT")
    # back to bytecode; configuration and data files are never touched
    r = twintap("deploy", "--port", b.repl, "--board", "unix")
    assert r.returncode == 0, r.stderr
    ready_again(b)
    assert not list(lib.rglob("*.py")) and (lib / "app.mpy").is_file()
    assert (b.flash / "config.json").read_text() == '{"tap": {}}'
    assert (b.flash / ".efuse").is_file()
    r = twintap("deploy", "--port", b.repl, "--no-reset")
    assert "0 copied" in r.stdout and "board reset" not in r.stdout


def test_deploy_refuses_a_board_file_for_another_chip(repl_board):
    b = repl_board()
    r = twintap("deploy", "--port", b.repl, "--board", "esp32-s3-devkitc-1")
    assert r.returncode == 2
    assert "twintap: board file esp32-s3-devkitc-1 is for an esp32s3" in r.stderr
    assert "Traceback" not in r.stderr
    r = twintap("deploy", "--port", b.repl, "--board", "nope")
    assert "no board file for 'nope'" in r.stderr


def test_mpy_cross_flags_follow_the_boards_bytecode():
    esp32 = deploy.Target("esp32", 6 | 3 << 8 | 10 << 10)  # v6.3, xtensawin
    assert esp32.flags() == ["-march=xtensawin"] and esp32.key() == "mpy6-xtensawin"
    assert deploy.Target("esp32", 6 | 3 << 8 | 11 << 10).flags() == ["-march=rv32imc"]
    assert deploy.Target("esp32", 5 | 9 << 10).flags() == ["-b", "5", "-march=xtensa"]
    for bad in (4, None):
        try:
            deploy.Target("esp32", bad).flags()
        except deploy.TwintapError as e:
            assert "--source" in str(e)
        else:
            raise AssertionError(bad)


def test_plan_compares_hashes():
    wanted = {"main.py": b"a", "lib/twintap/x.mpy": b"b"}
    have = {"main.py": hashlib.sha256(b"a").hexdigest(), "lib/twintap/x.mpy": "00",
            "lib/twintap/old.py": "11", "config.json": "22"}
    p = deploy.plan(wanted, have)
    assert p.copy == ["lib/twintap/x.mpy"] and p.same == ["main.py"]
    assert p.remove == ["lib/twintap/old.py"]  # never config.json


def test_deploy_romfs_needs_a_partition(repl_board):
    # the unix port has no ROMFS partition to write (its virtual boards map one with
    # `twintap vboard run --romfs`): a clear error, nothing changed on the board
    b = repl_board()
    before = sorted(p.name for p in (b.flash / "lib" / "twintap").rglob("*.mpy"))
    r = twintap("deploy", "--port", b.repl, "--romfs")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "twintap: the MicroPython on" in r.stderr and "has no ROMFS partition" in r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in (b.flash / "lib" / "twintap").rglob("*.mpy")) == before
    r = twintap("deploy", "--port", b.repl, "--romfs", "--source")
    assert r.returncode == 2 and "does not go with --source" in r.stderr


def test_romfs_image_holds_the_compiled_package(tmp_path):
    from twintap.romfs import image

    files = deploy.build(deploy.Target("esp32", 6 | (10 << 10)))  # .mpy v6, xtensawin
    data = image(files)
    assert data.startswith(b"\xd2\xcd\x31")
    assert all(k.startswith("lib/twintap/") and k.endswith(".mpy") for k in files)
    for k, v in files.items():  # every file's bytes are in the image, verbatim
        assert v in data, k
