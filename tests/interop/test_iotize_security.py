"""Tap security with the official IoTize JS client (npm `@iotize/tap` 2.7.0) against virtual
boards: `tap.auth.login` with SCRAM (right and wrong password), hashed and basic login,
`tap.encryption.start()` (GET /1024//47) with IV periods 1 and 100, reads and writes inside
the encrypted sessions decoded by the library, password changes, ACLs, the lockout, logout.
The security options are set with the twintap host library (admin login) between runs."""

from __future__ import annotations

import struct

import pytest

from tests.interop.conftest import board_file, data_config
from tests.interop.test_iotize_tap import call, expected_serial, run, values
from twintap.tap import Tap

DATA = data_config(board_file("unix"))
ADMIN = 0xFFFF
SCRAM, HASHED, BASIC = 0x18, 0x08, 0x00


def set_options(b, options: int, password: str = "admin") -> None:
    with Tap.connect(f"tcp://127.0.0.1:{b.tcp_port}") as tap:
        tap.auth.login("admin", password)
        tap.put("/1024//6", struct.pack(">H", options)).body()
        tap.auth.logout()


def login(user: str = "admin", password: str = "admin") -> dict:
    return {"op": "auth.login", "username": user, "password": password}


def rw_ops(value: int) -> list:
    """Reads and writes through the data layer, the bundle TLV and a plain service call."""
    return [
        {"op": "data.register", "bundles": DATA},
        {"op": "data.write", "variable": "setpoint", "value": value},
        {"op": "data.read", "variable": "setpoint"},
        {"op": "data.write", "variable": "label", "value": f"enc {value}"},
        {"op": "bundle.read", "bundle": "controls"},
        call("device", "getSerialNumber"),
        call("interface", "getCurrentGroupId"),
    ]


def check_rw(b, results: list, value: int, group: int) -> None:
    registered, _, setpoint, _, controls, serial, gid = results
    assert registered == ["sensors", "controls"]
    assert setpoint == value
    assert controls == {"led": False, "setpoint": value, "label": f"enc {value}"}
    assert serial == expected_serial(b.flash)
    assert gid == group


def error_of(doc: dict, i: int) -> dict:
    r = doc["results"][i]
    assert r["ok"] is False, r
    return r["error"]


@pytest.mark.parametrize("iv_period", [100, 1])
def test_scram_login_encrypted_reads_writes_and_logout(start_board, iotize, iv_period):
    b = start_board()
    set_options(b, SCRAM)
    ops = [{"op": "encryption.period", "ivPeriod": iv_period}, login()]
    ops += rw_ops(-7)
    ops += [{"op": "encryption.state"}, {"op": "auth.logout"},
            call("interface", "getCurrentGroupId")]
    ops += [login(), {"op": "data.read", "variable": "setpoint"}, {"op": "auth.logout"}]
    res = values(run(iotize, b.tcp_port, ops))
    state = res[1]
    assert state["method"] == "scram" and state["encrypted"] is True
    assert state["groupId"] == ADMIN and state["lifeTime"] == 30 and state["sessionKey"] == "set"
    check_rw(b, res[2:9], -7, ADMIN)
    enc = res[9]
    assert enc["started"] is True and enc["ivPeriod"] == iv_period and enc["frameCounter"] >= 8
    assert res[10] == {"method": "scram", "encrypted": False, "groupId": 0,
                       "name": "anonymous", "lifeTime": -1}
    assert res[11] == 0
    assert res[12]["encrypted"] is True and res[13] == -7  # a second session, same link
    assert any("logged in (SCRAM)" in line for line in b.lines)


def test_scram_wrong_password_is_rejected(start_board, iotize):
    b = start_board()
    set_options(b, SCRAM)
    doc = run(iotize, b.tcp_port, [login(password="wrong"), {"op": "encryption.state"},
                                   call("interface", "getCurrentGroupId"), login()])
    err = error_of(doc, 0)
    assert err["code"] == "TapAuthErrorInvalidCredentials"
    assert err["statusName"] == "UNAUTHORIZED"
    assert doc["results"][1]["value"]["started"] is False
    assert doc["results"][2]["value"] == 0
    assert doc["results"][3]["value"]["groupId"] == ADMIN  # the right one still works


