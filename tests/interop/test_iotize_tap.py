"""The official IoTize JS client (npm `@iotize/tap` 2.7.0) against virtual boards.

Each test starts a `twintap vboard run` process, then runs `driver.js` (node), which drives the
board through the library's own API (Tap.fromProtocol over a TCP ComProtocol, tap.service.*,
tap.data, executeMultipleCalls) and prints what the library decoded. The assertions are on
those decoded values and on the library's result-code names (spec tap-protocol.md 6-8).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from tests.interop.conftest import REPO, board_file, data_config
from twintap.vboard import free_port

BOARD = board_file("unix")
DATA = data_config(BOARD)
BUNDLED = {name for b in DATA.values() for name in b["variables"]}
PROPS = {p["name"]: p for p in BOARD["properties"] if p["name"] in BUNDLED}
FIRMWARE_VERSION = re.search(
    r'^VERSION = "([^"]+)"', (REPO / "firmware" / "twintap" / "__init__.py").read_text(), re.M
).group(1)
CONFIG_IN_PROGRESS = "255.255.65535"  # spec: the configurator's "configuration in progress"
UNKNOWN_VARIABLE = 200


def expected_serial(flash: Path) -> str:
    return "TT" + (flash / ".efuse").read_bytes().hex().upper()


def call(service: str, method: str, *args) -> dict:
    return {"op": "call", "service": service, "method": method, "args": list(args)}


def values(doc: dict) -> list:
    """The decoded value of every operation, failing on the first one the library rejected."""
    out = []
    for op, result in zip(doc["ops"], doc["results"], strict=True):
        assert result["ok"] is True, f"{op}: {result}"
        out.append(result.get("value"))
    return out


def run(iotize, port: int, ops: list) -> dict:
    doc = iotize(port, ops)
    doc["ops"] = ops
    return doc


def assert_in_range(value, prop: dict) -> None:
    lo, hi = prop["source"]["min"], prop["source"]["max"]
    assert isinstance(value, float | int) and math.isfinite(value), value
    assert lo - 0.01 <= value <= hi + 0.01, (prop["name"], value)


DEVICE_OPS = [
    call("device", "getSerialNumber"),
    call("device", "getManufacturer"),
    call("device", "getFirmwareVersion"),
    call("device", "getFirmwareFlavor"),
]
READ_OPS = [{"op": "data.register", "bundles": DATA}] + [
    {"op": "data.read", "variable": name} for name in PROPS
]


def check_device(b, results: list) -> None:
    serial, manufacturer, firmware_version, model = results
    assert serial == expected_serial(b.flash)
    assert isinstance(manufacturer, str) and manufacturer.strip() and manufacturer.isprintable()
    assert isinstance(firmware_version, str) and FIRMWARE_VERSION in firmware_version
    assert model == BOARD["name"] == "unix"


def check_initial_values(results: list) -> None:
    registered, *read = results
    assert registered == ["sensors", "controls"]
    v = dict(zip(PROPS, read, strict=True))
    assert_in_range(v["temperature"], PROPS["temperature"])
    assert_in_range(v["humidity"], PROPS["humidity"])
    assert isinstance(v["counter"], int) and 0 <= v["counter"] < 2**32
    assert v["led"] is False
    assert v["setpoint"] == 21
    assert v["label"] == "bench"


def test_harness_serial_number(start_board, iotize):
    """End to end with what every board serves: GET /3//2 through tap.service.device."""
    b = start_board()
    doc = run(iotize, b.tcp_port, [call("device", "getSerialNumber")])
    (result,) = doc["results"]
    assert result["ok"] is True and result["statusName"] == "CONTENT", result
    assert result["value"] == expected_serial(b.flash)
    assert doc["stats"]["writes"] == doc["stats"]["responses"] == 1
    assert doc["stats"]["discarded"] == 0


def test_device_service(start_board, iotize):
    b = start_board()
    check_device(b, values(run(iotize, b.tcp_port, DEVICE_OPS)))


