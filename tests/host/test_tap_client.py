"""The Tap client library against an in-process fake Tap: response parsing, split responses,
timeouts, services and converters, multi-request encoding, link URLs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.host.faketap import FakeTap
from twintap.proto import frame, tapcodes, tlv, values
from twintap.tap import (
    MULTI_ANYTHING,
    MULTI_SUCCESS,
    Response,
    Tap,
    TapError,
    TapTimeout,
    links,
    services,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "tap.json").read_text())


@pytest.fixture
def fake():
    f = FakeTap()
    yield f
    f.close()


@pytest.fixture
def tap(fake):
    with Tap.connect(fake.url, timeout=1.0) as t:
        yield t


def test_request_wire_bytes_and_response(fake, tap):
    r = tap.get("/3//2")
    assert isinstance(r, Response)
    assert r.ok and r.code == tapcodes.CONTENT and r.code_name == "CONTENT"
    assert r.data == b"TTFAKE000001" and r.body() == b"TTFAKE000001"
    assert fake.requests[-1] == ("GET", "/3//2", b"")
    tap.put("/1029/5/4", b"\x00\x17")
    tap.post("/1029/5/5", b"\x00\x18")
    tap.request("put", "/1024//9", b"x")
    assert fake.requests[-3:] == [("PUT", "/1029/5/4", b"\x00\x17"),
                                  ("POST", "/1029/5/5", b"\x00\x18"), ("PUT", "/1024//9", b"x")]


def test_request_apdus_match_the_golden_vectors(fake, tap):
    sent = []
    real = tap.link.transact
    tap.link.transact = lambda apdu, timeout: sent.append(apdu) or real(apdu, timeout)
    for v in VECTORS["requests"]:
        tap.request(v["method"], v["path"], bytes.fromhex(v["payload"]))
        assert sent[-1].hex() == v["apdu"], v


def test_error_status_body_raises_with_path_and_code(tap):
    r = tap.get("/1029/9/4")
    assert not r.ok and r.code == 0x84 and r.code_name == "NOT_FOUND"
    with pytest.raises(TapError) as e:
        r.body()
    assert str(e.value) == "GET /1029/9/4: NOT_FOUND (0x84)"
    assert e.value.code == 0x84 and e.value.code_name == "NOT_FOUND"


def test_busy_counts_as_success():
    assert Response(tapcodes.BUSY).ok and not Response(tapcodes.UNAUTHORIZED).ok


def test_bad_path_and_payload_are_tap_errors(tap):
    with pytest.raises(TapError, match="Tap path"):
        tap.get("/nope")
    with pytest.raises(TapError, match="payload"):
        tap.put("/1024//36", bytes(249))
    with pytest.raises(TapError, match="method"):
        tap.request("DELETE", "/3//2")


def test_split_response_is_reassembled(fake, tap):
    whole = frame.encode_response(tapcodes.CONTENT, b"hello world")
    fake.handler = lambda m, p, b: [whole[:4], whole[4:9], whole[9:]]
    assert tap.get("/3//0").data == b"hello world"


def test_data_ending_in_90_00_inside_a_chunk_keeps_reading(fake, tap):
    # the first chunk ends with 90 00 that belong to the data: the rest comes within the
    # idle window and must be part of the response
    data = b"\x01\x90\x00\x02\x03"
    whole = frame.encode_response(tapcodes.CONTENT, data)
    fake.chunk_delay = 0.003
    fake.handler = lambda m, p, b: [whole[:4], whole[4:]]
    assert tap.get("/3//0").data == data


def test_slow_chunks_within_timeout(fake, tap):
    whole = frame.encode_response(tapcodes.CONTENT, b"slow")
    fake.chunk_delay = 0.2
    fake.handler = lambda m, p, b: [whole[:2], whole[2:]]
    assert tap.get("/3//0").data == b"slow"


def test_timeout_is_a_tap_error_and_a_timeout_error(fake):
    fake.handler = lambda m, p, b: None
    with Tap.connect(fake.url, timeout=0.2) as tap:
        t0 = time.monotonic()
        with pytest.raises(TapTimeout) as e:
            tap.get("/3//2")
        assert 0.15 < time.monotonic() - t0 < 1.5
    assert isinstance(e.value, TimeoutError) and isinstance(e.value, TapError)
    assert "GET /3//2" in str(e.value) and "within 0.2 s" in str(e.value)


def test_partial_response_timeout_says_what_came(fake):
    fake.handler = lambda m, p, b: b"\x45\x41"
    with Tap.connect(fake.url, timeout=0.2) as tap, pytest.raises(TapTimeout, match="45 41"):
        tap.get("/3//2")


def test_late_answer_is_discarded_before_the_next_request(fake):
    answers = iter([None, (tapcodes.CONTENT, b"second")])
    fake.handler = lambda m, p, b: next(answers)
    with Tap.connect(fake.url, timeout=0.2) as tap:
        with pytest.raises(TapTimeout):
            tap.get("/3//2")
        assert tap.get("/3//0").data == b"second"


def test_response_without_90_00_is_reported(fake):
    fake.handler = lambda m, p, b: b"\x45\x90\x01"
    with Tap.connect(fake.url, timeout=0.2) as tap, pytest.raises(TapError):
        tap.get("/3//2")


def test_closed_link_is_a_tap_error(fake, tap):
    tap.get("/3//2")  # the fake has accepted the connection
    fake.close()
    with pytest.raises(TapError, match="closed|failed"):
        tap.get("/3//2")


def test_connect_errors():
    from twintap.vboard import free_port

    with pytest.raises(TapError, match="cannot connect"):
        Tap.connect(f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(TapError, match="tcp://HOST:PORT"):
        Tap.connect("tcp://127.0.0.1")
    with pytest.raises(TapError, match="cannot open"):
        Tap.connect("/nonexistent/ttyUSB9")


def test_pyserial_url_link(fake):
    # socket:// goes through pyserial's serial_for_url: the SerialLink code path
    with Tap.connect(f"socket://127.0.0.1:{fake.port}", timeout=1) as tap:
        assert isinstance(tap.link, links.SerialLink)
        assert tap.device.serial_number() == "TTFAKE000001"
        whole = frame.encode_response(tapcodes.CONTENT, b"\x90\x00\x90\x00")
        fake.chunk_delay = 0.003
        fake.handler = lambda m, p, b: [whole[:3], whole[3:]]
        assert tap.get("/3//0").data == b"\x90\x00\x90\x00"


def test_serial_url_parsing(monkeypatch):
    seen = {}

    class Fake(links.SerialLink):
        def __init__(self, port, baud=links.DEFAULT_BAUD, url=None, idle=0.02):
            seen.update(port=port, baud=baud, url=url)

    monkeypatch.setattr(links, "SerialLink", Fake)
    links.open_link("serial:///dev/ttyUSB0?baud=921600")
    assert seen == {"port": "/dev/ttyUSB0", "baud": 921600,
                    "url": "serial:///dev/ttyUSB0?baud=921600"}
    links.open_link("/tmp/uart")
    assert seen["port"] == "/tmp/uart" and seen["baud"] == 115200
    links.open_link("rfc2217://host:4000")
    assert seen["port"] == "rfc2217://host:4000"


# -- services ---------------------------------------------------------------------------------
def test_device_and_interface_services(tap):
    assert tap.device.manufacturer() == "fake"
    assert tap.device.model() == "fakeboard"
    assert tap.device.serial_number() == "TTFAKE000001"
    assert tap.device.firmware_version() == "fw 9.9"
    assert tap.device.memory_free() == 12345
    assert tap.interface.app_name() == "fake app"
    assert tap.interface.config_version() == "1.2.3"
    tap.interface.set_config_version("2.0.300")
    assert tap.interface.config_version() == "2.0.300"
    assert tap.interface.current_profile_id() == 0 and tap.interface.current_group_id() == 0
    assert tap.interface.max_frame_size() == (250, 252)
    assert tap.interface.security_options()["scram"] is True
    assert tap.interface.security_options()["hash_password"] is True
    assert tap.interface.available_host_protocols() == ["WIFI", "BLE", "UART"]
    with pytest.raises(TapError, match="GET /3//11: NOT_FOUND"):
        tap.device.last_error()


def test_variable_read_write_uses_type_and_count(fake, tap):
    v = tap.variable
    assert v.type(1) == (3, values.FLOAT32, "float32")
    assert v.count(6) == 16
    assert v.read(1) == 21.5
    assert v.read(5) == 21
    v.write(5, -3)
    assert fake.requests[-1] == ("POST", "/1029/5/5", b"\xff\xfd")
    assert v.read(5) == -3
    v.write(5, "0x10")  # command-line text, parsed per type
    assert v.read(5) == 16
    v.write(4, True)
    assert fake.vars[4]["value"] == b"\x01" and v.read(4) is True
    v.write(6, "hello")
    assert v.read(6) == "hello"
    assert v.read(7) == [1, 2, 3]
    v.write(7, "4,5,6")
    assert fake.vars[7]["value"] == b"\x04\x05\x06"
    with pytest.raises(TapError, match="out of range"):
        v.write(5, 40000)
    with pytest.raises(TapError, match="POST /1029/1/5: UNAUTHORIZED"):
        v.write(1, 1.0)
    # type and count are read once
    n = len(fake.requests)
    v.read(5)
    assert len(fake.requests) == n + 1


def test_variable_metadata(tap):
    v = tap.variable
    assert v.meta(1) == "temperature:C" and v.name(1) == "temperature"
    assert v.unit(1) == "C"  # no /9 on the fake: from the meta
    assert v.unit(7) == "x"
    assert v.bundle_id(5) == 2
    assert v.access(1) == "r" and v.access(5) == "rw"
    assert v.find("setpoint") == 5 and v.resolve("setpoint") == 5 and v.resolve("3") == 3
    with pytest.raises(TapError, match="no variable named"):
        v.find("nope")


def test_all_values_and_bundles(fake, tap):
    allv = tap.variable.all_values()
    assert sorted(allv) == [1, 3, 4, 5, 6, 7]
    assert allv[6] == b"bench"
    assert tap.bundle.values(1) == {1: fake.vars[1]["value"], 3: fake.vars[3]["value"]}
    assert tap.bundle.name(2) == "controls"
    tap.bundle.put_acl(1, 5, read=True, write=True)
    tap.bundle.put_acl(1, 0xFFFE, read=True, write=False)
    assert fake.requests[-2:] == [("PUT", "/1028/1/0", b"\x41\x05\x03"),
                                  ("PUT", "/1028/1/0", b"\x61\xff\xfe\x01")]


def test_tlv_values_accepts_several_bundles_and_bare_values():
    body = tlv.encode_bundle(1, [(1, b"\x01")]) + tlv.encode_bundle(2, [(4, b"\x02\x03")])
    assert services.tlv_values(body) == {1: b"\x01", 4: b"\x02\x03"}
    assert services.tlv_values(tlv.encode(tlv.RESOURCE_VALUE, 9, b"x")) == {9: b"x"}
    assert services.tlv_values(b"") == {}


def test_variables_listing(tap):
    rows = {v["name"]: v for v in tap.variables()}
    assert set(rows) == {"temperature", "counter", "led", "setpoint", "label", "triple"}
    t = rows["temperature"]
    assert (t["id"], t["type"], t["count"], t["unit"], t["bundle"], t["access"], t["value"]) == (
        1, "float32", 1, "C", 1, "r", 21.5)
    assert rows["label"]["type"] == "ascii" and rows["label"]["value"] == "bench"
    assert rows["counter"]["unit"] == ""


def test_multi_request_encoding_matches_the_spec():
    # spec: one GET /3//2 -> 0007 010003ffff0002 ff
    assert services.encode_multi_request([("GET", "/3//2", b"", MULTI_ANYTHING)]).hex() == (
        "0007010003ffff0002ff")
    body = services.encode_multi_request([("GET", "/3//2"), ("PUT", "/1029/5/4", b"\x00\x01",
                                                              MULTI_SUCCESS)])
    assert body.hex() == "0007010003ffff0002ff" + "0009030405000500040001" + "7f"


def test_multi_request_decoding():
    body = bytes.fromhex("0003450102" + "000184" + "0001" + "44")
    calls = [("GET", "/3//2"), ("GET", "/1029/9/4"), ("PUT", "/1024//9", b"x")]
    rs = services.decode_multi_response(body, calls)
    assert [(r.code, r.data, r.method, r.path) for r in rs] == [
        (0x45, b"\x01\x02", "GET", "/3//2"), (0x84, b"", "GET", "/1029/9/4"),
        (0x44, b"", "PUT", "/1024//9")]
    with pytest.raises(ValueError):
        services.decode_multi_response(bytes.fromhex("000545"), calls)


def test_multi_request_round_trip(fake, tap):
    rs = tap.interface.multi_request([("GET", "/3//2", b"", MULTI_ANYTHING),
                                      ("GET", "/1029/99/4", b"", MULTI_ANYTHING),
                                      ("POST", "/1029/5/5", b"\x00\x2a", MULTI_SUCCESS)])
    assert [r.code_name for r in rs] == ["CONTENT", "NOT_FOUND", "CHANGED"]
    assert rs[0].data == b"TTFAKE000001"
    assert fake.vars[5]["value"] == b"\x00\x2a"
    assert fake.requests[-1][1] == "/1024//89"
