# Variable (/1029) and bundle (/1028) services over the twin (spec tap-protocol.md 6-7).
# Reads answer the value image (count x size, big-endian); the official data layer writes
# with POST /1029/{id}/5, PUT /1029/{id}/4 works too. Bundle values and /1029//4 are TLV.
# Every value access is checked against the bundle ACLs of the session's group and profile
# (UNAUTHORIZED); declaration writes are configuration, checked by the guard (tap/auth.py).
import struct

from ..proto import DecodeError, tapcodes, tlv, values
from ..twin import E_LOCKED, E_NOT_FOUND, E_RIGHTS, R, TwinError, W
from .config import ADMIN, ANONYMOUS
from .dispatcher import TapError

_VAR = 1029
_BUNDLE = 1028
_NONE = 0xFFFF
_CREATE = 0xFFFF
_TWIN_CODES = {
    E_NOT_FOUND: tapcodes.NOT_FOUND,
    E_RIGHTS: tapcodes.UNAUTHORIZED,
    E_LOCKED: tapcodes.RESOURCE_LOCKED,
}


def tap_code(e):
    # TwinError -> Tap result code
    return _TWIN_CODES.get(e.kind, tapcodes.NOT_ACCEPTABLE)


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
    def var(inst):
        if inst == _NONE:
            raise TapError(tapcodes.BAD_REQUEST, "variable id missing")
        p = twin.props.get(inst)
        if p is None:
            raise TapError(tapcodes.NOT_FOUND)
        return p

    def bundle(inst):
        b = twin.bundles.get(inst)
        if b is None:
            raise TapError(tapcodes.NOT_FOUND)
        return b

    def made_over_tap(p):
        if cfg.variable_decl(p) is None:
            raise TapError(tapcodes.RESOURCE_LOCKED, "declared by the board file")

    # -- value ---------------------------------------------------------------------------------
    def get_value(s, inst, payload):
        if inst == _NONE:
            return read_profile(s, inst, payload)
        p = var(inst)
        if not access_rights(twin, p, s.group, s.profile) & 1:
            raise TapError(tapcodes.UNAUTHORIZED)
        return p.raw()

    def set_value(s, inst, payload):
        p = var(inst)
        if not access_rights(twin, p, s.group, s.profile) & 2:
            raise TapError(tapcodes.UNAUTHORIZED)
        try:
            twin.write_raw(p, payload, "tap")
        except TwinError as e:
            raise TapError(tap_code(e), str(e))

    d.add(_VAR, 4, get=get_value, put=set_value)
    d.add(_VAR, 5, post=set_value)

    # -- declaration ---------------------------------------------------------------------------
    def get_address(s, inst, payload):
        return struct.pack(">I", var(inst).address)

    def put_address(s, inst, payload):
        p = var(inst)
        p.address = _u32(payload) if len(payload) >= 4 else 0
        cfg.update_variable(p, address=p.address)

    def get_type(s, inst, payload):
        return bytes((var(inst).type_byte(),))

    def put_type(s, inst, payload):
        p = var(inst)
        made_over_tap(p)
        if len(payload) != 1:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        domain, t = values.split_type_byte(payload[0])
        p.type, p.domain = t, domain
        p.persist = domain == values.DOMAIN_STATIC
        p.value = p.default()
        cfg.update_variable(p, type=t, domain=domain)

    def get_count(s, inst, payload):
        return bytes((var(inst).count,))

    def put_count(s, inst, payload):
        p = var(inst)
        made_over_tap(p)
        if len(payload) != 1 or payload[0] == 0:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        p.count = payload[0]
        p.value = p.default()
        cfg.update_variable(p, count=p.count)

    def get_access(s, inst, payload):
        return encode_rights(s.group, access_rights(twin, var(inst), s.group, s.profile))

    def get_bundle_id(s, inst, payload):
        return struct.pack(">H", var(inst).bundle)

    def put_bundle_id(s, inst, payload):
        p = var(inst)
        p.bundle = _u16(payload)
        cfg.update_variable(p, bundle=p.bundle)

    def get_bundle_values(s, inst, payload):
        return bundle_values(s, var(inst).bundle)

    def get_meta(s, inst, payload):
        p = var(inst)
        return (p.name + ":" + p.unit).encode()

    def put_meta(s, inst, payload):
        p = var(inst)
        text = _ascii(payload)
        name, _, unit = text.partition(":")
        if not name:
            raise TapError(tapcodes.NOT_ACCEPTABLE, "empty name")
        try:
            twin.rename(p, name)
        except TwinError as e:
            raise TapError(tap_code(e), str(e))
        p.unit = unit
        cfg.update_variable(p, name=name, unit=unit)

    def get_unit(s, inst, payload):
        return var(inst).unit.encode()

    def put_unit(s, inst, payload):
        p = var(inst)
        p.unit = _ascii(payload)
        cfg.update_variable(p, unit=p.unit)

    def create(s, inst, payload):
        if inst == _NONE:
            raise TapError(tapcodes.BAD_REQUEST)
        if cfg.create_variable(inst) is None:
            raise TapError(tapcodes.RESOURCE_LOCKED, "declared by the board file")

    d.add(_VAR, 0, get=get_address, put=put_address)
    d.add(_VAR, 1, get=get_type, put=put_type)
    d.add(_VAR, 2, get=get_count, put=put_count)
    d.add(_VAR, 3, get=get_access)
    d.add(_VAR, 6, get=get_bundle_id, put=put_bundle_id)
    d.add(_VAR, 7, get=get_bundle_values)
    d.add(_VAR, 8, get=get_meta, put=put_meta)
    d.add(_VAR, 9, get=get_unit, put=put_unit)
    d.add(_VAR, _CREATE, post=create)

    # -- bundles -------------------------------------------------------------------------------
    def bundle_values(s, bid):
        bundle(bid)
        if not bundle_rights(twin, bid, s.group, s.profile) & 1:
            raise TapError(tapcodes.UNAUTHORIZED)
        items = []
        for vid in sorted(twin.props):
            p = twin.props[vid]
            if p.bundle == bid and access_rights(twin, p, s.group, s.profile) & 1:
                items.append((vid, p.raw()))
        return tlv.encode_bundle(bid, items)

    def read_profile(s, inst, payload):
        # GET /1029//4: every variable the caller may read, as one TLV node
        items = []
        for vid in sorted(twin.props):
            p = twin.props[vid]
            if access_rights(twin, p, s.group, s.profile) & 1:
                items.append((vid, p.raw()))
        return tlv.encode_bundle(0, items)

    def get_values(s, inst, payload):
        return bundle_values(s, inst)

    def put_acl(s, inst, payload):
        b = bundle(inst)
        if len(payload) == 3 and payload[0] == 0x41:
            g, r = payload[1], payload[2]
        elif len(payload) == 4 and payload[0] == 0x61:
            g, r = struct.unpack_from(">H", payload, 1)[0], payload[3]
        elif len(payload) == 3:  # the library writes 0x61 with a one-byte id for ids > 255
            g, r = payload[1], payload[2]
        else:
            raise TapError(tapcodes.NOT_ACCEPTABLE, "ACL is 41 gid rights or 61 gid16 rights")
        cfg.set_bundle(b, acl=(g, r & 3))

    def get_period(s, inst, payload):
        return struct.pack(">I", bundle(inst).period)

    def put_period(s, inst, payload):
        cfg.set_bundle(bundle(inst), period=_u32(payload))

    def get_name(s, inst, payload):
        return bundle(inst).name.encode()

    def put_name(s, inst, payload):
        cfg.set_bundle(bundle(inst), name=_ascii(payload))

    def create_bundle(s, inst, payload):
        if inst == _NONE:
            raise TapError(tapcodes.BAD_REQUEST)
        cfg.create_bundle(inst)

    d.add(_BUNDLE, 0, put=put_acl)
    d.add(_BUNDLE, 1, get=get_values)
    d.add(_BUNDLE, 2, get=get_period, put=put_period)
    d.add(_BUNDLE, 4, get=get_name, put=put_name)
    d.add(_BUNDLE, _CREATE, post=create_bundle)
