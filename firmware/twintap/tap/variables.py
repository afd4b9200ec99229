# Variable (/1029) and bundle (/1028) services over the twin (spec tap-protocol.md 6-7): one
# class, one instance per object. Reads answer the value image (count x size, big-endian); the
# official data layer writes with POST /1029/{id}/5, PUT /1029/{id}/4 works too. Bundle values
# and /1029//4 are TLV. Every value access is checked against the bundle ACLs of the session's
# group and profile (UNAUTHORIZED); declaration writes are configuration, checked by the guard
# (tap/auth.py).
import struct

from ..proto import tapcodes, tlv, values
from ..twin import E_LOCKED, E_NOT_FOUND, E_RIGHTS, R, TwinError, W
from .dispatcher import NO_METHOD, NO_RESOURCE, TapError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_ANONYMOUS = const(0)
_ADMIN = const(0xFFFF)
_VAR = const(1029)
_BUNDLE = const(1028)
_NONE = const(0xFFFF)
_CREATE = const(0xFFFF)
_GET = const(1)
_POST = const(2)
_PUT = const(3)


def mount(d, twin, cfg):
    d.register(_VAR, Variables(twin, cfg, _VAR))
    d.register(_BUNDLE, Variables(twin, cfg, _BUNDLE))


def _rights(twin, s, bid, prop=None):
    # rights bits (bit1 write, bit0 read) of session `s` on bundle `bid`, or on variable `prop`
    # of it: the ACL entries of the group, of its profile (alias) and of anonymous (everyone
    # has anonymous rights as a minimum); admin has them all. A variable outside any bundle
    # is admin's only, and a variable's own rights (rwx) apply on top.
    if s.group == _ADMIN or s.profile == _ADMIN:
        r = 3
    else:
        b = twin.bundles.get(bid)
        if b is None:
            return 0
        acl = b.acl
        r = (acl.get(s.group, 0) | acl.get(_ANONYMOUS, 0) | acl.get(s.profile, 0)) & 3
    if prop is not None:
        if not prop.rwx & R:
            r &= 2
        if not prop.rwx & W:
            r &= 1
    return r


def _values(twin, s, bid):
    # the variables of bundle `bid` (of any bundle if None: GET /1029//4) that the session may
    # read, as one TLV node
    if bid is not None:
        if twin.bundles.get(bid) is None:
            raise TapError(tapcodes.NOT_FOUND)
        if not _rights(twin, s, bid) & 1:
            raise TapError(tapcodes.UNAUTHORIZED)
    items = []
    for vid in sorted(twin.props):
        p = twin.props[vid]
        if (bid is None or p.bundle == bid) and _rights(twin, s, p.bundle, p) & 1:
            items.append((vid, p.raw()))
    return tlv.encode_bundle(bid or 0, items)


def _ascii(payload):
    s = bytes(payload)
    i = s.find(b"\x00")
    return (s[:i] if i >= 0 else s).decode()


def _twin_error(e):
    # TwinError -> TapError with its result code
    k = e.kind
    if k == E_NOT_FOUND:
        code = tapcodes.NOT_FOUND
    elif k == E_RIGHTS:
        code = tapcodes.UNAUTHORIZED
    elif k == E_LOCKED:
        code = tapcodes.RESOURCE_LOCKED
    else:
        code = tapcodes.NOT_ACCEPTABLE
    return TapError(code)


