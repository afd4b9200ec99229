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
from .dispatcher import TapError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_IF = const(1024)
_GROUP = const(1025)
_GET = const(1)
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


def mount(d, auth):
    cfg = auth.cfg
    d.guard = auth.guard
    auth.dispatcher = d

    # -- basic, hashed and UID login, logout ---------------------------------------------------
    def login(s, i, p):
        auth.check_lockout(s)
        opts = auth.options
        if opts & _SCRAM_ON:
            raise TapError(tapcodes.RESOURCE_LOCKED)  # SCRAM login only
        if len(p) != 2 * _FIELD:
            raise TapError(tapcodes.NOT_ACCEPTABLE)  # login is user(16) + password(16)
        scram = _scram()
        gid = cfg.find_group(scram.unfield(p[:_FIELD]))
        pw = p[_FIELD:]
        hashed = bytes(pw) if opts & _HASH_PASSWORD else scram.hash_password(scram.unfield(pw))
        if gid is None or gid == ANONYMOUS or not auth.check_hash(gid, hashed):
            auth.failed(s, tapcodes.NOT_ACCEPTABLE)
        auth.succeeded(s)
        auth.login(s, gid, "hashed" if opts & _HASH_PASSWORD else "basic")

    def logout(s, i, p):
        auth.logout(s)
        if s.key is not None:  # the answer still goes out encrypted, then the channel ends
            s.after.append(lambda: auth.end_channel(s))

    def get_uid(s, i, p):
        # the UID is what NFC proximity gives a real Tap: here, the wire (UART) or admin
        if s.peer.startswith("uart") or auth.is_admin(s):
            return auth.uid
        raise TapError(tapcodes.UNAUTHORIZED)

    def login_uid(s, i, p):
        auth.check_lockout(s)
        if auth.options & _NO_UID_LOGIN:
            raise TapError(tapcodes.RESOURCE_LOCKED)  # UID login disabled
        if not _same(bytes(p), auth.uid):
            auth.failed(s, tapcodes.NOT_ACCEPTABLE)
        auth.succeeded(s)
        auth.login(s, ADMIN, "UID")

    d.add(_IF, 0, post=login)
    d.add(_IF, 1, post=logout)
    d.add(_IF, 5, get=get_uid, post=login_uid)

    # -- security options, iterations ------------------------------------------------------
    def get_options(s, i, p):
        return struct.pack(">H", auth.options)

    def put_options(s, i, p):
        auth.need_admin(s)
        if len(p) != 2:
            raise TapError(tapcodes.NOT_ACCEPTABLE)  # security options are 2 bytes
        cfg.d["security"] = p[1] & 0x1F
        cfg.save()
        log.info("auth", "security options now 0x%04X" % cfg.d["security"])

    def get_iterations(s, i, p):
        return struct.pack(">I", cfg.d["iterations"])

    def put_iterations(s, i, p):
        auth.need_admin(s)
        if len(p) not in (2, 4):
            raise TapError(tapcodes.NOT_ACCEPTABLE)  # iterations: u16
        n = struct.unpack(">H", p)[0] if len(p) == 2 else _u32(p)
        if n < 1:
            raise TapError(tapcodes.NOT_ACCEPTABLE)  # iterations >= 1
        cfg.d["iterations"] = n
        cfg.save()

    d.add(_IF, 6, get=get_options, put=put_options)
    d.add(_IF, 42, get=get_iterations, put=put_iterations)

    # -- SCRAM -----------------------------------------------------------------------------
    def scram_login(s, i, p):
        auth.check_lockout(s)
        if not auth.options & _SCRAM_ON:
            raise TapError(tapcodes.RESOURCE_LOCKED)  # SCRAM is not activated
        scram = _scram()
        try:
            name, cn = scram.decode_login(p)
        except DecodeError:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        gid = cfg.find_group(name)
        keys = auth.user_keys(gid)
        sn = _u32(auth.rand(4))
        if keys is None:
            # an unknown user gets a plausible, stable salt and fails at the proof
            salt = bytearray(hashlib.sha256(auth.uid + name).digest()[:4])
            salt[0] |= 1
            keys = (None, None, bytes(salt), cfg.d["iterations"])
            gid = None
        s.scram = (gid, cn, sn, keys)
        return scram.encode_login_reply(sn, keys[2], keys[3])

    def scram_proof(s, i, p):
        auth.check_lockout(s)
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
            auth.failed(s, tapcodes.UNAUTHORIZED)
        auth.succeeded(s)
        auth.login(s, gid, "SCRAM")
        key = scram.session_key(cn, sn, salt, server, stored)
        s.after.append(lambda: auth.set_key(s, key, False))
        log.info("auth", "%s: encrypted session started (SCRAM)" % s.link)
        return scram.server_proof(server, cn, sn)

    d.add(_IF, 40, get=scram_login)
    d.add(_IF, 41, get=scram_proof)

    # -- the encrypted channel -----------------------------------------------------------------
    def new_key(s, i, p):
        key = bytes(auth.rand(16))
        s.after.append(lambda: auth.set_key(s, key, True))
        log.info("auth", "%s: encrypted session started" % s.link)
        return key

    def set_iv(s, i, p):
        if len(p) != 16:
            raise TapError(tapcodes.NOT_ACCEPTABLE)  # an IV is 16 bytes
        client = bytes(p)
        server = bytes(auth.rand(16))

        def apply():
            s.iv_req = client
            s.iv_resp = server

        s.after.append(apply)
        return server

    def carry(s, body, iv=None):
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
                resp = d.call(s, method, obj, inst, res, payload)
            finally:
                s.encrypted = False
        if iv is None:
            return encframe.encrypt(key, s.iv_resp, fid, resp)
        # @iotize/tap 2.7.0's ScramAuth.logout drops its keys before the answer comes and
        # decrypts it with the IV it had: the answer to a logout keeps the current IV
        server = s.iv_resp if logout else bytes(auth.rand(16))

        def apply():
            if s.key is key:  # not when the request ended the session
                s.iv_req = iv
                s.iv_resp = server

        s.after.append(apply)
        return server + encframe.encrypt(key, server, fid, resp)

    def send(s, i, p):
        return carry(s, bytes(p))

    def send_with_iv(s, i, p):
        if len(p) < 32:
            raise TapError(tapcodes.BAD_REQUEST)  # IV(16) + encrypted frame expected
        return carry(s, bytes(p[16:]), bytes(p[:16]))

    def stop(s, i, p):
        s.after.append(lambda: auth.end_channel(s))

    d.add(_IF, 44, get=send_with_iv)
    d.add(_IF, 45, get=set_iv)
    d.add(_IF, 46, get=stop, post=stop)
    d.add(_IF, 47, get=new_key)
    d.add(_IF, 48, get=send)

    # -- passwords: POST /1025/{g}/2 -----------------------------------------------------------
    def change_password(s, gid, p):
        g = cfg.group(gid)
        if g is None:
            raise TapError(tapcodes.NOT_FOUND)
        if not auth.is_admin(s) and (s.group != gid or gid == ANONYMOUS):
            raise TapError(tapcodes.UNAUTHORIZED)  # only admin changes other passwords
        if gid == ANONYMOUS:
            raise TapError(tapcodes.NOT_ACCEPTABLE)  # anonymous has no password
        try:
            auth.set_password(gid, p)
        except DecodeError as e:
            raise TapError(e.code, str(e))
        log.info("auth", "%s: password of %s changed" % (s.link, g.get("name", gid)))

    d.add(_GROUP, 2, post=change_password)
