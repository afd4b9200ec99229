# Interface service, object 1024 (spec tap-protocol.md section 6, "interface"), without the
# login, security options and encryption resources (tap/auth.py). Multi-request /1024//89
# runs its frames through the dispatcher in order and stops at the first status that misses
# its expectation.
import struct

from ..proto import DecodeError, frame, tapcodes, values
from ..ticks import ticks_diff, ticks_ms
from .config import IN_PROGRESS
from .dispatcher import TapError

_IF = 1024
WIFI = 0x20
BLE = 0x40
UART = 0x100
_LINK_PROTOCOLS = {"tcp": WIFI, "uart": UART, "ble": BLE}
MAX_REQUEST = 255  # Lc is one byte
MAX_RESPONSE = 255
_STRINGS = (11, 19, 84)  # app path, universal link, product code: stored ascii


def link_protocol(session):
    return _LINK_PROTOCOLS.get(session.link.split("#")[0], UART)


def _u16(v):
    return struct.pack(">H", v)


def _ascii(payload):
    s = bytes(payload)
    i = s.find(b"\x00")
    return (s[:i] if i >= 0 else s).decode()


def mount(d, cfg, available_protocols, boot_ms):
    c = cfg.d

    # profile and group of the session: they follow login, logout and expiry (tap/auth.py)
    d.add(_IF, 2, get=lambda s, i, p: _u16(s.profile))
    d.add(_IF, 7, get=lambda s, i, p: _u16(s.group))
    d.add(_IF, 4, get=lambda s, i, p: struct.pack(">I", ticks_diff(ticks_ms(), boot_ms)))

    def get_host_protocol(s, i, p):
        return _u16(link_protocol(s))

    def put_host_protocol(s, i, p):
        if len(p) < 2 or not struct.unpack_from(">H", p)[0] & available_protocols:
            raise TapError(tapcodes.NOT_ACCEPTABLE)

    d.add(_IF, 3, get=get_host_protocol, put=put_host_protocol)
    d.add(_IF, 21, get=lambda s, i, p: _u16(available_protocols))

    def get_authorized(s, i, p):
        return _u16(c.get("authorized_protocols", available_protocols))

    def put_authorized(s, i, p):
        if len(p) < 2:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        c["authorized_protocols"] = struct.unpack_from(">H", p)[0] & available_protocols
        cfg.save()

    d.add(_IF, 17, get=get_authorized, put=put_authorized)

    def get_format(s, i, p):
        return _u16(c["config_format"])

    def put_format(s, i, p):
        if len(p) < 2:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        c["config_format"] = struct.unpack_from(">H", p)[0]
        cfg.save()

    d.add(_IF, 8, get=get_format, put=put_format)
    d.add(_IF, 18, get=lambda s, i, p: _u16(c["config_format"]))

    def put_app_name(s, i, p):
        c["app_name"] = _ascii(p)
        cfg.save()

    d.add(_IF, 9, get=lambda s, i, p: c["app_name"].encode(), put=put_app_name)

    def put_config_version(s, i, p):
        try:
            c["config_version"] = values.decode_version(p)
        except DecodeError:
            raise TapError(tapcodes.NOT_ACCEPTABLE, "version is a.b.c as u8 u8 u16")
        cfg.save()

    def reload_config(s, i, p):
        if c["config_version"] == IN_PROGRESS:
            raise TapError(tapcodes.RESOURCE_LOCKED, "configuration in progress")

    d.add(
        _IF, 10, get=lambda s, i, p: values.encode_version(c["config_version"]),
        put=put_config_version, post=reload_config,
    )

    def string_resource(res):
        def get(s, i, p):
            return c["strings"].get(str(res), "").encode()

        def put(s, i, p):
            c["strings"][str(res)] = _ascii(p)
            cfg.save()

        d.add(_IF, res, get=get, put=put)

    for res in _STRINGS:
        string_resource(res)

    def get_app_data(s, i, p):
        return bytes.fromhex(c["app_data"])

    def put_app_data(s, i, p):
        c["app_data"] = bytes(p).hex()
        cfg.save()

    d.add(_IF, 36, get=get_app_data, put=put_app_data)

    def get_inactivity(s, i, p):
        return _u16(c.get("inactivity", 0))

    def put_inactivity(s, i, p):
        if not p:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        c["inactivity"] = p[0] if len(p) == 1 else struct.unpack_from(">H", p)[0]
        cfg.save()

    d.add(_IF, 34, get=get_inactivity, put=put_inactivity)
    d.add(_IF, 88, get=lambda s, i, p: struct.pack(">HH", MAX_REQUEST, MAX_RESPONSE))

    def multi_request(s, i, body):
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
            resp = d.call(s, method, obj, inst, res, payload)
            status = resp[0]
            out.append(struct.pack(">HB", len(resp) - 2, status) + resp[1:-2])
            ok = expected == 0xFF or status == expected or (expected == 0x7F and status < 0x80)
            if not ok:
                break
        return b"".join(out)

    d.add(_IF, 89, get=multi_request)
