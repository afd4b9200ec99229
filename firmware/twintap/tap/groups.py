# Group service, object 1025: users and profiles (anonymous 0, admin 0xFFFF, supervisor
# 0xFFFE, and groups made over Tap). A group whose alias is its own id is a profile, else a
# user with the rights of the profile it names. Session lifetime in minutes (0 = no limit).
# Passwords (POST /1025/{g}/2) are handed to tap/login.py, loaded for them; logins live in
# tap/auth.py and tap/login.py.
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
    # The service of /1025: 0 name, 2 password (POST), 4 lifetime, 5 alias, 0xFFFF create.
    def __init__(self, cfg):
        self.cfg = cfg

    def serve(self, s, m, inst, res, p):
        cfg = self.cfg
        if res == 2:
            if m != _POST:
                return NO_METHOD
            from . import login

            return login.change_password(cfg, s, inst, p)
        if res == _CREATE:
            if m != _POST:
                return NO_METHOD
            if inst == _CREATE and not p:
                raise TapError(tapcodes.BAD_REQUEST)
            cfg.create_group(inst)
            return None
        if res != 0 and res != 4 and res != 5:
            return NO_RESOURCE
        if m != _GET and m != _PUT:
            return NO_METHOD
        g = cfg.group(inst)
        if g is None:
            raise TapError(tapcodes.NOT_FOUND)
        key = "name" if res == 0 else "lifetime" if res == 4 else "alias"
        if m == _GET:
            return g[key].encode() if res == 0 else struct.pack(">H", g[key])
        if res == 0:
            raw = bytes(p)
            i = raw.find(b"\x00")
            name = (raw[:i] if i >= 0 else raw).decode()
            other = cfg.find_group(name)
            if other is not None and other != inst:
                raise TapError(tapcodes.NOT_ACCEPTABLE)  # user name taken: logins go by name
            g[key] = name
        else:
            if len(p) < 2:
                raise TapError(tapcodes.NOT_ACCEPTABLE)  # u16
            g[key] = struct.unpack_from(">H", p)[0]
        cfg.save()
        return None
