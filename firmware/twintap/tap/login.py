# Tap logins and the encrypted channel (spec tap-protocol.md sections 4-5, tap-background.md
# section 6), the rarely used half of the security service: tap/auth.py (and tap/groups.py for
# passwords) import this module with the first request that needs it, and release() drops it
# again, with the credential and frame codecs, once the session holds no key and no SCRAM
# login in progress (another session's next request loads it back). Here: basic, hashed, UID
# and SCRAM logins, logout, the login lockout per link peer, writes of the security options
# and iterations, the encrypted channel (/1024//44-48), and passwords (POST /1025/{g}/2), kept
# as SCRAM keys only. All state lives in the Auth object `a` and in the sessions.
# Never log a password, key, nonce, proof or UID: only group names and link names.
import hashlib
import os
import struct

from .. import log
from ..proto import frame, tapcodes
from ..proto.crypto import equal
from ..ticks import ticks_add, ticks_diff
from .dispatcher import TapError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_ANONYMOUS = const(0)
_ADMIN = const(0xFFFF)
_IF = const(1024)
_GET = const(1)
_POST = const(2)
# security options /1024//6, byte 1
_SCRAM_ON = const(0x10)
_HASH_PASSWORD = const(0x08)
_NO_UID_LOGIN = const(0x02)
_MAX_FAILS = const(3)
_LOCKOUT_MS = const(60000)
_MAX_PEERS = const(16)
_FIELD = const(16)  # user names, passwords, keys, proofs, IVs: 16 bytes
_KEY36 = const(36)  # storedKey | serverKey | salt
_ZERO = bytes(16)


