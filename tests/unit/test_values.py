# Variable types, value converters and LwM2M TLV: same file under pytest and micropython.
try:
    from _runner import load_vectors, run, setup_path
except ImportError:
    from ._runner import load_vectors, run, setup_path

setup_path()

from twintap.proto import DecodeError, tlv, values  # noqa: E402

V = load_vectors()


def unhex(s):
    return bytes.fromhex(s) if s else b""


def close(a, b):
    if isinstance(a, float):
        return abs(a - b) < 1e-6 * max(1.0, abs(b))
    return a == b


def test_encode_decode_vectors():
    for v in V["values"]:
        t = values.type_code(v["type"])
        count = v.get("count", 1)
        assert values.encode(t, v["value"], count) == unhex(v["hex"]), v
        got = values.decode(t, unhex(v["hex"]), count)
        if isinstance(got, list):
            assert got == v["value"], v
        else:
            assert close(got, v["value"]), (v, got)


def test_decode_only_vectors():
    for v in V["values_decode_only"]:
        t = values.type_code(v["type"])
        assert values.decode(t, unhex(v["hex"]), v.get("count", 1)) == v["value"], v


def test_bad_values_rejected():
    for v in V["values_bad"]:
        t = values.type_code(v["type"])
        try:
            values.encode(t, v["value"], v.get("count", 1))
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (v,))


def test_bad_wire_values_rejected():
    for v in V["values_bad_wire"]:
        t = values.type_code(v["type"])
        try:
            values.decode(t, unhex(v["hex"]), v.get("count", 1))
        except DecodeError as e:
            assert e.code == 0x86
            continue
        raise AssertionError("decoded %r" % (v,))


def test_type_bytes():
    for v in V["type_bytes"]:
        t = values.type_code(v["type"])
        assert values.type_byte(v["domain"], t) == v["byte"]
        assert values.split_type_byte(v["byte"]) == (v["domain"], t)
    try:
        values.split_type_byte(0x3F)
    except DecodeError:
        return
    raise AssertionError("unknown type accepted")


def test_parse_cli_text():
    assert values.parse(values.BOOLEAN, "on") is True
    assert values.parse(values.UINT16, "0x10") == 16
    assert values.parse(values.FLOAT32, "2.5") == 2.5
    assert values.parse(values.INT8, "1,2", 2) == [1, 2]


def test_versions():
    for v in V["versions"]:
        assert values.encode_version(v["text"]) == unhex(v["hex"])
        assert values.decode_version(unhex(v["hex"])) == v["text"]


def test_tlv_bundles():
    for v in V["tlv_bundles"]:
        items = [(i, unhex(h)) for i, h in v["items"]]
        assert tlv.encode_bundle(v["bundle"], items) == unhex(v["hex"]), v
        assert tlv.decode_bundle(unhex(v["hex"])) == (v["bundle"], items), v


def test_tlv_long_values():
    for n in (7, 8, 255, 256, 70000):
        node = tlv.encode(tlv.RESOURCE_VALUE, 5, bytes(n))
        assert tlv.decode(node) == [(tlv.RESOURCE_VALUE, 5, bytes(n))]


def test_tlv_bad():
    for h in V["tlv_bad"]:
        try:
            tlv.decode_bundle(unhex(h))
        except DecodeError:
            continue
        raise AssertionError("decoded %s" % h)


if __name__ == "__main__":
    run(globals())
