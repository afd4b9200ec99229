# Variable (/1029) and bundle (/1028) services over the twin (spec tap-protocol.md 6-7).
# Reads answer the value image (count x size, big-endian); the official data layer writes
# with POST /1029/{id}/5, PUT /1029/{id}/4 works too. Bundle values and /1029//4 are TLV.
# Every value access is checked against the bundle ACLs of the session's group and profile
# (UNAUTHORIZED); declaration writes are configuration, checked by the guard (tap/auth.py).
import struct

from ..proto import DecodeError, tapcodes, tlv, values
from ..twin import E_LOCKED, E_NOT_FOUND, E_RIGHTS, R, TwinError, W
from .config import ADMIN, ANONYMOUS
from .dispatcher import NO_METHOD, NO_RESOURCE, TapError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_VAR = const(1029)
_BUNDLE = const(1028)
_NONE = const(0xFFFF)
_CREATE = const(0xFFFF)
_GET = const(1)
_POST = const(2)
_PUT = const(3)


def tap_code(e):
    # TwinError -> Tap result code
    k = e.kind
    if k == E_NOT_FOUND:
        return tapcodes.NOT_FOUND
    if k == E_RIGHTS:
        return tapcodes.UNAUTHORIZED
    if k == E_LOCKED:
        return tapcodes.RESOURCE_LOCKED
    return tapcodes.NOT_ACCEPTABLE


def _u16(payload):
    if len(payload) < 2:
        raise DecodeError("u16 expected", tapcodes.NOT_ACCEPTABLE)
    return struct.unpack_from(">H", payload)[0]


def _u32(payload):
    if len(payload) < 4:
        raise DecodeError("u32 expected", tapcodes.NOT_ACCEPTABLE)
    return struct.unpack_from(">I", payload)[0]


def _ascii(payload):
    s = bytes(payload)
    i = s.find(b"\x00")
    return (s[:i] if i >= 0 else s).decode()


def bundle_rights(twin, bid, group, profile=None):
    # rights bits (bit1 write, bit0 read) on bundle `bid`: the ACL entries of the group, of
    # its profile (alias) and of anonymous (everyone has anonymous rights as a minimum);
    # admin has them all. A variable outside any bundle is admin's only.
    if group == ADMIN or profile == ADMIN:
        return 3
    b = twin.bundles.get(bid)
    if b is None:
        return 0
    acl = b.acl
    r = acl.get(group, 0) | acl.get(ANONYMOUS, 0)
    if profile is not None:
        r |= acl.get(profile, 0)
    return r & 3


def access_rights(twin, prop, group, profile=None):
    # rights bits of `group` (and its profile) on a variable: bundle ACL and property
    r = bundle_rights(twin, prop.bundle, group, profile)
    if not prop.rwx & R:
        r &= ~1
    if not prop.rwx & W:
        r &= ~2
    return r


def encode_rights(group, rights):
    if group > 0xFF:
        return struct.pack(">BHB", 0x61, group, rights)
    return bytes((0x41, group, rights))


def mount(d, twin, cfg):
    d.register(_VAR, Variables(twin, cfg))
    d.register(_BUNDLE, Bundles(twin, cfg))


def _var(twin, inst):
    if inst == _NONE:
        raise TapError(tapcodes.BAD_REQUEST, "variable id missing")
    p = twin.props.get(inst)
    if p is None:
        raise TapError(tapcodes.NOT_FOUND)
    return p


def _bundle(twin, inst):
    b = twin.bundles.get(inst)
    if b is None:
        raise TapError(tapcodes.NOT_FOUND)
    return b


def bundle_values(twin, s, bid):
    # the variables of bundle `bid` that the session may read, as one TLV node
    _bundle(twin, bid)
    if not bundle_rights(twin, bid, s.group, s.profile) & 1:
        raise TapError(tapcodes.UNAUTHORIZED)
    items = []
    for vid in sorted(twin.props):
        p = twin.props[vid]
        if p.bundle == bid and access_rights(twin, p, s.group, s.profile) & 1:
            items.append((vid, p.raw()))
    return tlv.encode_bundle(bid, items)


def read_profile(twin, s):
    # GET /1029//4: every variable the caller may read, as one TLV node
    items = []
    for vid in sorted(twin.props):
        p = twin.props[vid]
        if access_rights(twin, p, s.group, s.profile) & 1:
            items.append((vid, p.raw()))
    return tlv.encode_bundle(0, items)


