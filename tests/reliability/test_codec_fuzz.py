"""Property-based fuzzing of the shared codecs (CPython, hypothesis): decoders only ever raise
DecodeError on bad input, and what the encoders write decodes back to what went in."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from twintap.proto import DecodeError, crc, frame, tlv, values

FAST = settings(max_examples=400, deadline=None)
u16 = st.integers(0, 0xFFFF)


@FAST
@given(st.binary(max_size=300))
def test_decode_request_raises_only_decode_error(data):
    try:
        method, obj, inst, res, payload = frame.decode_request(data)
    except DecodeError as e:
        assert e.code in (0x80, 0x85)
        return
    assert frame.encode_request(method, obj, inst, res, bytes(payload)) == data


@FAST
@given(st.sampled_from([1, 2, 3]), u16, u16, u16, st.binary(max_size=248))
def test_request_round_trip(method, obj, inst, res, payload):
    apdu = frame.encode_request(method, obj, inst, res, payload)
    assert frame.apdu_length(apdu[:5]) == len(apdu)
    got = frame.decode_request(apdu)
    assert got[:4] == (method, obj, inst, res) and bytes(got[4]) == payload


@FAST
@given(st.binary(max_size=300))
def test_decode_response_and_tlv_raise_only_decode_error(data):
    for fn in (frame.decode_response, tlv.decode, tlv.decode_bundle):
        try:
            fn(data)
        except DecodeError:
            pass


@FAST
@given(u16, st.lists(st.tuples(u16, st.binary(max_size=300)), max_size=6))
def test_tlv_bundle_round_trip(bid, items):
    assert tlv.decode_bundle(tlv.encode_bundle(bid, items)) == (bid, items)


TYPES = {
    values.INT8: st.integers(-128, 127),
    values.INT16: st.integers(-(2**15), 2**15 - 1),
    values.INT32: st.integers(-(2**31), 2**31 - 1),
    values.UINT8: st.integers(0, 255),
    values.UINT16: st.integers(0, 2**16 - 1),
    values.UINT32: st.integers(0, 2**32 - 1),
    values.BOOLEAN: st.booleans(),
}


@FAST
@given(st.data())
def test_values_round_trip_and_reject_bad_wire_data(data):
    t = data.draw(st.sampled_from(sorted(TYPES)))
    count = data.draw(st.integers(1, 4))
    v = [data.draw(TYPES[t]) for _ in range(count)]
    v = v[0] if count == 1 else v
    raw = values.encode(t, v, count)
    assert values.decode(t, raw, count) == v
    junk = data.draw(st.binary(max_size=20))
    try:
        values.decode(t, junk, count)
    except DecodeError as e:
        assert e.code == 0x86


@FAST
@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_round_trip(f):
    assert values.decode(values.FLOAT32, values.encode(values.FLOAT32, f)) == f


@FAST
@given(st.binary(max_size=64), st.binary(max_size=64))
def test_crc_continues_over_chunks(a, b):
    assert crc.crc32_mpeg2(b, crc.crc32_mpeg2(a)) == crc.crc32_mpeg2(a + b)
    assert crc.crc32_mpeg2(a) == struct.unpack(">I", struct.pack(">I", crc.crc32_mpeg2(a)))[0]
