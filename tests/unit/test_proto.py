# Codec tests: the same file runs under pytest (CPython) and `micropython` (see _runner.py).
# Golden vectors come from tests/vectors/tap.json, shared with every other test.
try:
    from _runner import load_vectors, run, setup_path
except ImportError:  # imported by pytest as tests.unit.test_proto
    from ._runner import load_vectors, run, setup_path

setup_path()

from twintap.proto import DecodeError, crc, frame, rpzcodes, tapcodes  # noqa: E402

V = load_vectors()


def unhex(s):
    return bytes.fromhex(s) if s else b""


def raises_decode(fn, *args):
    try:
        fn(*args)
    except DecodeError as e:
        return e
    raise AssertionError("no DecodeError for %r" % (args,))


def test_crc32_mpeg2_vectors():
    for v in V["crc32_mpeg2"]:
        assert crc.crc32_mpeg2(unhex(v["hex"])) == int(v["crc"], 16), v


def test_crc32_mpeg2_incremental():
    data = b"123456789"
    assert crc.crc32_mpeg2(data[4:], crc.crc32_mpeg2(data[:4])) == 0x0376E6E7


def test_encode_request_vectors():
    for v in V["requests"]:
        obj, inst, res = frame.parse_path(v["path"])
        payload = unhex(v["payload"])
        assert frame.encode_frame(v["method"], obj, inst, res, payload) == unhex(v["frame"]), v
        assert frame.encode_request(v["method"], obj, inst, res, payload) == unhex(v["apdu"]), v


def test_decode_request_vectors():
    for v in V["requests"]:
        apdu = unhex(v["apdu"])
        method, obj, inst, res, payload = frame.decode_request(apdu)
        o, i, r = frame.parse_path(v["path"])
        assert (method, obj, inst, res) == (v["method"], o, i, r), v
        assert bytes(payload) == unhex(v["payload"]), v
        assert frame.apdu_length(apdu[:5]) == len(apdu)


def test_decode_bad_requests():
    for v in V["bad_requests"]:
        e = raises_decode(frame.decode_request, unhex(v["hex"]))
        assert e.code in (tapcodes.BAD_REQUEST, tapcodes.METHOD_NOT_ALLOWED), v


def test_encode_request_too_long():
    try:
        frame.encode_request(frame.PUT, 1029, 1, 4, bytes(249))
    except ValueError:
        return
    raise AssertionError("249-byte payload accepted")


def test_response_vectors():
    for v in V["responses"]:
        assert frame.encode_response(v["status"], unhex(v["data"])) == unhex(v["apdu"])
        assert frame.decode_response(unhex(v["apdu"])) == (v["status"], unhex(v["data"]))
        assert tapcodes.name(v["status"]) == v["name"]


def test_decode_bad_responses():
    for v in V["bad_responses"]:
        raises_decode(frame.decode_response, unhex(v["hex"]))


def test_paths():
    assert frame.parse_path("/3//2") == (3, 0xFFFF, 2)
    assert frame.parse_path("3/0/2") == (3, 0, 2)
    assert frame.format_path(3, 0xFFFF, 2) == "/3//2"
    assert frame.format_path(1029, 5, 4) == "/1029/5/4"
    for p in V["bad_paths"]:
        raises_decode(frame.parse_path, p)


def test_tap_codes():
    for v in V["tap_codes"]:
        assert tapcodes.name(v["code"]) == v["name"]
        assert tapcodes.is_success(v["code"]) == v["success"]
    assert tapcodes.name(0x7E) == "0x7E"


def test_rpz_codes():
    for v in V["rpz_codes"]:
        c = v["code"]
        assert rpzcodes.name(c) == v["name"], v
        assert rpzcodes.dotted(c) == v["dotted"], v
        assert rpzcodes.is_request(c) == v["request"], v
        assert rpzcodes.is_error(c) == v["error"], v


if __name__ == "__main__":
    run(globals())