class Variables:
    # The service of /1029: values (4, 5) and declarations of the twin's variables.
    def __init__(self, twin, cfg):
        self.twin = twin
        self.cfg = cfg

    def serve(self, s, m, inst, res, p):
        if res == 4:
            if m == _GET:
                return self.get_value(s, inst)
            if m == _PUT:
                return self.set_value(s, inst, p)
        elif res == 5:
            if m == _POST:
                return self.set_value(s, inst, p)
        elif res == _CREATE:
            if m == _POST:
                return self.create(inst)
        elif res <= 9:  # the declaration: 0-3, 6-9
            if m == _GET:
                return self.describe(s, _var(self.twin, inst), res)
            if m == _PUT and res != 3 and res != 7:
                return self.declare(_var(self.twin, inst), res, p)
        else:
            return NO_RESOURCE
        return NO_METHOD

    # -- value ---------------------------------------------------------------------------------
    def get_value(self, s, inst):
        twin = self.twin
        if inst == _NONE:
            return read_profile(twin, s)
        p = _var(twin, inst)
        if not access_rights(twin, p, s.group, s.profile) & 1:
            raise TapError(tapcodes.UNAUTHORIZED)
        return p.raw()

    def set_value(self, s, inst, payload):
        twin = self.twin
        p = _var(twin, inst)
        if not access_rights(twin, p, s.group, s.profile) & 2:
            raise TapError(tapcodes.UNAUTHORIZED)
        try:
            twin.write_raw(p, payload, "tap")
        except TwinError as e:
            raise TapError(tap_code(e), str(e))

    # -- declaration ---------------------------------------------------------------------------
    def describe(self, s, p, res):
        if res == 0:
            return struct.pack(">I", p.address)
        if res == 1:
            return bytes((p.type_byte(),))
        if res == 2:
            return bytes((p.count,))
        if res == 3:
            return encode_rights(s.group, access_rights(self.twin, p, s.group, s.profile))
        if res == 6:
            return struct.pack(">H", p.bundle)
        if res == 7:
            return bundle_values(self.twin, s, p.bundle)
        if res == 8:
            return (p.name + ":" + p.unit).encode()
        return p.unit.encode()  # 9

    def declare(self, p, res, payload):
        cfg = self.cfg
        if res == 0:
            p.address = _u32(payload) if len(payload) >= 4 else 0
            cfg.update_variable(p, address=p.address)
        elif res == 1:
            self.put_type(p, payload)
        elif res == 2:
            self.put_count(p, payload)
        elif res == 6:
            p.bundle = _u16(payload)
            cfg.update_variable(p, bundle=p.bundle)
        elif res == 8:
            self.put_meta(p, payload)
        else:  # 9
            p.unit = _ascii(payload)
            cfg.update_variable(p, unit=p.unit)

    def made_over_tap(self, p):
        if self.cfg.variable_decl(p) is None:
            raise TapError(tapcodes.RESOURCE_LOCKED, "declared by the board file")

    def put_type(self, p, payload):
        self.made_over_tap(p)
        if len(payload) != 1:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        domain, t = values.split_type_byte(payload[0])
        p.type, p.domain = t, domain
        p.persist = domain == values.DOMAIN_STATIC
        p.value = p.default()
        self.cfg.update_variable(p, type=t, domain=domain)

    def put_count(self, p, payload):
        self.made_over_tap(p)
        if len(payload) != 1 or payload[0] == 0:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        p.count = payload[0]
        p.value = p.default()
        self.cfg.update_variable(p, count=p.count)

    def put_meta(self, p, payload):
        name, _, unit = _ascii(payload).partition(":")
        if not name:
            raise TapError(tapcodes.NOT_ACCEPTABLE, "empty name")
        try:
            self.twin.rename(p, name)
        except TwinError as e:
            raise TapError(tap_code(e), str(e))
        p.unit = unit
        self.cfg.update_variable(p, name=name, unit=unit)

    def create(self, inst):
        if inst == _NONE:
            raise TapError(tapcodes.BAD_REQUEST)
        if self.cfg.create_variable(inst) is None:
            raise TapError(tapcodes.RESOURCE_LOCKED, "declared by the board file")


class Bundles:
    # The service of /1028: bundles, their ACLs, periods and names.
    def __init__(self, twin, cfg):
        self.twin = twin
        self.cfg = cfg

    def serve(self, s, m, inst, res, p):
        twin = self.twin
        if res == 0:
            if m == _PUT:
                return self.put_acl(inst, p)
        elif res == 1:
            if m == _GET:
                return bundle_values(twin, s, inst)
        elif res == 2:
            if m == _GET:
                return struct.pack(">I", _bundle(twin, inst).period)
            if m == _PUT:
                return self.put_period(inst, p)
        elif res == 4:
            if m == _GET:
                return _bundle(twin, inst).name.encode()
            if m == _PUT:
                return self.put_name(inst, p)
        elif res == _CREATE:
            if m == _POST:
                return self.create(inst)
        else:
            return NO_RESOURCE
        return NO_METHOD

    def put_acl(self, inst, payload):
        b = _bundle(self.twin, inst)
        if len(payload) == 3 and payload[0] == 0x41:
            g, r = payload[1], payload[2]
        elif len(payload) == 4 and payload[0] == 0x61:
            g, r = struct.unpack_from(">H", payload, 1)[0], payload[3]
        elif len(payload) == 3:  # the library writes 0x61 with a one-byte id for ids > 255
            g, r = payload[1], payload[2]
        else:
            raise TapError(tapcodes.NOT_ACCEPTABLE, "ACL is 41 gid rights or 61 gid16 rights")
        self.cfg.set_bundle(b, acl=(g, r & 3))

    def put_period(self, inst, payload):
        self.cfg.set_bundle(_bundle(self.twin, inst), period=_u32(payload))

    def put_name(self, inst, payload):
        self.cfg.set_bundle(_bundle(self.twin, inst), name=_ascii(payload))

    def create(self, inst):
        if inst == _NONE:
            raise TapError(tapcodes.BAD_REQUEST)
        self.cfg.create_bundle(inst)
