"""Tap security against virtual boards, through the host library, the CLI and raw APDUs:
basic, hashed, UID and SCRAM logins, encrypted sessions (GET /1024//47 or SCRAM; IV period 1,
2 and 100), ACLs, the configuration lock, passwords set as SCRAM keys, the login lockout,
`require_encryption`, and no secret in any log line or CLI output."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys

import pytest

from tests.loopback.test_tap_services import Link
from twintap import cli
from twintap.proto import encframe, frame, scram, tapcodes
from twintap.tap import Tap, TapError
from twintap.tap.auth import TapAuthError

GET, PUT, POST = frame.GET, frame.PUT, frame.POST
ADMIN = 0xFFFF
SETPOINT = 5  # bundle 2 "controls": anonymous rw on the unix board
CONTROLS = 2


def tcp(b) -> str:
    return f"tcp://127.0.0.1:{b.tcp_port}"


def twintap(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twintap", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})},
                          stdin=subprocess.DEVNULL, start_new_session=True)


def set_options(b, options: int) -> None:
    with Tap.connect(tcp(b)) as tap:
        tap.auth.login("admin", "admin")
        tap.put("/1024//6", struct.pack(">H", options)).body()
        tap.auth.logout()


@pytest.fixture
def board(start_board, tmp_path):
    return start_board("--uart", str(tmp_path / "uart"))


def configured_board(start_board, tmp_path, tap_options: dict):
    flash = tmp_path / "flash"
    flash.mkdir(parents=True, exist_ok=True)
    (flash / "config.json").write_text(json.dumps({"tap": tap_options}))
    return start_board(flash=flash)


# -- logins -----------------------------------------------------------------------------------
def test_basic_login_profile_ids_and_logout_on_both_links(board):
    for url in (tcp(board), board.ready["uart"]):
        with Tap.connect(url) as tap:
            assert tap.auth.options() == 0
            assert (tap.auth.current_group(), tap.auth.current_profile()) == (0, 0)
            assert tap.auth.login("admin", "admin") == "basic"
            assert (tap.auth.current_group(), tap.auth.current_profile()) == (ADMIN, ADMIN)
            assert tap.group.session_lifetime(ADMIN) == 30  # minutes
            tap.auth.logout()
            assert tap.auth.current_group() == 0
            assert tap.auth.login("supervisor", "supervisor") == "basic"
            assert tap.auth.current_group() == 0xFFFE
            tap.auth.logout()
            with pytest.raises(TapAuthError) as e:
                tap.auth.login("admin", "wrong")
            assert e.value.reason == "invalid-credentials" and e.value.code == 0x86
            assert "wrong" not in str(e.value)


def test_anonymous_cannot_write_without_the_acl_admin_can(board):
    with Tap.connect(tcp(board)) as anon, Tap.connect(tcp(board)) as admin:
        admin.auth.login("admin", "admin")
        admin.bundle.put_acl(CONTROLS, 0, read=True, write=False)
        assert anon.variable.access(SETPOINT) == "r"
        with pytest.raises(TapError) as e:
            anon.variable.write(SETPOINT, 5)
        assert e.value.code == tapcodes.UNAUTHORIZED
        with pytest.raises(TapError, match="UNAUTHORIZED"):
            anon.variable.put_raw(SETPOINT, b"\x00\x05")
        assert admin.variable.access(SETPOINT) == "rw"
        admin.variable.write(SETPOINT, 7)
        assert anon.variable.read(SETPOINT) == 7
        # no right at all: reads and the bundle's values are refused too
        admin.bundle.put_acl(CONTROLS, 0, read=False, write=False)
        assert anon.get(f"/1029/{SETPOINT}/4").code == tapcodes.UNAUTHORIZED
        assert anon.get(f"/1028/{CONTROLS}/1").code == tapcodes.UNAUTHORIZED
        assert anon.variable.access(SETPOINT) == "-"
        assert SETPOINT not in anon.variable.all_values()
        assert admin.variable.read(SETPOINT) == 7
        assert SETPOINT in admin.bundle.values(CONTROLS)


def test_hashed_login(board):
    set_options(board, 0x0008)
    with Tap.connect(tcp(board)) as tap:
        assert tap.auth.options() == 0x08
        assert tap.auth.login("admin", "admin") == "hashed"
        assert tap.auth.current_group() == ADMIN
        tap.auth.logout()
        with pytest.raises(TapAuthError) as e:
            tap.auth.login("admin", "admin", method="basic")  # the Tap expects H(pw)
        assert e.value.reason == "invalid-credentials"


def test_uid_login_and_its_option(board):
    with Tap.connect(board.ready["uart"]) as wire, Tap.connect(tcp(board)) as net:
        uid = wire.interface.uid()  # the wire stands in for NFC proximity
        assert len(uid) == 8
        assert net.get("/1024//5").code == tapcodes.UNAUTHORIZED
        net.auth.login_with_uid(uid)
        assert net.auth.current_group() == ADMIN
        assert net.interface.uid() == uid
        net.put("/1024//6", b"\x00\x02").body()  # disableLoginWithUID
        net.auth.logout()
        with pytest.raises(TapAuthError) as e:
            net.auth.login_with_uid(uid)
        assert e.value.reason == "method-disabled" and e.value.code == 0x87


# -- SCRAM and encrypted sessions ------------------------------------------------------------
@pytest.mark.parametrize("iv_period", [100, 2, 1])
def test_scram_login_starts_an_encrypted_session(board, iv_period):
    set_options(board, 0x0018)
    lk = Link(board, "tcp")
    try:
        with Tap.connect(tcp(board)) as tap:
            tap.encryption.iv_period = iv_period
            assert tap.auth.login("admin", "admin") == "scram"
            assert tap.encryption.active
            for i in range(5):
                tap.variable.write(SETPOINT, 10 + i)
                assert tap.variable.read(SETPOINT) == 10 + i
                assert tap.auth.current_group() == ADMIN
            assert tap.device.serial_number().startswith("TT")
            assert tap.get("/1029/99/4").code == tapcodes.NOT_FOUND  # inner status
            assert tap.encryption.frames >= 15
            # an eavesdropper on another connection has no session: the carrier refuses
            assert lk.request(GET, "/1024//48", bytes(16))[0] == tapcodes.UNAUTHORIZED
            tap.auth.logout()
            assert not tap.encryption.active
            assert tap.auth.current_group() == 0
        with Tap.connect(tcp(board)) as tap:
            with pytest.raises(TapAuthError) as e:
                tap.auth.login("admin", "not-admin")
            assert e.value.reason == "invalid-credentials" and e.value.code == 0x81
            assert not tap.encryption.active
            with pytest.raises(TapAuthError) as e:
                tap.auth.login("admin", "admin", method="basic")
            assert e.value.reason == "method-disabled"
    finally:
        lk.close()


@pytest.mark.parametrize("iv_period", [100, 2, 1, 0])
def test_encrypted_session_from_get_1024_47(board, iv_period):
    with Tap.connect(board.ready["uart"]) as tap:
        tap.encryption.start(iv_period)
        assert tap.encryption.active
        for i in range(6):
            tap.variable.write(SETPOINT, -i)
            assert tap.variable.read(SETPOINT) == -i
        assert sorted(tap.bundle.values(CONTROLS)) == [4, 5, 6]
        tap.auth.login("admin", "admin")  # a basic login inside the channel
        assert tap.auth.current_group() == ADMIN
        tap.auth.logout()  # ends the channel on both sides
        assert not tap.encryption.active
        assert tap.variable.read(SETPOINT) == -5


def test_encrypted_frames_on_the_wire(board):
    """Raw frames: CRC and length errors get an error status, stale ids are refused, the
    link keeps serving; a new /1024//47 session restarts frame ids."""
    lk = Link(board, "tcp")
    try:
        st, key = lk.request(GET, "/1024//47")
        assert st == tapcodes.CONTENT and len(key) == 16
        inner = frame.encode_frame(GET, 3, None, 2)

        def send(fid, iv=encframe.ZERO_IV, k=key):
            return lk.request(GET, "/1024//48", encframe.encrypt(k, iv, fid, inner))

        st, data = send(0)
        assert st == tapcodes.CONTENT
        fid, plain = encframe.decrypt(key, encframe.ZERO_IV, data)
        status, serial = frame.decode_response(plain)
        assert (fid, status) == (0, tapcodes.CONTENT) and serial.startswith(b"TT")
        assert plain.endswith(b"\x90\x00")
        assert send(0)[0] == tapcodes.BAD_REQUEST  # replay
        assert send(5)[0] == tapcodes.CONTENT  # ids may skip forward
        assert send(3)[0] == tapcodes.BAD_REQUEST
        assert send(6, k=bytes(16))[0] == tapcodes.BAD_REQUEST  # wrong key: bad CRC
        assert lk.request(GET, "/1024//48", b"\x01" * 17)[0] == tapcodes.BAD_REQUEST
        assert lk.request(GET, "/1024//48", b"")[0] == tapcodes.BAD_REQUEST
        assert lk.request(GET, "/1024//44", b"\x01" * 20)[0] == tapcodes.BAD_REQUEST
        assert send(6)[0] == tapcodes.CONTENT
        st, key = lk.request(GET, "/1024//47")
        assert send(0, k=key)[0] == tapcodes.CONTENT
        assert lk.request(GET, "/3//2")[0] == tapcodes.CONTENT  # plain requests still work
    finally:
        lk.close()