def test_interface_service(start_board, iotize):
    b = start_board()
    app_name, config_version, profile, group, frame = values(run(iotize, b.tcp_port, [
        call("interface", "getAppName"),
        call("interface", "getConfigVersion"),
        call("interface", "getCurrentProfileId"),
        call("interface", "getCurrentGroupId"),
        call("interface", "getCurrentHostProtocolMaxFrameSize"),
    ]))
    assert isinstance(app_name, str) and app_name.strip() and app_name.isprintable()
    assert re.fullmatch(r"\d+\.\d+\.\d+", config_version) and config_version != CONFIG_IN_PROGRESS
    assert profile == 0  # anonymous: nobody logged in
    assert group == 0
    assert set(frame) == {"request", "response"}
    # a frame must at least carry a header and a bundle's values; Lc is one byte
    assert 32 <= frame["request"] <= 0xFFFF and 32 <= frame["response"] <= 0xFFFF, frame


def test_data_layer_reads(start_board, iotize):
    b = start_board()
    check_initial_values(values(run(iotize, b.tcp_port, READ_OPS)))


def test_data_layer_write_then_read_back(start_board, iotize):
    b = start_board()
    writes = {"setpoint": -5, "label": "hello", "led": True}
    ops = [{"op": "data.register", "bundles": DATA}]
    ops += [{"op": "data.write", "variable": k, "value": v} for k, v in writes.items()]
    ops += [{"op": "data.read", "variable": k} for k in writes]
    results = values(run(iotize, b.tcp_port, ops))
    assert results[-3:] == list(writes.values())
    # a new connection (a new Tap object) sees the written values too
    ops = [{"op": "data.register", "bundles": DATA}]
    ops += [{"op": "data.read", "variable": k} for k in writes]
    assert values(run(iotize, b.tcp_port, ops))[1:] == list(writes.values())


def test_bundle_values_decoded_by_the_library(start_board, iotize):
    b = start_board()
    _, sensors, controls, _, controls_after = values(run(iotize, b.tcp_port, [
        {"op": "data.register", "bundles": DATA},
        {"op": "bundle.read", "bundle": "sensors"},
        {"op": "bundle.read", "bundle": "controls"},
        {"op": "data.write", "variable": "setpoint", "value": -5},
        {"op": "bundle.read", "bundle": "controls"},
    ]))
    assert set(sensors) == {"temperature", "humidity", "counter"}
    assert_in_range(sensors["temperature"], PROPS["temperature"])
    assert_in_range(sensors["humidity"], PROPS["humidity"])
    assert isinstance(sensors["counter"], int) and sensors["counter"] >= 0
    assert controls == {"led": False, "setpoint": 21, "label": "bench"}
    assert controls_after == {"led": False, "setpoint": -5, "label": "bench"}


def test_multi_request_of_two_gets(start_board, iotize):
    b = start_board()
    (responses,) = values(run(iotize, b.tcp_port, [{"op": "multi", "calls": [
        {"service": "device", "method": "getSerialNumber"},
        {"service": "device", "method": "getFirmwareFlavor"},
    ]}]))
    assert [r["ok"] for r in responses] == [True, True], responses
    assert [r["value"] for r in responses] == [expected_serial(b.flash), "unix"]


def test_unknown_variable_is_not_found(start_board, iotize):
    b = start_board()
    doc = run(iotize, b.tcp_port, [
        {"op": "variable.read", "id": UNKNOWN_VARIABLE, "dataType": "UINT8"},
        call("variable", "getValue", UNKNOWN_VARIABLE),
        call("device", "getSerialNumber"),  # the link is still fine afterwards
    ])
    data_layer, service, serial = doc["results"]
    assert data_layer["ok"] is False
    assert data_layer["error"]["code"] == "TapDataErrorVariableNotConfigured"
    assert data_layer["error"]["statusName"] == "NOT_FOUND"
    assert service["ok"] is False and service["statusName"] == "NOT_FOUND"
    assert service["error"]["code"] == "TapErrorTapResponseStatusError"
    assert serial["value"] == expected_serial(b.flash)


def test_over_uart_through_twintap_relay(start_board, start_relay, iotize, tmp_path):
    """The same library, through `twintap relay` (TCP <-> the board's UART pty)."""
    b = start_board("--uart", str(tmp_path / "uart"))
    port = free_port()
    relay = start_relay(port, b.ready["uart"])
    assert int(relay.ready["port"]) == port
    results = values(run(iotize, port, DEVICE_OPS + READ_OPS))
    check_device(b, results[: len(DEVICE_OPS)])
    check_initial_values(results[len(DEVICE_OPS):])