def serve(a, s, m, res, p):
    # The security resources of /1024 (Auth.serve has checked the method and answered the
    # reads of the options and iterations). Drops this module after the response if no
    # longer needed.
    try:
        cfg = a.cfg
        d = cfg.d
        opts = d.get("security", 0)
        if res in (0, 40, 41) or (res == 5 and m == _POST):  # logins: the lockout first
            rec = a.fails.get(s.peer)
            if rec is not None and rec[1] is not None:
                if ticks_diff(rec[1], a.clock()) > 0:
                    raise TapError(tapcodes.SERVICE_UNAVAILABLE)  # too many failed logins
                del a.fails[s.peer]
        if res == 0:  # basic or hashed login: user(16) + password(16) or H(pw)(16)
            from ..proto import scram

            if opts & _SCRAM_ON:
                raise TapError(tapcodes.RESOURCE_LOCKED)  # SCRAM login only
            if len(p) != 2 * _FIELD:
                raise TapError(tapcodes.NOT_ACCEPTABLE)
            gid = cfg.find_group(scram.unfield(p[:_FIELD]))
            pw = p[_FIELD:]
            hashed = bytes(pw) if opts & _HASH_PASSWORD else scram.hash_password(scram.unfield(pw))
            ok = False
            if gid is not None and gid != _ANONYMOUS:
                # H(pw) against the stored keys (PBKDF2 runs even for a user without them)
                k = _keys(cfg, gid)
                if k is None:
                    scram.keys_from_hash(hashed, b"\x01\x02\x03\x04", d["iterations"])
                else:
                    ok = equal(scram.keys_from_hash(hashed, k[2], k[3])[0], k[0])
            if not ok:
                _failed(a, s, tapcodes.NOT_ACCEPTABLE)
            _log_in(a, s, gid, "hashed" if opts & _HASH_PASSWORD else "basic")
        elif res == 1:
            logout(cfg, s)
            if s.key is not None:  # the answer still goes out encrypted, then the channel ends
                s.after.append(lambda: _end_channel(s))
        elif res == 5:
            uid = bytes.fromhex(d["uid"])
            if m == _GET:
                # the UID is what NFC proximity gives a real Tap: here, the wire (UART) or admin
                if s.peer.startswith("uart") or s.group == _ADMIN or s.profile == _ADMIN:
                    return uid
                raise TapError(tapcodes.UNAUTHORIZED)
            if opts & _NO_UID_LOGIN:
                raise TapError(tapcodes.RESOURCE_LOCKED)  # UID login disabled
            if not equal(bytes(p), uid):
                _failed(a, s, tapcodes.NOT_ACCEPTABLE)
            _log_in(a, s, _ADMIN, "UID")
        elif res == 6 or res == 42:  # PUT: security options (2 bytes) or iterations (u16, u32)
            if s.group != _ADMIN and s.profile != _ADMIN:
                raise TapError(tapcodes.UNAUTHORIZED)  # admin only
            n = len(p)
            if res == 6:
                if n != 2:
                    raise TapError(tapcodes.NOT_ACCEPTABLE)
                d["security"] = p[1] & 0x1F
                cfg.save()
                log.info("auth", "security options now 0x%04X" % d["security"])
                return None
            if n != 2 and n != 4:
                raise TapError(tapcodes.NOT_ACCEPTABLE)
            n = struct.unpack(">H" if n == 2 else ">I", p)[0]
            if n < 1:
                raise TapError(tapcodes.NOT_ACCEPTABLE)  # iterations >= 1
            d["iterations"] = n
            cfg.save()
        elif res == 40:  # SCRAM login: user(16) + client nonce -> nonce, salt, iterations
            if not opts & _SCRAM_ON:
                raise TapError(tapcodes.RESOURCE_LOCKED)  # SCRAM is not activated
            if len(p) != _FIELD + 4:
                raise TapError(tapcodes.NOT_ACCEPTABLE)
            from ..proto import scram

            name, cn = scram.decode_login(p)
            gid = cfg.find_group(name)
            keys = _keys(cfg, gid)
            sn = struct.unpack(">I", a.rand(4))[0]
            if keys is None:
                # an unknown user gets a plausible, stable salt and fails at the proof
                salt = bytearray(hashlib.sha256(bytes.fromhex(d["uid"]) + name).digest()[:4])
                salt[0] |= 1
                keys = (None, None, bytes(salt), d["iterations"])
                gid = None
            s.scram = (gid, cn, sn, keys)
            return scram.encode_login_reply(sn, keys[2], keys[3])
        elif res == 41:  # SCRAM proof -> server proof; the encrypted channel starts
            pending = s.scram
            s.scram = None
            if pending is None:
                raise TapError(tapcodes.BAD_REQUEST)  # no SCRAM login in progress
            from ..proto import scram

            gid, cn, sn, keys = pending
            stored, server, salt = keys[0], keys[1], keys[2]
            if gid is None or len(p) != _FIELD or not equal(
                bytes(p), scram.client_proof(stored, cn, sn)
            ):
                _failed(a, s, tapcodes.UNAUTHORIZED)
            _log_in(a, s, gid, "SCRAM")
            _start_channel(s, scram.session_key(cn, sn, salt, server, stored), False)
            log.info("auth", "%s: encrypted session started (SCRAM)" % s.link)
            return scram.server_proof(server, cn, sn)
        elif res == 44:  # IV(16) + encrypted frame: a new client IV with every request
            if len(p) < 32:
                raise TapError(tapcodes.BAD_REQUEST)
            return _carry(a, s, bytes(p[16:]), bytes(p[:16]))
        elif res == 45:  # IV exchange: the client's for requests, ours for responses
            if len(p) != 16:
                raise TapError(tapcodes.NOT_ACCEPTABLE)  # an IV is 16 bytes
            client = bytes(p)
            server = bytes(a.rand(16))

            def apply():
                s.iv_req = client
                s.iv_resp = server

            s.after.append(apply)
            return server
        elif res == 46:  # end of the encrypted session, after this response
            s.after.append(lambda: _end_channel(s))
        elif res == 47:  # a new session key
            key = bytes(a.rand(16))
            _start_channel(s, key, True)
            log.info("auth", "%s: encrypted session started" % s.link)
            return key
        else:  # 48
            return _carry(a, s, bytes(p))
        return None
    finally:
        s.after.append(lambda: release(s))


def release(s):
    # Drop this module and the codecs it loaded unless the session `s`
    # still needs them: an encrypted channel or a SCRAM login in progress.
    if s.key is not None or s.scram is not None:
        return
    from .. import forget

    forget("tap.login", "proto.scram", "proto.encframe", "proto.crypto", "proto.crc")


def _keys(cfg, gid):
    # -> (storedKey, serverKey, salt, iterations) of a user, or None
    g = cfg.group(gid) if gid is not None else None
    if not g or gid == _ANONYMOUS or not g.get("key"):
        return None
    from ..proto import scram

    stored, server, salt = scram.split_password_key(bytes.fromhex(g["key"]))
    return stored, server, salt, g.get("it", cfg.d["iterations"])