def test_require_encryption(start_board, tmp_path):
    b = configured_board(start_board, tmp_path, {"require_encryption": True})
    with Tap.connect(tcp(b)) as tap:
        assert tap.variable.read(SETPOINT) == 21  # reads stay open
        with pytest.raises(TapError, match="UNAUTHORIZED"):
            tap.variable.write(SETPOINT, 1)
        tap.encryption.start()
        tap.variable.write(SETPOINT, 1)
        assert tap.variable.read(SETPOINT) == 1
    r = twintap("tap", "--link", tcp(b), "write", "setpoint", "3")
    assert r.returncode == 2 and "UNAUTHORIZED" in r.stderr
    r = twintap("tap", "--link", tcp(b), "--encrypt", "--iv-period", "1", "write", "setpoint", "3")
    assert (r.returncode, r.stdout.strip()) == (0, "setpoint = 3"), r.stderr


def test_credentials_provisioned_in_config_json(start_board, tmp_path):
    """`twintap provision` leaves SCRAM keys in config.json: they are in force at boot."""
    key = scram.password_key("Prov-pw-1", b"\x42\x00\x00\x01", 2000)
    user = {"stored": key[:16].hex(), "server": key[16:32].hex(), "salt": "42000001",
            "it": 2000}
    b = configured_board(start_board, tmp_path, {"users": {"admin": user}})
    with Tap.connect(tcp(b)) as tap:
        with pytest.raises(TapAuthError):
            tap.auth.login("admin", "admin")
        tap.auth.login("admin", "Prov-pw-1")
        assert tap.auth.current_group() == ADMIN
    assert not any("Prov-pw-1" in line or key[:16].hex() in line for line in b.lines)


