# Improv Wi-Fi serial framing (firmware/twintap/proto/improv.py) on both interpreters, against
# the golden packets of tests/vectors/improv.json; and the configuration checks that decide
# safe mode on the board and validate `twintap provision` on the host (proto/settings.py).
try:
    from _runner import load_vectors, run, setup_path
except ImportError:  # imported by pytest as tests.unit.test_improv
    from ._runner import load_vectors, run, setup_path

setup_path()

from twintap.proto import DecodeError, improv, settings  # noqa: E402

V = load_vectors("improv")


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return e
    raise AssertionError("no %s for %r" % (exc.__name__, args))


def test_golden_packets_encode_and_decode():
    for v in V["frames"]:
        raw = bytes.fromhex(v["hex"])
        assert improv.encode(v["type"], bytes.fromhex(v["data"])) == raw, v["name"]
        assert improv.decode(raw) == (v["type"], bytes.fromhex(v["data"])), v["name"]


def test_rpc_helpers_match_the_vectors():
    by = {v["name"]: bytes.fromhex(v["hex"]) for v in V["frames"]}
    assert improv.encode_rpc(improv.GET_STATE) == by["rpc get state"]
    assert improv.encode_rpc(improv.GET_INFO) == by["rpc device info"]
    wifi = improv.encode_wifi("MyWirelessAP", "mysecurepassword")
    assert improv.encode_rpc(improv.WIFI_SETTINGS, wifi) == by[
        "rpc wifi settings (the spec's example)"]
    assert improv.encode_state(improv.PROVISIONED) == by["state provisioned"]
    assert improv.encode_error(improv.UNABLE_TO_CONNECT) == by["error unable to connect"]
    url = improv.encode_result(improv.WIFI_SETTINGS, ["tcp://10.0.0.7:2000"])
    assert url == by["result wifi settings url"]
    assert improv.encode_result(improv.SCAN, []) == by["result scan end"]


def test_rpc_and_strings_round_trip():
    t, data = improv.decode(improv.encode_rpc(improv.WIFI_SETTINGS,
                                              improv.encode_wifi("lab", "pässwörd")))
    cmd, payload = improv.decode_rpc(data)
    assert (t, cmd) == (improv.RPC, improv.WIFI_SETTINGS)
    assert improv.decode_wifi(payload) == ("lab", "pässwörd")
    t, data = improv.decode(improv.encode_result(improv.SCAN, ["net", "-60", "YES"]))
    assert improv.decode_result(data) == (improv.SCAN, ["net", "-60", "YES"])


def test_bad_packets_raise_decode_error():
    good = bytearray(improv.encode_rpc(improv.GET_STATE))
    bad_sum = bytearray(good)
    bad_sum[-2] ^= 1
    bad_version = bytearray(good)
    bad_version[6] = 2
    short = good[:8]
    for bad in (bad_sum, bad_version, short, b"IMPROX\x01\x03\x00\x00"):
        raises(DecodeError, improv.decode, bytes(bad))
    raises(DecodeError, improv.decode_rpc, b"\x01\x05\x00")
    raises(DecodeError, improv.decode_wifi, b"\x00\x00")
    raises(DecodeError, improv.decode_strings, b"\x05ab")
    raises(ValueError, improv.encode, 3, bytes(256))


def test_parser_finds_packets_among_other_bytes_and_in_pieces():
    p = improv.Parser()
    a = improv.encode_rpc(improv.GET_INFO)
    b = improv.encode_rpc(improv.SCAN)
    stream = b"[I][app] log line\r\nIMPRO" + b"xIMPROV?" + a + b"garbage" + b
    got = []
    for i in range(0, len(stream), 3):  # three bytes at a time
        got += p.feed(stream[i:i + 3])
    assert got == [(improv.RPC, b"\x03\x00"), (improv.RPC, b"\x04\x00")]
    assert not p.busy()
    bad = bytearray(a)
    bad[-2] ^= 0xFF
    assert p.feed(bytes(bad)) == [] and p.errors == 1
    p.feed(a[:7])
    assert p.busy()
    p.reset()
    assert p.feed(b) == [(improv.RPC, b"\x04\x00")]


def test_settings_accept_a_complete_configuration():
    cfg = {
        "wifi": {"ssid": "lab", "password": "long-enough"},
        "rpz": {"broker": "mqtts://broker.example:8883", "app_id": "cd3c3674-8d92-4c2e-a6b0",
                "client_id": "board-1", "token": "t0k", "ca": "ca.der", "keepalive": 30},
        "tap": {"users": {"admin": {"stored": "00" * 16, "server": "11" * 16,
                                    "salt": "01020304", "it": 5000}}},
    }
    assert settings.problems(cfg, lambda n: n == "ca.der") == []
    assert settings.problems({}) == []


def test_settings_name_each_bad_field():
    cfg = {
        "wifi": {"ssid": "", "password": "short"},
        "rpz": {"broker": "http://x", "app_id": "bad id", "client_id": "a/b", "token": "",
                "keepalive": -1},
        "tap": {"users": {"admin": {"stored": "zz", "server": "11" * 16, "salt": "00000000",
                                    "it": 0}}},
        "properties": {},
    }
    found = settings.problems(cfg)
    fields = [(s, f) for s, f, m in found]
    for want in (("wifi", "ssid"), ("wifi", "password"), ("rpz", "broker"), ("rpz", "app_id"),
                 ("rpz", "client_id"), ("rpz", "token"), ("rpz", "keepalive"),
                 ("tap", "users"), ("properties", "properties")):
        assert want in fields, want
    assert settings.problems([1, 2]) == [("config", "config", "config.json is not a JSON object")]
    missing_ca = settings.problems({"rpz": {"app_id": "a", "token": "t", "ca": "ca-1.der"}},
                                   lambda n: False)
    assert missing_ca == [("rpz", "ca", "CA certificate file ca-1.der is missing")]
    # safe mode keeps what is valid
    assert settings.sanitize(cfg, found) == {}
    part = {"wifi": {"ssid": "lab"}, "rpz": {"app_id": ""}}
    assert settings.sanitize(part, settings.problems(part)) == {"wifi": {"ssid": "lab"}}


def test_broker_urls():
    assert settings.parse_broker("mqtts://h") == ("h", 8883, True)
    assert settings.parse_broker("mqtt://10.0.0.2:1884/") == ("10.0.0.2", 1884, False)
    assert settings.parse_broker("mqtts://[::1]:8884") == ("::1", 8884, True)
    for bad in ("http://h", "mqtts://", "mqtts://h:0", "mqtts://h:x", "mqtts://h/path",
                "mqtts://u@h", 5):
        raises(ValueError, settings.parse_broker, bad)


def test_mask_hides_every_secret():
    cfg = {"wifi": {"ssid": "lab", "password": "pw"}, "rpz": {"token": "t", "app_id": "a"},
           "tap": {"users": {"admin": {"stored": "s", "server": "v", "salt": "x", "it": 5}}},
           "list": [{"psk": "k"}], "empty": {"password": ""}}
    m = settings.mask(cfg)
    assert m["wifi"] == {"ssid": "lab", "password": "****"}
    assert m["rpz"] == {"token": "****", "app_id": "a"}
    assert m["tap"]["users"]["admin"] == {"stored": "****", "server": "****", "salt": "****",
                                          "it": 5}
    assert m["list"] == [{"psk": "****"}] and m["empty"] == {"password": ""}
    assert cfg["rpz"]["token"] == "t"  # a copy


if __name__ == "__main__":
    run(globals())
