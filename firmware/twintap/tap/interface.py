# Interface service, object 1024 (spec tap-protocol.md section 6, "interface"), without the
# login, security options and encryption resources (tap/auth.py). Multi-request /1024//89
# runs its frames through the dispatcher in order and stops at the first status that misses
# its expectation.
import struct

from ..proto import DecodeError, frame, tapcodes, values
from ..ticks import ticks_diff, ticks_ms
from .config import IN_PROGRESS
from .dispatcher import NO_METHOD, NO_RESOURCE, TapError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_IF = const(1024)
_GET = const(1)
_POST = const(2)
_PUT = const(3)
WIFI = const(0x20)
BLE = const(0x40)
UART = const(0x100)
_MAX_REQUEST = const(255)  # Lc is one byte
_MAX_RESPONSE = const(255)


def link_protocol(session):
    kind = session.link.split("#")[0]
    if kind == "tcp":
        return WIFI
    if kind == "ble":
        return BLE
    return UART


def _u16(v):
    return struct.pack(">H", v)


def _ascii(payload):
    s = bytes(payload)
    i = s.find(b"\x00")
    return (s[:i] if i >= 0 else s).decode()


def _u16_in(payload):
    if len(payload) < 2:
        raise TapError(tapcodes.NOT_ACCEPTABLE)
    return struct.unpack_from(">H", payload)[0]


def mount(d, cfg, available_protocols, boot_ms):
    d.register(_IF, Interface(d, cfg, available_protocols, boot_ms))


class Interface:
    # The service of /1024 but for its security resources (tap/auth.py serves those).
    def __init__(self, d, cfg, protocols, boot_ms):
        self.d = d
        self.cfg = cfg
        self.protocols = protocols
        self.boot_ms = boot_ms

    def serve(self, s, m, inst, res, p):
        c = self.cfg.d
        if res in (2, 4, 7, 18, 21, 88):
            if m == _GET:
                return self.read(s, res)
        elif res == 3:
            if m == _GET:
                return _u16(link_protocol(s))
            if m == _PUT:
                return self.put_host_protocol(p)
        elif res == 17:
            if m == _GET:
                return _u16(c.get("authorized_protocols", self.protocols))
            if m == _PUT:
                return self.save("authorized_protocols", _u16_in(p) & self.protocols)
        elif res == 8:
            if m == _GET:
                return _u16(c["config_format"])
            if m == _PUT:
                return self.save("config_format", _u16_in(p))
        elif res == 9:
            if m == _GET:
                return c["app_name"].encode()
            if m == _PUT:
                return self.save("app_name", _ascii(p))
        elif res == 10:
            if m == _GET:
                return values.encode_version(c["config_version"])
            if m == _PUT:
                return self.put_config_version(p)
            if m == _POST:  # reload: refused while the configurator is writing
                if c["config_version"] == IN_PROGRESS:
                    raise TapError(tapcodes.RESOURCE_LOCKED, "configuration in progress")
                return None
        elif res in (11, 19, 84):  # app path, universal link, product code: stored ascii
            if m == _GET:
                return c["strings"].get(str(res), "").encode()
            if m == _PUT:
                return self.put_string(res, p)
        elif res == 36:
            if m == _GET:
                return bytes.fromhex(c["app_data"])
            if m == _PUT:
                return self.save("app_data", bytes(p).hex())
        elif res == 34:
            if m == _GET:
                return _u16(c.get("inactivity", 0))
            if m == _PUT:
                return self.put_inactivity(p)
        elif res == 89:
            if m == _GET:
                return self.multi_request(s, p)
        else:
            return NO_RESOURCE
        return NO_METHOD

    def read(self, s, res):
        # read-only resources; profile (2) and group (7) follow login, logout and expiry
        if res == 2:
            return _u16(s.profile)
        if res == 7:
            return _u16(s.group)
        if res == 4:
            return struct.pack(">I", ticks_diff(ticks_ms(), self.boot_ms))
        if res == 21:
            return _u16(self.protocols)
        if res == 18:
            return _u16(self.cfg.d["config_format"])
        return struct.pack(">HH", _MAX_REQUEST, _MAX_RESPONSE)  # 88

    def save(self, key, value):
        self.cfg.d[key] = value
        self.cfg.save()

    def put_string(self, res, p):
        self.cfg.d["strings"][str(res)] = _ascii(p)
        self.cfg.save()

    def put_host_protocol(self, p):
        if len(p) < 2 or not struct.unpack_from(">H", p)[0] & self.protocols:
            raise TapError(tapcodes.NOT_ACCEPTABLE)

    def put_config_version(self, p):
        try:
            version = values.decode_version(p)
        except DecodeError:
            raise TapError(tapcodes.NOT_ACCEPTABLE, "version is a.b.c as u8 u8 u16")
        self.save("config_version", version)

    def put_inactivity(self, p):
        if not p:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        self.save("inactivity", p[0] if len(p) == 1 else struct.unpack_from(">H", p)[0])

    def multi_request(self, s, body):
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
            resp = self.d.call(s, method, obj, inst, res, payload)
            status = resp[0]
            out.append(struct.pack(">HB", len(resp) - 2, status) + resp[1:-2])
            ok = expected == 0xFF or status == expected or (expected == 0x7F and status < 0x80)
            if not ok:
                break
        return b"".join(out)
