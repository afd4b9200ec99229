# Group service, object 1025: users and profiles (anonymous 0, admin 0xFFFF, supervisor
# 0xFFFE, and groups made over Tap). A group whose alias is its own id is a profile, else a
# user with the rights of the profile it names. Session lifetime in minutes (0 = no limit).
# Passwords (/1025/{g}/2) and login live in tap/auth.py.
import struct

from ..proto import tapcodes
from .dispatcher import TapError

_GROUP = 1025
_CREATE = 0xFFFF


def mount(d, cfg):
    def group(inst):
        g = cfg.group(inst)
        if g is None:
            raise TapError(tapcodes.NOT_FOUND)
        return g

    def field_u16(key):
        def get(s, inst, p):
            return struct.pack(">H", group(inst)[key])

        def put(s, inst, p):
            g = group(inst)
            if len(p) < 2:
                raise TapError(tapcodes.NOT_ACCEPTABLE)
            g[key] = struct.unpack_from(">H", p)[0]
            cfg.save()

        return get, put

    def get_name(s, inst, p):
        return group(inst)["name"].encode()

    def put_name(s, inst, p):
        g = group(inst)
        raw = bytes(p)
        i = raw.find(b"\x00")
        name = (raw[:i] if i >= 0 else raw).decode()
        other = cfg.find_group(name)
        if other is not None and other != inst:
            raise TapError(tapcodes.NOT_ACCEPTABLE, "user name taken")  # logins go by name
        g["name"] = name
        cfg.save()

    def create(s, inst, p):
        if inst == _CREATE and not p:
            raise TapError(tapcodes.BAD_REQUEST)
        cfg.create_group(inst)

    d.add(_GROUP, 0, get=get_name, put=put_name)
    g, p = field_u16("lifetime")
    d.add(_GROUP, 4, get=g, put=p)
    g, p = field_u16("alias")
    d.add(_GROUP, 5, get=g, put=p)
    d.add(_GROUP, _CREATE, post=create)