def _failed(a, s, code):
    # one more failed login from this link peer: after _MAX_FAILS, none for _LOCKOUT_MS
    fails = a.fails
    rec = fails.get(s.peer)
    if rec is None:
        if len(fails) >= _MAX_PEERS:  # bounded: forget the oldest entry
            del fails[next(iter(fails))]
        rec = fails[s.peer] = [0, None]
    rec[0] += 1
    log.warn("auth", "%s: login failed (%d/%d)" % (s.link, rec[0], _MAX_FAILS))
    if rec[0] >= _MAX_FAILS:
        rec[0] = 0
        rec[1] = ticks_add(a.clock(), _LOCKOUT_MS)
        log.warn("auth", "%s: logins refused for %d s" % (s.peer, _LOCKOUT_MS // 1000))
    raise TapError(code)  # bad credentials


def _log_in(a, s, gid, how):
    a.fails.pop(s.peer, None)
    g = a.cfg.group(gid) or {}
    s.group = gid
    s.profile = g.get("alias", gid)
    s.lifetime = g.get("lifetime", 0)
    s.login_ms = a.clock()
    s.scram = None
    log.info("auth", "%s: %s logged in (%s)" % (s.link, g.get("name", gid), how))


def logout(cfg, s, expired=False):
    # back to anonymous (also when the session's lifetime has passed: see Auth.guard)
    if s.group != _ANONYMOUS:
        g = cfg.group(s.group) or {}
        why = "session expired" if expired else "logged out"
        log.info("auth", "%s: %s %s" % (s.link, g.get("name", s.group), why))
    s.group = s.profile = _ANONYMOUS
    s.lifetime = 0
    s.scram = None


# -- the encrypted channel -----------------------------------------------------------------------
def _start_channel(s, key, reset_iv):
    # the key applies from the next request: this response goes out as it came. A new
    # encrypted session restarts frame ids (and IVs, for a key from /1024//47).
    def apply():
        s.key = key
        s.rx_next = 0
        if reset_iv:
            s.iv_req = s.iv_resp = _ZERO

    s.after.append(apply)


def _end_channel(s):
    if s.key is not None:
        log.info("auth", "%s: encrypted session ended" % s.link)
    s.key = None
    s.iv_req = s.iv_resp = _ZERO
    s.rx_next = 0


def _carry(a, s, body, iv=None):
    # an encrypted request -> its response, encrypted (with a new server IV after `iv`)
    if s.key is None:
        raise TapError(tapcodes.UNAUTHORIZED)  # no encrypted session
    if s.encrypted:
        raise TapError(tapcodes.BAD_REQUEST)  # nested encrypted frame
    from ..proto import DecodeError, encframe

    key = s.key
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
            resp = a.dispatcher.call(s, method, obj, inst, res, payload)
        finally:
            s.encrypted = False
    if iv is None:
        return encframe.encrypt(key, s.iv_resp, fid, resp)
    # @iotize/tap 2.7.0's ScramAuth.logout drops its keys before the answer comes and
    # decrypts it with the IV it had: the answer to a logout keeps the current IV
    server = s.iv_resp if logout else bytes(a.rand(16))

    def apply():
        if s.key is not key:  # not when the request ended the session
            return
        s.iv_req = iv
        s.iv_resp = server

    s.after.append(apply)
    return server + encframe.encrypt(key, server, fid, resp)


# -- passwords: POST /1025/{g}/2 (from tap/groups.py) --------------------------------------------
def change_password(cfg, s, gid, body):
    # a password (1-16 characters, or H(pw) with hashed logins) or its 36-byte SCRAM key ->
    # the SCRAM keys, the only form a password is kept in
    try:
        g = cfg.group(gid)
        if g is None:
            raise TapError(tapcodes.NOT_FOUND)
        if s.group != _ADMIN and s.profile != _ADMIN and (s.group != gid or gid == _ANONYMOUS):
            raise TapError(tapcodes.UNAUTHORIZED)  # only admin changes other passwords
        if gid == _ANONYMOUS:
            raise TapError(tapcodes.NOT_ACCEPTABLE)  # anonymous has no password
        from ..proto import scram

        it = cfg.d["iterations"]
        if len(body) == _KEY36:
            stored, server, salt = scram.split_password_key(body)
        else:
            if cfg.d.get("security", 0) & _HASH_PASSWORD:
                if len(body) != _FIELD:
                    raise TapError(tapcodes.NOT_ACCEPTABLE)  # hashed password is 16 bytes
                hashed = bytes(body)
            else:
                pw = scram.unfield(body)
                if not pw or len(body) > _FIELD:
                    raise TapError(tapcodes.NOT_ACCEPTABLE)  # password is 1 to 16 characters
                hashed = scram.hash_password(pw)
            salt = bytearray(os.urandom(4))
            if salt[0] == 0:
                salt[0] = 1  # an all-zero salt would disable the user
            salt = bytes(salt)
            stored, server = scram.keys_from_hash(hashed, salt, it)
        g["key"] = (stored + server + salt).hex()
        g["it"] = it
        g.pop("dflt", None)
        cfg.save()
        log.info("auth", "%s: password of %s changed" % (s.link, g.get("name", gid)))
    finally:
        release(s)
