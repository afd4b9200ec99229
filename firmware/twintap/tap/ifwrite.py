# Interface service (/1024), its rare part: the configuration writes (PUT) and multi-request
# /1024//89, which runs its frames through the dispatcher in order and stops at the first
# status that misses its expectation. tap/interface.py imports this module for one request
# and forgets it after.
import struct

from ..proto import DecodeError, frame, tapcodes, values
from .dispatcher import TapError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_IF = const(1024)


def serve(iface, s, res, p):
    # PUT /1024//res (a writable resource), or GET /1024//89
    if res == 89:
        return _multi_request(iface.d, s, p)
    d = iface.cfg.d
    if res == 3:  # the host protocol: accepted if available, not stored
        if len(p) < 2 or not struct.unpack_from(">H", p)[0] & iface.protocols:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        return None
    if res == 17:
        key, value = "authorized_protocols", _u16(p) & iface.protocols
    elif res == 8:
        key, value = "config_format", _u16(p)
    elif res == 9:
        key, value = "app_name", _ascii(p)
    elif res == 10:
        try:
            value = values.decode_version(p)
        except DecodeError:
            raise TapError(tapcodes.NOT_ACCEPTABLE, "version is a.b.c as u8 u8 u16")
        key = "config_version"
    elif res == 36:
        key, value = "app_data", bytes(p).hex()
    elif res == 34:
        if not p:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        key, value = "inactivity", p[0] if len(p) == 1 else struct.unpack_from(">H", p)[0]
    else:  # 11, 19, 84: app path, universal link, product code: stored ascii
        d = d["strings"]
        key, value = str(res), _ascii(p)
    d[key] = value
    iface.cfg.save()


def _ascii(payload):
    s = bytes(payload)
    i = s.find(b"\x00")
    return (s[:i] if i >= 0 else s).decode()


def _u16(payload):
    if len(payload) < 2:
        raise TapError(tapcodes.NOT_ACCEPTABLE)
    return struct.unpack_from(">H", payload)[0]


def _multi_request(dispatcher, s, body):
    # body: repeat {len u16 (= 7 + payload), TapRequestFrame, expected u8}
    out = []
    n = len(body)
    pos = 0
    while pos < n:
        if pos + 2 > n:
            raise DecodeError("multi-request item truncated")
        ln = struct.unpack_from(">H", body, pos)[0]
        pos += 2
        if ln < frame.HEADER_SIZE or pos + ln + 1 > n:
            raise DecodeError("multi-request item length %d does not fit" % ln)
        method, obj, inst, res, payload = frame.decode_frame(body[pos : pos + ln])
        expected = body[pos + ln]
        pos += ln + 1
        if obj == _IF and res == 89:
            raise TapError(tapcodes.BAD_REQUEST, "nested multi-request")
        resp = dispatcher.call(s, method, obj, inst, res, payload)
        status = resp[0]
        out.append(struct.pack(">HB", len(resp) - 2, status) + resp[1:-2])
        ok = expected == 0xFF or status == expected or (expected == 0x7F and status < 0x80)
        if not ok:
            break
    return b"".join(out)