class Variables:
    # The service of /1029 (variables: value 4 and 5, declaration 0-3 and 6-9, create 0xFFFF)
    # or, when `obj` is 1028, of /1028 (bundles: ACL 0, values 1, period 2, name 4, create).
    def __init__(self, twin, cfg, obj):
        self.twin = twin
        self.cfg = cfg
        self.obj = obj

    def serve(self, s, m, inst, res, p):
        twin = self.twin
        cfg = self.cfg
        if res == _CREATE:
            if m != _POST:
                return NO_METHOD
            if inst == _NONE:
                raise TapError(tapcodes.BAD_REQUEST)
            if self.obj == _BUNDLE:
                cfg.create_bundle(inst)
            elif cfg.create_variable(inst) is None:
                raise TapError(tapcodes.RESOURCE_LOCKED)  # declared by the board file
            return None
        if self.obj == _BUNDLE:
            return self.bundle(s, m, inst, res, p)
        if res > 9:
            return NO_RESOURCE
        if res == 4:
            ok = m != _POST
        elif res == 5:
            ok = m == _POST
        else:  # the declaration; 3 (rights) and 7 (bundle values) are read-only
            ok = m == _GET or (m == _PUT and res != 3 and res != 7)
        if not ok:
            return NO_METHOD
        if inst == _NONE:
            if res == 4 and m == _GET:
                return _values(twin, s, None)
            raise TapError(tapcodes.BAD_REQUEST)  # variable id missing
        v = twin.props.get(inst)
        if v is None:
            raise TapError(tapcodes.NOT_FOUND)
        if res == 4 or res == 5:  # the value
            r = _rights(twin, s, v.bundle, v)
            if m == _GET:
                if not r & 1:
                    raise TapError(tapcodes.UNAUTHORIZED)
                return v.raw()
            if not r & 2:
                raise TapError(tapcodes.UNAUTHORIZED)
            try:
                twin.write_raw(v, p, "tap")
            except TwinError as e:
                raise _twin_error(e)
            return None
        if m == _GET:
            if res == 0:
                return struct.pack(">I", v.address)
            if res == 1:
                return bytes((v.type_byte(),))
            if res == 2:
                return bytes((v.count,))
            if res == 3:
                r = _rights(twin, s, v.bundle, v)
                g = s.group
                if g > 0xFF:
                    return struct.pack(">BHB", 0x61, g, r)
                return bytes((0x41, g, r))
            if res == 6:
                return struct.pack(">H", v.bundle)
            if res == 7:
                return _values(twin, s, v.bundle)
            if res == 8:
                return (v.name + ":" + v.unit).encode()
            return v.unit.encode()  # 9
        # PUT: declaration
        if res == 0:
            v.address = struct.unpack_from(">I", p)[0] if len(p) >= 4 else 0
            cfg.update_variable(v, address=v.address)
        elif res == 1 or res == 2:  # type, count: of variables made over Tap only
            if cfg.variable_decl(v) is None:
                raise TapError(tapcodes.RESOURCE_LOCKED)  # declared by the board file
            if len(p) != 1:
                raise TapError(tapcodes.NOT_ACCEPTABLE)
            if res == 1:
                domain, t = values.split_type_byte(p[0])
                v.type, v.domain = t, domain
                v.persist = domain == values.DOMAIN_STATIC
                v.value = v.default()
                cfg.update_variable(v, type=t, domain=domain)
            else:
                if p[0] == 0:
                    raise TapError(tapcodes.NOT_ACCEPTABLE)
                v.count = p[0]
                v.value = v.default()
                cfg.update_variable(v, count=v.count)
        elif res == 6:
            if len(p) < 2:
                raise TapError(tapcodes.NOT_ACCEPTABLE)  # u16
            v.bundle = struct.unpack_from(">H", p)[0]
            cfg.update_variable(v, bundle=v.bundle)
        elif res == 8:  # "name:unit"
            name, _, unit = _ascii(p).partition(":")
            if not name:
                raise TapError(tapcodes.NOT_ACCEPTABLE)  # empty name
            try:
                twin.rename(v, name)
            except TwinError as e:
                raise _twin_error(e)
            v.unit = unit
            cfg.update_variable(v, name=name, unit=unit)
        else:  # 9
            v.unit = _ascii(p)
            cfg.update_variable(v, unit=v.unit)
        return None

    def bundle(self, s, m, inst, res, p):
        # /1028/{inst}/res but create
        twin = self.twin
        if res == 0:
            ok = m == _PUT
        elif res == 1:
            ok = m == _GET
        elif res == 2 or res == 4:
            ok = m != _POST
        else:
            return NO_RESOURCE
        if not ok:
            return NO_METHOD
        if res == 1:
            return _values(twin, s, inst)
        b = twin.bundles.get(inst)
        if b is None:
            raise TapError(tapcodes.NOT_FOUND)
        if m == _GET:
            return struct.pack(">I", b.period) if res == 2 else b.name.encode()
        if res == 0:  # ACL entry: 41 gid rights, or 61 gid16 rights
            if len(p) == 3:  # (the library writes 0x61 with a one-byte id for ids > 255)
                g, r = p[1], p[2]
            elif len(p) == 4 and p[0] == 0x61:
                g, r = struct.unpack_from(">H", p, 1)[0], p[3]
            else:
                raise TapError(tapcodes.NOT_ACCEPTABLE)
            self.cfg.set_bundle(b, acl=(g, r & 3))
        elif res == 2:
            if len(p) < 4:
                raise TapError(tapcodes.NOT_ACCEPTABLE)  # u32
            self.cfg.set_bundle(b, period=struct.unpack_from(">I", p)[0])
        else:
            self.cfg.set_bundle(b, name=_ascii(p))
        return None