@pytest.mark.parametrize("options,method", [(BASIC, "basic"), (HASHED, "hashed")])
def test_basic_and_hashed_login(start_board, iotize, options, method):
    b = start_board()
    if options:
        set_options(b, options)
    doc = run(iotize, b.tcp_port, [
        login(password="nope"),
        login(),
        call("interface", "getCurrentProfileId"),
        {"op": "auth.logout"},
        call("interface", "getCurrentGroupId"),
    ])
    err = error_of(doc, 0)
    assert err["code"] == "TapAuthErrorInvalidCredentials"
    assert err["statusName"] == "NOT_ACCEPTABLE"
    state = doc["results"][1]["value"]
    assert (state["method"], state["encrypted"], state["groupId"]) == (method, False, ADMIN)
    assert doc["results"][2]["value"] == ADMIN
    assert doc["results"][3]["value"]["groupId"] == 0
    assert doc["results"][4]["value"] == 0


@pytest.mark.parametrize("iv_period", [100, 1])
def test_encryption_start_reads_writes_login_logout(start_board, iotize, iv_period):
    b = start_board()
    ops = [{"op": "encryption.start", "ivPeriod": iv_period}]
    ops += rw_ops(9)
    ops += [login(), call("interface", "getCurrentGroupId"), {"op": "encryption.state"},
            {"op": "auth.logout"}, {"op": "encryption.state"},
            call("interface", "getCurrentGroupId")]
    res = values(run(iotize, b.tcp_port, ops))
    assert res[0] == {"started": True, "keyLength": 16}
    check_rw(b, res[1:8], 9, 0)
    assert res[8]["method"] == "basic" and res[8]["encrypted"] is True  # login inside
    assert res[9] == ADMIN
    assert res[10]["started"] is True and res[10]["frameCounter"] >= 9
    assert res[11]["encrypted"] is False and res[12]["started"] is False
    assert res[13] == 0


def test_iv_refresh_every_two_frames(start_board, iotize):
    b = start_board()
    ops = [{"op": "encryption.start", "ivPeriod": 2}] + rw_ops(3) + rw_ops(4)[1:]
    res = values(run(iotize, b.tcp_port, ops))
    check_rw(b, res[1:8], 3, 0)
    check_rw(b, [res[1]] + res[8:14], 4, 0)


def test_password_change_by_the_library_then_login(start_board, iotize):
    """ScramAuth.changePassword derives the keys (GET /1024//42, random salt): the board
    keeps them and the next SCRAM login with the new password works."""
    b = start_board()
    set_options(b, SCRAM)
    doc = run(iotize, b.tcp_port, [
        login(),
        {"op": "auth.changePassword", "password": "n3w-Admin", "userId": ADMIN},
        {"op": "auth.logout"},
        login(),
        login(password="n3w-Admin"),
    ])
    assert [r["ok"] for r in doc["results"]] == [True, True, True, False, True], doc
    assert doc["results"][4]["value"]["groupId"] == ADMIN
    # the configuration is locked now: anonymous may not rename the application
    doc = run(iotize, b.tcp_port, [call("interface", "putAppName", "x"),
                                   login(password="n3w-Admin"),
                                   call("interface", "putAppName", "renamed"),
                                   call("interface", "getAppName")])
    assert doc["results"][0]["statusName"] == "UNAUTHORIZED"
    assert doc["results"][2]["ok"] is True and doc["results"][3]["value"] == "renamed"


def test_acl_refuses_anonymous_writes_admin_may(start_board, iotize):
    b = start_board()
    with Tap.connect(f"tcp://127.0.0.1:{b.tcp_port}") as tap:
        tap.auth.login("admin", "admin")
        tap.bundle.put_acl(2, 0, read=True, write=False)  # controls: anonymous read only
        tap.auth.logout()
    doc = run(iotize, b.tcp_port, [
        {"op": "data.register", "bundles": DATA},
        {"op": "data.write", "variable": "setpoint", "value": 1},
        call("variable", "getCurrentAccess", 5),
        login(),
        {"op": "data.write", "variable": "setpoint", "value": 2},
        {"op": "data.read", "variable": "setpoint"},
    ])
    err = error_of(doc, 1)
    assert err["statusName"] == "UNAUTHORIZED"
    assert doc["results"][2]["ok"] is True
    assert doc["results"][4]["ok"] is True and doc["results"][5]["value"] == 2


def test_too_many_failed_logins(start_board, iotize):
    b = start_board()
    doc = run(iotize, b.tcp_port, [login(password=f"guess{i}") for i in range(3)] + [login()])
    codes = [error_of(doc, i)["code"] for i in range(4)]
    assert codes == ["TapAuthErrorInvalidCredentials"] * 3 + ["TapAuthErrorTooManyLoginAttempt"]
    # a new connection from the same host is still refused
    doc = run(iotize, b.tcp_port, [login()])
    assert error_of(doc, 0)["statusName"] == "SERVICE_UNAVAILABLE"
