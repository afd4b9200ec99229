# Group service, object 1025: users and profiles (anonymous 0, admin 0xFFFF, supervisor
# 0xFFFE, and groups made over Tap). A group whose alias is its own id is a profile, else a
# user with the rights of the profile it names. Session lifetime in minutes (0 = no limit).
# Passwords (/1025/{g}/2) and login live in tap/auth.py.
import struct

from ..proto import tapcodes
from .dispatcher import NO_METHOD, NO_RESOURCE, TapError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_GROUP = const(1025)
_CREATE = const(0xFFFF)
_GET = const(1)
_POST = const(2)
_PUT = const(3)


def mount(d, cfg):
    d.register(_GROUP, Groups(cfg))


class Groups:
    # The service of /1025 but for passwords (tap/auth.py serves /1025/{g}/2).
    def __init__(self, cfg):
        self.cfg = cfg

    def serve(self, s, m, inst, res, p):
        if res == 0:
            if m == _GET:
                return self.group(inst)["name"].encode()
            if m == _PUT:
                return self.put_name(inst, p)
        elif res == 4 or res == 5:
            key = "lifetime" if res == 4 else "alias"
            if m == _GET:
                return struct.pack(">H", self.group(inst)[key])
            if m == _PUT:
                return self.put_u16(inst, key, p)
        elif res == _CREATE:
            if m == _POST:
                return self.create(inst, p)
        else:
            return NO_RESOURCE
        return NO_METHOD

    def group(self, inst):
        g = self.cfg.group(inst)
        if g is None:
            raise TapError(tapcodes.NOT_FOUND)
        return g

    def put_u16(self, inst, key, p):
        g = self.group(inst)
        if len(p) < 2:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        g[key] = struct.unpack_from(">H", p)[0]
        self.cfg.save()

    def put_name(self, inst, p):
        g = self.group(inst)
        raw = bytes(p)
        i = raw.find(b"\x00")
        name = (raw[:i] if i >= 0 else raw).decode()
        other = self.cfg.find_group(name)
        if other is not None and other != inst:
            raise TapError(tapcodes.NOT_ACCEPTABLE, "user name taken")  # logins go by name
        g["name"] = name
        self.cfg.save()

    def create(self, inst, p):
        if inst == _CREATE and not p:
            raise TapError(tapcodes.BAD_REQUEST)
        self.cfg.create_group(inst)