# -- passwords, configuration lock, lockout ----------------------------------------------------
def test_passwd_locks_the_configuration(start_board, tmp_path, capsys, monkeypatch):
    b = start_board()
    url = tcp(b)
    with Tap.connect(url) as tap:
        tap.interface.set_app_name("open board")  # factory state: anyone configures
        with pytest.raises(TapError, match="UNAUTHORIZED"):
            tap.auth.change_password("admin", "x")  # only admin sets others' passwords
    prompts = []

    def fake_getpass(prompt):
        prompts.append(prompt)
        return "admin" if prompt.startswith("password for") else "N3w-pass"

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    rc = cli.main(["tap", "--link", url, "--user", "admin", "passwd", "admin"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert prompts == ["password for admin: ", "new password for admin: ", "again: "]
    assert "N3w-pass" not in out + err and out.strip() == "password of admin (group 65535) changed"
    stored = json.loads((b.flash / "tap.json").read_text())["groups"][str(ADMIN)]
    assert set(stored) == {"name", "lifetime", "alias", "key", "it"}
    key = bytes.fromhex(stored["key"])
    assert key[32] != 0 and stored["it"] == 5000
    assert key == scram.password_key("N3w-pass", key[32:], 5000)
    with Tap.connect(url) as tap:
        with pytest.raises(TapError, match="UNAUTHORIZED"):
            tap.interface.set_app_name("locked now")
        with pytest.raises(TapError, match="UNAUTHORIZED"):
            tap.post("/3//4").body()  # reboot: admin only once locked
        tap.variable.write(SETPOINT, 2)  # values follow the ACLs, not the lock
        with pytest.raises(TapAuthError):
            tap.auth.login("admin", "admin")
        tap.auth.login("admin", "N3w-pass")
        tap.interface.set_app_name("admin configured")
        # SCRAM keys set for another user, derived with the board's iterations
        tap.put("/1024//42", b"\x03\xe8").body()  # 1000 iterations for new passwords
        assert tap.auth.iterations() == 1000
        tap.auth.change_password("supervisor", "sup-2")
        tap.auth.logout()
        assert tap.auth.login("supervisor", "sup-2") == "basic"
        assert json.loads((b.flash / "tap.json").read_text())["groups"]["65534"]["it"] == 1000
    r = twintap("tap", "--link", url, "--user", "admin", "--password", "N3w-pass", "info")
    assert r.returncode == 0 and re.search(r"^profile/group\s+65535 / 65535$", r.stdout, re.M)
    r = twintap("tap", "--link", url, "--user", "admin", "--password", "bad", "info")
    assert r.returncode == 2 and "invalid user name or password" in r.stderr


def test_lockout_after_three_failures_survives_a_reconnect(board):
    url = tcp(board)
    for i in range(3):
        with Tap.connect(url) as tap:  # one connection each: the lockout is per host
            with pytest.raises(TapAuthError) as e:
                tap.auth.login("admin", f"guess{i}")
            assert e.value.reason == "invalid-credentials"
    with Tap.connect(url) as tap:
        with pytest.raises(TapAuthError) as e:
            tap.auth.login("admin", "admin")
        assert e.value.reason == "too-many-attempts" and e.value.code == 0xA3
        assert tap.post("/1024//5", bytes(8)).code == 0xA3  # UID login refused as well
    with Tap.connect(board.ready["uart"]) as tap:  # another link is not locked out
        tap.auth.login("admin", "admin")
    r = twintap("tap", "--link", url, "--user", "admin", "--password", "admin", "info")
    assert r.returncode == 2 and "too many failed attempts" in r.stderr
    board.wait_for(r"logins refused for 60 s")


def test_factory_reset_can_be_disabled(board):
    with Tap.connect(tcp(board)) as tap:
        tap.auth.login("admin", "admin")
        tap.put("/1024//6", b"\x00\x01").body()
        assert tap.post("/3//5").code == tapcodes.RESOURCE_LOCKED
        assert tap.auth.options() == 0x01


def test_configure_with_profiles_and_passwords_as_admin(board, tmp_path):
    cfg = {
        "application": {"name": "secured", "version": "2.0.0"},
        "data": {
            "profiles": [{"id": 3, "username": "tech", "lifeTime": 5, "alias": 3,
                          "password": "tech-pw"}],
            "bundles": [{"id": 2, "name": "controls",
                         "acls": {"anonymous": "r", "tech": "rw"}}],
        },
    }
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    r = twintap("tap", "--link", tcp(board), "--user", "admin", "--password", "admin",
                "configure", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tech-pw" not in r.stdout + r.stderr
    with Tap.connect(tcp(board)) as tap:
        with pytest.raises(TapError, match="UNAUTHORIZED"):
            tap.variable.write(SETPOINT, 1)
        tap.auth.login("tech", "tech-pw")
        assert (tap.auth.current_group(), tap.auth.current_profile()) == (3, 3)
        assert tap.group.session_lifetime(3) == 5
        tap.variable.write(SETPOINT, 1)
        assert tap.variable.access(SETPOINT) == "rw"


# -- no secret in any log ------------------------------------------------------------------------
def test_no_secret_in_board_logs_or_cli_output(start_board, tmp_path):
    b = start_board("--uart", str(tmp_path / "uart"))
    url = tcp(b)
    secrets = {"admin-Secret-1", "supervisor-Secret-2"}
    outputs = []

    def cli_run(*args, env=None):
        r = twintap("tap", "--link", url, *args, env=env)
        outputs.extend([r.stdout, r.stderr])
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    env = {"TWINTAP_PASSWORD": "admin", "TWINTAP_NEW_PASSWORD": "admin-Secret-1"}
    cli_run("--user", "admin", "passwd", "admin", env=env)
    env = {"TWINTAP_PASSWORD": "admin-Secret-1", "TWINTAP_NEW_PASSWORD": "supervisor-Secret-2"}
    cli_run("--user", "admin", "--encrypt", "passwd", "supervisor", env=env)
    cli_run("--user", "admin", "--password", "admin-Secret-1", "put", "/1024//6", "0018")
    cli_run("--user", "supervisor", "--password", "supervisor-Secret-2", "--iv-period", "1",
            "write", "setpoint", "12")
    cli_run("--user", "admin", "--password", "admin-Secret-1", "--encrypt", "--iv-period", "3",
            "vars")  # SCRAM inside a /1024//47 session
    cli_run("--user", "admin", "--password", "admin-Secret-1", "whoami")
    session_keys = []
    with Tap.connect(url) as tap:
        tap.auth.login("admin", "admin-Secret-1")
        session_keys.append(tap.encryption._key)
        tap.variable.write(SETPOINT, 13)
        with pytest.raises(TapAuthError):
            tap.auth.login("admin", "wrong-Secret-3")  # fails inside the channel
        tap.auth.logout()
        tap.encryption.start()
        session_keys.append(tap.encryption._key)
        tap.variable.read(SETPOINT)
    with Tap.connect(b.ready["uart"]) as tap:
        uid = tap.interface.uid()
        tap.auth.login_with_uid(uid)
        tap.auth.logout()
    secrets.add("wrong-Secret-3")
    for g in json.loads((b.flash / "tap.json").read_text())["groups"].values():
        if "key" in g:
            key = bytes.fromhex(g["key"])
            secrets.update({key[:16].hex(), key[16:32].hex()})
    for k in session_keys + [uid]:
        secrets.add(k.hex())
    b.stop()
    text = "\n".join(b.lines + outputs)
    assert "logged in (SCRAM)" in text and "password of supervisor changed" in text
    for s in secrets:
        for form in {s, s.upper(), s.lower()}:
            assert form not in text, f"secret found in logs: {form[:6]}..."
