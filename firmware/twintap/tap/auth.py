# Tap security (spec tap-protocol.md sections 4-5, tap-background.md section 6): the service of
# the security resources of /1024 and the guard that every request passes before its handler:
#   - a session whose lifetime (minutes) has passed falls back to anonymous;
#   - with "require_encryption", writes outside the encrypted channel get UNAUTHORIZED;
#   - configuration writes need admin once the board is locked (TapConfig.locked, or
#     "lock_config" in config.json); security options and iterations always need admin.
# What stays loaded is small: the guard, the reads of the security options and iterations,
# and the method check of each resource. Logins (basic, hashed, UID, SCRAM), logout, the login
# lockout, writes of the options and iterations and the encrypted channel (/1024//44-48) live
# in tap/login.py, imported by the first request that needs it and dropped after.
# (Credentials provisioned in config.json "tap": {"users": ...} are put in tap.json by
# onboard.apply_users, in the same form: "key" = storedKey | serverKey | salt, "it".)
# Never log a password, key, nonce, proof or UID: only group names and link names.
import os
import struct

from ..proto import tapcodes
from ..ticks import ticks_diff, ticks_ms
from .dispatcher import NO_METHOD, NO_RESOURCE, TapError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_ANONYMOUS = const(0)
_ADMIN = const(0xFFFF)
_IF = const(1024)
_GROUP = const(1025)
_GET = const(1)
_POST = const(2)
_PUT = const(3)
_NO_RESET = const(0x01)  # security options /1024//6, byte 1: factory reset disabled
_MINUTE_MS = const(60000)
_UID_SIZE = const(8)
# Auth.flags, from config.json "tap"
_REQUIRE_ENCRYPTION = const(1)
_LOCK_CONFIG = const(2)


def mount(d, auth):
    d.guard = auth.guard
    auth.dispatcher = d
    d.register(_IF, auth)


class Auth:
    def __init__(self, cfg, options=None, clock=ticks_ms, rand=os.urandom):
        opts = options or {}
        self.cfg = cfg
        self.flags = (_REQUIRE_ENCRYPTION if opts.get("require_encryption") else 0) | (
            _LOCK_CONFIG if opts.get("lock_config") else 0
        )
        self.clock = clock
        self.rand = rand  # nonces, IVs and session keys (tap/login.py)
        self.fails = {}  # link peer -> [failed logins, refused-until ms or None]
        self.dispatcher = None  # the encrypted channel hands its requests back to it
        d = cfg.d
        if not d.get("uid"):
            d["uid"] = bytes(rand(_UID_SIZE)).hex()
            cfg.save()

    def guard(self, s, method, obj, inst, res):
        if s.group != _ANONYMOUS and s.lifetime:
            if ticks_diff(self.clock(), s.login_ms) >= s.lifetime * _MINUTE_MS:
                from . import login

                login.logout(self.cfg, s, True)
                login.release(s)
        if method == _GET:
            return
        # login, logout, UID login, end of session: always allowed
        logging_in = obj == _IF and (res <= 1 or res == 5 or res == 46)
        if self.flags & _REQUIRE_ENCRYPTION and not s.encrypted and not logging_in:
            raise TapError(tapcodes.UNAUTHORIZED)  # writes need an encrypted session
        cfg = self.cfg
        if obj == 3 and res == 5 and cfg.d.get("security", 0) & _NO_RESET:
            raise TapError(tapcodes.RESOURCE_LOCKED)  # factory reset disabled
        if logging_in or (obj == _GROUP and res == 2):
            return
        # configuration: /3 (device), /1024, /1025, /1028 and the declarations of /1029
        if obj == 3 or obj == _IF or obj == _GROUP or obj == 1028 or (
            obj == 1029 and res != 4 and res != 5
        ):
            if s.group == _ADMIN or s.profile == _ADMIN:
                return
            if self.flags & _LOCK_CONFIG or cfg.locked():
                raise TapError(tapcodes.UNAUTHORIZED)  # configuration needs admin

    def serve(self, s, m, inst, res, p):
        # The security resources of /1024 (tap/interface.py serves the others): 0 login (POST),
        # 1 logout (POST), 5 UID (GET) and UID login (POST), 6 security options and 42 SCRAM
        # iterations (GET, PUT), 40-41 SCRAM login, 44-48 the encrypted channel (GET; 46 POST
        # too). The reads of 6 and 42 are answered here, the rest by tap/login.py.
        if res == 0 or res == 1:
            ok = m == _POST
        elif res == 5 or res == 46:
            ok = m != _PUT
        elif res == 6 or res == 42:
            if m == _GET:
                d = self.cfg.d
                if res == 6:
                    return struct.pack(">H", d.get("security", 0) & 0xFFFF)
                return struct.pack(">I", d["iterations"])
            ok = m == _PUT
        elif 40 <= res <= 48 and res != 43:
            ok = m == _GET
        else:
            return NO_RESOURCE
        if not ok:
            return NO_METHOD
        from . import login

        return login.serve(self, s, m, res, p)
