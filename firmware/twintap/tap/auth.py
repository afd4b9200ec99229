# Tap security (spec tap-protocol.md sections 4-5, tap-background.md section 6): logins
# (basic, hashed, UID, SCRAM), passwords kept as SCRAM keys only, security options,
# profiles and their session lifetime, the encrypted channel (/1024//44-48), the login
# lockout, and the guard that every request passes before its handler:
#   - a session whose lifetime (minutes) has passed falls back to anonymous;
#   - with "require_encryption", writes outside the encrypted channel get UNAUTHORIZED;
#   - configuration writes need admin once the board is locked (TapConfig.locked, or
#     "lock_config" in config.json); security options and iterations always need admin.
# (Credentials provisioned in config.json "tap": {"users": ...} are put in tap.json by
# onboard.apply_users, in the same form: "key" = storedKey | serverKey | salt, "it".)
# Never log a password, key, nonce, proof or UID: only group names and link names.
import hashlib
import os
import struct

from .. import log
from ..proto import DecodeError, frame, tapcodes
from ..ticks import ticks_add, ticks_diff, ticks_ms
from .config import ADMIN, ANONYMOUS
from .dispatcher import NO_METHOD, NO_RESOURCE, TapError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_IF = const(1024)
_GROUP = const(1025)
_GET = const(1)
_POST = const(2)
_PUT = const(3)
# security options /1024//6, byte 1
_SCRAM_ON = const(0x10)
_HASH_PASSWORD = const(0x08)
_NO_UID_LOGIN = const(0x02)  # bit2 (no hardware factory reset) is only stored: no button
_NO_RESET = const(0x01)
_MAX_FAILS = const(3)
_LOCKOUT_MS = const(60000)
_MAX_PEERS = const(16)
_MINUTE_MS = const(60000)
_UID_SIZE = const(8)
_FIELD = const(16)  # user names, passwords, keys, proofs, IVs: 16 bytes
_KEY36 = const(36)  # storedKey | serverKey | salt
_ZERO = bytes(16)
_LOGIN_RES = (0, 1, 5, 46)  # login, logout, UID login, end of session: always allowed
_CONFIG_OBJ = (3, _IF, _GROUP, 1028)


def _u32(b):
    return struct.unpack(">I", b)[0]


def _scram():
    # the credential codecs load with the first login, not at boot (heap)
    from ..proto import scram

    return scram


def _enc():
    from ..proto import encframe

    return encframe


def _same(a, b):
    # constant-time comparison
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


def _random_salt(rand):
    s = bytearray(rand(4))
    if s[0] == 0:
        s[0] = 1  # an all-zero salt would disable the user
    return bytes(s)


class Auth:
    def __init__(self, cfg, options=None, clock=ticks_ms, rand=os.urandom):
        opts = options or {}
        self.cfg = cfg
        self.require_encryption = bool(opts.get("require_encryption", False))
        self.lock_config = bool(opts.get("lock_config", False))
        self.clock = clock
        self.rand = rand
        self.fails = {}  # peer -> [failures, refused-until ms or None]
        d = cfg.d
        if not d.get("uid"):
            d["uid"] = bytes(rand(_UID_SIZE)).hex()
            cfg.save()
        self.uid = bytes.fromhex(d["uid"])
        self.dispatcher = None

    # -- state -------------------------------------------------------------------------------
    @property
    def options(self):
        return self.cfg.d.get("security", 0) & 0xFFFF

    def is_admin(self, s):
        return s.group == ADMIN or s.profile == ADMIN

    def may_configure(self, s):
        return self.is_admin(s) or not (self.lock_config or self.cfg.locked())

    def login(self, s, gid, how):
        g = self.cfg.group(gid) or {}
        s.group = gid
        s.profile = g.get("alias", gid)
        s.lifetime = g.get("lifetime", 0)
        s.login_ms = self.clock()
        s.scram = None
        log.info("auth", "%s: %s logged in (%s)" % (s.link, g.get("name", gid), how))

    def logout(self, s, why="logged out"):
        if s.group != ANONYMOUS:
            g = self.cfg.group(s.group) or {}
            log.info("auth", "%s: %s %s" % (s.link, g.get("name", s.group), why))
        s.group = s.profile = ANONYMOUS
        s.lifetime = 0
        s.scram = None

    def set_key(self, s, key, reset_iv):
        # a new encrypted session: frame ids restart (and IVs, for a key from /1024//47)
        s.key = key
        s.rx_next = 0
        if reset_iv:
            s.iv_req = s.iv_resp = _ZERO

    def end_channel(self, s):
        if s.key is not None:
            log.info("auth", "%s: encrypted session ended" % s.link)
        s.key = None
        s.iv_req = s.iv_resp = _ZERO
        s.rx_next = 0

    # -- lockout -----------------------------------------------------------------------------
    def check_lockout(self, s):
        rec = self.fails.get(s.peer)
        if rec is None or rec[1] is None:
            return
        if ticks_diff(rec[1], self.clock()) > 0:
            raise TapError(tapcodes.SERVICE_UNAVAILABLE)  # too many failed logins
        del self.fails[s.peer]

    def failed(self, s, code):
        rec = self.fails.get(s.peer)
        if rec is None:
            if len(self.fails) >= _MAX_PEERS:  # bounded: forget the oldest entry
                del self.fails[next(iter(self.fails))]
            rec = self.fails[s.peer] = [0, None]
        rec[0] += 1
        log.warn("auth", "%s: login failed (%d/%d)" % (s.link, rec[0], _MAX_FAILS))
        if rec[0] >= _MAX_FAILS:
            rec[0] = 0
            rec[1] = ticks_add(self.clock(), _LOCKOUT_MS)
            log.warn("auth", "%s: logins refused for %d s" % (s.peer, _LOCKOUT_MS // 1000))
        raise TapError(code, "bad credentials")

    def succeeded(self, s):
        self.fails.pop(s.peer, None)

    # -- credentials -------------------------------------------------------------------------
    def user_keys(self, gid):
        # -> (storedKey, serverKey, salt, iterations) of a user, or None
        g = self.cfg.group(gid) if gid is not None else None
        if not g or gid == ANONYMOUS or not g.get("key"):
            return None
        stored, server, salt = _scram().split_password_key(bytes.fromhex(g["key"]))
        return stored, server, salt, g.get("it", self.cfg.d["iterations"])

    def check_hash(self, gid, hashed):
        # H(pw) against the stored keys (PBKDF2 runs even for an unknown user)
        k = self.user_keys(gid)
        if k is None:
            _scram().keys_from_hash(hashed, b"\x01\x02\x03\x04", self.cfg.d["iterations"])
            return False
        stored, _ = _scram().keys_from_hash(hashed, k[2], k[3])
        return _same(stored, k[0])

    def set_password(self, gid, body):
        # POST /1025/{g}/2 body -> SCRAM keys, the only form a password is kept in
        scram = _scram()
        opts = self.options
        it = self.cfg.d["iterations"]
        if len(body) == _KEY36:
            stored, server, salt = scram.split_password_key(body)
        else:
            if opts & _HASH_PASSWORD:
                if len(body) != _FIELD:
                    raise TapError(tapcodes.NOT_ACCEPTABLE)  # hashed password is 16 bytes
                hashed = bytes(body)
            else:
                pw = scram.unfield(body)
                if not pw or len(body) > _FIELD:
                    raise TapError(tapcodes.NOT_ACCEPTABLE)  # password is 1 to 16 characters
                hashed = scram.hash_password(pw)
            salt = _random_salt(self.rand)
            stored, server = scram.keys_from_hash(hashed, salt, it)
        g = self.cfg.group(gid)
        g["key"] = (stored + server + salt).hex()
        g["it"] = it
        g.pop("dflt", None)
        self.cfg.save()

    # -- the guard ---------------------------------------------------------------------------
    def guard(self, s, method, obj, inst, res):
        if s.group != ANONYMOUS and s.lifetime:
            if ticks_diff(self.clock(), s.login_ms) >= s.lifetime * _MINUTE_MS:
                self.logout(s, "session expired")
        if method == _GET:
            return
        login = obj == _IF and res in _LOGIN_RES
        if self.require_encryption and not s.encrypted and not login:
            raise TapError(tapcodes.UNAUTHORIZED)  # writes need an encrypted session
        if obj == 3 and res == 5 and self.options & _NO_RESET:
            raise TapError(tapcodes.RESOURCE_LOCKED)  # factory reset disabled
        if login or (obj == _GROUP and res == 2):
            return
        config = obj in _CONFIG_OBJ or (obj == 1029 and res not in (4, 5))
        if config and not self.may_configure(s):
            raise TapError(tapcodes.UNAUTHORIZED)  # configuration needs admin

    def need_admin(self, s):
        if not self.is_admin(s):
            raise TapError(tapcodes.UNAUTHORIZED)  # admin only

    # -- the service of /1024: logins, security options, SCRAM, the encrypted channel ----------
    def serve(self, s, m, inst, res, p):
        if res == 0:
            if m == _POST:
                return self.basic_login(s, p)
        elif res == 1:
            if m == _POST:
                return self.end_login(s)
        elif res == 5:
            if m == _GET:
                return self.get_uid(s)
            if m == _POST:
                return self.uid_login(s, p)
        elif res == 6:
            if m == _GET:
                return struct.pack(">H", self.options)
            if m == _PUT:
                return self.put_options(s, p)
        elif res == 42:
            if m == _GET:
                return struct.pack(">I", self.cfg.d["iterations"])
            if m == _PUT:
                return self.put_iterations(s, p)
        elif res == 40:
            if m == _GET:
                return self.scram_login(s, p)
        elif res == 41:
            if m == _GET:
                return self.scram_proof(s, p)
        elif res == 44:
            if m == _GET:
                return self.send_with_iv(s, p)
        elif res == 45:
            if m == _GET:
                return self.set_iv(s, p)
        elif res == 46:
            if m == _GET or m == _POST:
                return self.stop(s)
        elif res == 47:
            if m == _GET:
                return self.new_key(s)
        elif res == 48:
            if m == _GET:
                return self.carry(s, bytes(p))
        else:
            return NO_RESOURCE
        return NO_METHOD

    # -- basic, hashed and UID login, logout ---------------------------------------------------
    def basic_login(self, s, p):
        self.check_lockout(s)
        opts = self.options
        if opts & _SCRAM_ON:
            raise TapError(tapcodes.RESOURCE_LOCKED)  # SCRAM login only
        if len(p) != 2 * _FIELD:
            raise TapError(tapcodes.NOT_ACCEPTABLE)  # login is user(16) + password(16)
        scram = _scram()
        gid = self.cfg.find_group(scram.unfield(p[:_FIELD]))
        pw = p[_FIELD:]
        hashed = bytes(pw) if opts & _HASH_PASSWORD else scram.hash_password(scram.unfield(pw))
        if gid is None or gid == ANONYMOUS or not self.check_hash(gid, hashed):
            self.failed(s, tapcodes.NOT_ACCEPTABLE)
        self.succeeded(s)
        self.login(s, gid, "hashed" if opts & _HASH_PASSWORD else "basic")

    def end_login(self, s):
        self.logout(s)
        if s.key is not None:  # the answer still goes out encrypted, then the channel ends
            self.stop(s)

    def get_uid(self, s):
        # the UID is what NFC proximity gives a real Tap: here, the wire (UART) or admin
        if s.peer.startswith("uart") or self.is_admin(s):
            return self.uid
        raise TapError(tapcodes.UNAUTHORIZED)

    def uid_login(self, s, p):
        self.check_lockout(s)
        if self.options & _NO_UID_LOGIN:
            raise TapError(tapcodes.RESOURCE_LOCKED)  # UID login disabled
        if not _same(bytes(p), self.uid):
            self.failed(s, tapcodes.NOT_ACCEPTABLE)
        self.succeeded(s)
        self.login(s, ADMIN, "UID")

    # -- security options, iterations ------------------------------------------------------
    def put_options(self, s, p):
        self.need_admin(s)
        if len(p) != 2:
            raise TapError(tapcodes.NOT_ACCEPTABLE)  # security options are 2 bytes
        cfg = self.cfg
        cfg.d["security"] = p[1] & 0x1F
        cfg.save()
        log.info("auth", "security options now 0x%04X" % cfg.d["security"])

    def put_iterations(self, s, p):
        self.need_admin(s)
        if len(p) not in (2, 4):
            raise TapError(tapcodes.NOT_ACCEPTABLE)  # iterations: u16
        n = struct.unpack(">H", p)[0] if len(p) == 2 else _u32(p)
        if n < 1:
            raise TapError(tapcodes.NOT_ACCEPTABLE)  # iterations >= 1
        self.cfg.d["iterations"] = n
        self.cfg.save()

    # -- SCRAM -----------------------------------------------------------------------------
    def scram_login(self, s, p):
        self.check_lockout(s)
        if not self.options & _SCRAM_ON:
            raise TapError(tapcodes.RESOURCE_LOCKED)  # SCRAM is not activated
        scram = _scram()
        try:
            name, cn = scram.decode_login(p)
        except DecodeError:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        gid = self.cfg.find_group(name)
        keys = self.user_keys(gid)
        sn = _u32(self.rand(4))
        if keys is None:
            # an unknown user gets a plausible, stable salt and fails at the proof
            salt = bytearray(hashlib.sha256(self.uid + name).digest()[:4])
            salt[0] |= 1
            keys = (None, None, bytes(salt), self.cfg.d["iterations"])
            gid = None
        s.scram = (gid, cn, sn, keys)
        return scram.encode_login_reply(sn, keys[2], keys[3])

    def scram_proof(self, s, p):
        self.check_lockout(s)
        pending = s.scram
        s.scram = None
        if pending is None:
            raise TapError(tapcodes.BAD_REQUEST)  # no SCRAM login in progress
        gid, cn, sn, keys = pending
        stored, server, salt = keys[0], keys[1], keys[2]
        scram = _scram()
        if gid is None or len(p) != _FIELD or not _same(
            bytes(p), scram.client_proof(stored, cn, sn)
        ):
            self.failed(s, tapcodes.UNAUTHORIZED)
        self.succeeded(s)
        self.login(s, gid, "SCRAM")
        self.start_channel(s, scram.session_key(cn, sn, salt, server, stored), False)
        log.info("auth", "%s: encrypted session started (SCRAM)" % s.link)
        return scram.server_proof(server, cn, sn)

    # -- the encrypted channel -----------------------------------------------------------------
    def start_channel(self, s, key, reset_iv):
        # the key applies from the next request: this response goes out as it came
        s.after.append(lambda: self.set_key(s, key, reset_iv))

    def stop(self, s):
        # the channel ends after this response (encrypted, if the request was)
        s.after.append(lambda: self.end_channel(s))

    def new_key(self, s):
        key = bytes(self.rand(16))
        self.start_channel(s, key, True)
        log.info("auth", "%s: encrypted session started" % s.link)
        return key

    def set_iv(self, s, p):
        if len(p) != 16:
            raise TapError(tapcodes.NOT_ACCEPTABLE)  # an IV is 16 bytes
        client = bytes(p)
        server = bytes(self.rand(16))

        def apply():
            s.iv_req = client
            s.iv_resp = server

        s.after.append(apply)
        return server

    def send_with_iv(self, s, p):
        if len(p) < 32:
            raise TapError(tapcodes.BAD_REQUEST)  # IV(16) + encrypted frame expected
        return self.carry(s, bytes(p[16:]), bytes(p[:16]))

    def carry(self, s, body, iv=None):
        if s.key is None:
            raise TapError(tapcodes.UNAUTHORIZED)  # no encrypted session
        if s.encrypted:
            raise TapError(tapcodes.BAD_REQUEST)  # nested encrypted frame
        key = s.key
        encframe = _enc()
        fid, inner = encframe.decrypt(key, iv or s.iv_req, body)
        if (fid - s.rx_next) & 0xFFFF >= 0x8000:
            raise TapError(tapcodes.BAD_REQUEST)  # stale encrypted frame id
        s.rx_next = (fid + 1) & 0xFFFF
        logout = False
        try:
            method, obj, inst, res, payload = frame.decode_frame(inner)
        except DecodeError as e:
            resp = frame.encode_response(e.code)
        else:
            logout = obj == _IF and res == 1
            s.encrypted = True
            try:
                resp = self.dispatcher.call(s, method, obj, inst, res, payload)
            finally:
                s.encrypted = False
        if iv is None:
            return encframe.encrypt(key, s.iv_resp, fid, resp)
        # @iotize/tap 2.7.0's ScramAuth.logout drops its keys before the answer comes and
        # decrypts it with the IV it had: the answer to a logout keeps the current IV
        server = s.iv_resp if logout else bytes(self.rand(16))

        def apply():
            if s.key is key:  # not when the request ended the session
                s.iv_req = iv
                s.iv_resp = server

        s.after.append(apply)
        return server + encframe.encrypt(key, server, fid, resp)

    # -- passwords: POST /1025/{g}/2 -----------------------------------------------------------
    def change_password(self, s, gid, p):
        g = self.cfg.group(gid)
        if g is None:
            raise TapError(tapcodes.NOT_FOUND)
        if not self.is_admin(s) and (s.group != gid or gid == ANONYMOUS):
            raise TapError(tapcodes.UNAUTHORIZED)  # only admin changes other passwords
        if gid == ANONYMOUS:
            raise TapError(tapcodes.NOT_ACCEPTABLE)  # anonymous has no password
        try:
            self.set_password(gid, p)
        except DecodeError as e:
            raise TapError(e.code, str(e))
        log.info("auth", "%s: password of %s changed" % (s.link, g.get("name", gid)))


def mount(d, auth):
    d.guard = auth.guard
    auth.dispatcher = d
    d.register(_IF, auth)
    d.register(_GROUP, _Passwords(auth))


class _Passwords:
    # The service of /1025/{g}/2: POST sets a password (tap/groups.py serves the rest).
    def __init__(self, auth):
        self.auth = auth

    def serve(self, s, m, inst, res, p):
        if res != 2:
            return NO_RESOURCE
        if m != _POST:
            return NO_METHOD
        return self.auth.change_password(s, inst, p)
