# Tap security on both interpreters: the golden HMAC, PBKDF2, password-hash, SCRAM, CRC and
# AES vectors of tests/vectors/security.json (AES through cryptolib on micropython, through
# `cryptography` on CPython), then the board's auth service (tap/auth.py) driven in-process
# with a fake clock: logins, lockout, lifetimes, ACLs, configuration lock, encrypted frames.
try:
    from _runner import fw, load_vectors, run, setup_path
except ImportError:
    from ._runner import fw, load_vectors, run, setup_path

setup_path()

import os  # noqa: E402
import struct  # noqa: E402

from twintap.proto import DecodeError, crypto, encframe, frame, scram  # noqa: E402
from twintap.proto.crc import crc32_mpeg2  # noqa: E402

V = load_vectors("security")
GET, PUT, POST = 1, 3, 2


def unhex(s):
    return bytes.fromhex(s)


# -- golden vectors ------------------------------------------------------------------------
def test_hmac_vectors():
    for v in V["hmac"]:
        assert crypto.hmac(v["hash"], unhex(v["key"]), unhex(v["msg"])).hex() == v["mac"], v


def test_pbkdf2_vectors_plain_python_and_default():
    for v in V["pbkdf2"]:
        args = (v["hash"], unhex(v["password"]), unhex(v["salt"]), v["iterations"], v["dklen"])
        assert crypto.pbkdf2_py(*args).hex() == v["dk"], v
        assert crypto.pbkdf2(*args).hex() == v["dk"], v


def test_password_hash_vectors():
    for v in V["password_hash"]:
        assert scram.hash_password(v["password"]).hex() == v["hash"], v
    assert scram.hash_password("admin").hex() == "0155affc023aff6882f56a4e0d9c5466"


def test_scram_vectors():
    for v in V["scram"]:
        salt = unhex(v["salt"])
        h = scram.hash_password(v["password"])
        salted = crypto.pbkdf2_py("sha256", h, salt, v["iterations"], 16)
        assert salted.hex() == v["salted"], v["source"]
        stored, server = scram.keys_from_hash(h, salt, v["iterations"])
        assert stored.hex() == v["stored_key"] and server.hex() == v["server_key"]
        cn, sn = v["client_nonce"], v["server_nonce"]
        assert scram.client_proof(stored, cn, sn).hex() == v["client_proof"]
        assert scram.server_proof(server, cn, sn).hex() == v["server_proof"]
        assert scram.session_key(cn, sn, salt, server, stored).hex() == v["session_key"]


def test_password_key_vectors():
    for v in V["password_keys"]:
        key = scram.password_key(v["password"], unhex(v["salt"]), v["iterations"])
        assert key.hex() == v["key"], v["password"]
        stored, server, salt = scram.split_password_key(key)
        assert salt == unhex(v["salt"]) and len(stored) == len(server) == 16
    for bad in (bytes(35), bytes(32) + bytes(4)):  # wrong size; all-zero salt
        try:
            scram.split_password_key(bad)
        except DecodeError:
            continue
        raise AssertionError("accepted %d bytes" % len(bad))


def test_scram_login_codec():
    body = scram.encode_login("admin", 0x01020304)
    assert body == b"admin" + bytes(11) + b"\x01\x02\x03\x04"
    assert scram.decode_login(body) == (b"admin", 0x01020304)
    reply = scram.encode_login_reply(7, b"\x11\x22\x33\x44", 5000)
    assert scram.decode_login_reply(reply) == (7, b"\x11\x22\x33\x44", 5000)
    assert scram.field("a-very-long-user-name") == b"a-very-long-user"


def test_crc_vectors():
    for v in V["crc32_mpeg2"]:
        assert "%08x" % crc32_mpeg2(unhex(v["data"])) == v["crc"], v


def test_aes_and_encrypted_frame_vectors():
    for v in V["encrypted_frames"]:
        key, iv, payload = unhex(v["key"]), unhex(v["iv"]), unhex(v["payload"])
        plain = encframe.wrap(v["id"], payload)
        assert plain.hex() == v["plain"], v["source"]
        assert crypto.aes_cbc_encrypt(key, iv, plain).hex() == v["cipher"], v["source"]
        assert crypto.aes_cbc_decrypt(key, iv, unhex(v["cipher"])) == plain
        assert encframe.encrypt(key, iv, v["id"], payload).hex() == v["cipher"]
        assert encframe.decrypt(key, iv, unhex(v["cipher"])) == (v["id"], payload)
        if "apdu" in v:
            apdu = frame.encode_request(GET, 1024, None, 48, unhex(v["cipher"]))
            assert apdu.hex() == v["apdu"]


def test_encrypted_frame_errors():
    key = bytes(range(16))
    good = encframe.encrypt(key, encframe.ZERO_IV, 1, b"\x01\x00\x03\xff\xff\x00\x02")
    bad_crc = bytearray(encframe.wrap(1, b"\x01\x00\x03\xff\xff\x00\x02"))
    bad_crc[-1] ^= 1
    bad_len = bytearray(encframe.wrap(1, b"abc"))
    bad_len[2:4] = b"\x00\x40"
    bad_len[-4:] = struct.pack(">I", crc32_mpeg2(bytes(bad_len[:-4])))
    cases = [
        good[:15],  # not a block
        good + b"\x00",  # not a multiple of 16
        b"",
        crypto.aes_cbc_encrypt(key, encframe.ZERO_IV, bytes(bad_crc)),
        crypto.aes_cbc_encrypt(key, encframe.ZERO_IV, bytes(bad_len)),
        encframe.encrypt(bytes(16), encframe.ZERO_IV, 1, b"\x01\x00\x03"),  # other key
    ]
    for c in cases:
        try:
            encframe.decrypt(key, encframe.ZERO_IV, c)
        except DecodeError:
            continue
        raise AssertionError("accepted %s" % c.hex())


def test_constant_time_equal():
    assert crypto.equal(b"abc", b"abc") and not crypto.equal(b"abc", b"abd")
    assert not crypto.equal(b"abc", b"ab")


# -- the board's auth service, in-process ------------------------------------------------------
BOARD = {
    "bundles": [
        {"id": 1, "name": "sensors", "acl": {"anonymous": "r", "admin": "rw"}},
        {"id": 2, "name": "controls", "acl": {"anonymous": "rw"}},
    ],
}


class Clock:
    def __init__(self):
        self.ms = 1000

    def __call__(self):
        return self.ms


def tmp(name):
    return "/tmp/twintap-sec-%s-%s.json" % (name, bytes(os.urandom(4)).hex())


class Board:
    def __init__(self, options=None):
        twin_mod = fw("twin")
        values = fw("proto.values")
        self.files = [tmp("twin"), tmp("tap")]
        self.twin = twin_mod.Twin(self.files[0])
        R, W = twin_mod.R, twin_mod.W
        self.twin.add(twin_mod.Prop(1, "temperature", values.FLOAT32, 1, R, "C", 1))
        self.twin.add(twin_mod.Prop(5, "setpoint", values.INT16, 1, R | W, "C", 2))
        self.twin.add(twin_mod.Prop(8, "limit", values.INT16, 1, R | W, "", 1))
        self.twin.add(twin_mod.Prop(9, "orphan", values.UINT8, 1, R | W, "", 0))
        self.cfg = fw("tap.config").TapConfig(self.twin, BOARD, self.files[1])
        disp = fw("tap.dispatcher")
        self.d = disp.Dispatcher()
        self.Session = disp.Session
        fw("tap.interface").mount(self.d, self.cfg, 0x120, 0)
        fw("tap.variables").mount(self.d, self.twin, self.cfg)
        fw("tap.groups").mount(self.d, self.cfg)
        self.clock = Clock()
        auth_mod = fw("tap.auth")
        self.auth = auth_mod.Auth(self.cfg, options, clock=self.clock)
        auth_mod.mount(self.d, self.auth)

    def session(self, link="tcp#1", peer="tcp:10.0.0.1"):
        return self.Session(link, peer)

    def req(self, s, method, path, payload=b""):
        obj, inst, res = frame.parse_path(path)
        apdu = frame.encode_request(method, obj, inst, res, payload)
        return frame.decode_response(self.d.handle(apdu, s))

    def close(self):
        for f in self.files:
            for p in (f, f + ".tmp"):
                try:
                    os.remove(p)
                except OSError:
                    pass


def login_body(user, password):
    return scram.field(user) + scram.field(password)


def scram_login(b, s, user, password):
    cn = 0x0A0B0C0D
    st, data = b.req(s, GET, "/1024//40", scram.encode_login(user, cn))
    if st & 0x80:
        return st, None
    sn, salt, it = scram.decode_login_reply(data)
    stored, server = scram.keys_from_hash(scram.hash_password(password), salt, it)
    st, proof = b.req(s, GET, "/1024//41", scram.client_proof(stored, cn, sn))
    if st & 0x80:
        return st, None
    assert proof == scram.server_proof(server, cn, sn)
    return st, scram.session_key(cn, sn, salt, server, stored)


class Channel:
    # the host side of an encrypted session
    def __init__(self, b, s, key):
        self.b, self.s, self.key, self.id = b, s, key, 0
        self.iv_enc = self.iv_dec = encframe.ZERO_IV

    def req(self, method, path, payload=b""):
        obj, inst, res = frame.parse_path(path)
        inner = frame.encode_frame(method, obj, inst, res, payload)
        ct = encframe.encrypt(self.key, self.iv_enc, self.id, inner)
        self.id += 1
        st, data = self.b.req(self.s, GET, "/1024//48", ct)
        assert st == 0x45, hex(st)
        _, plain = encframe.decrypt(self.key, self.iv_dec, data)
        return frame.decode_response(plain)


def test_default_admin_login_logout_and_profile_ids():
    b = Board()
    try:
        s = b.session()
        assert b.req(s, GET, "/1024//7") == (0x45, b"\x00\x00")
        assert b.req(s, POST, "/1024//0", login_body("admin", "admin"))[0] == 0x44
        assert b.req(s, GET, "/1024//7") == (0x45, b"\xff\xff")
        assert b.req(s, GET, "/1024//2") == (0x45, b"\xff\xff")
        assert b.req(s, POST, "/1024//1")[0] == 0x44
        assert b.req(s, GET, "/1024//2") == (0x45, b"\x00\x00")
        assert b.req(s, POST, "/1024//0", login_body("supervisor", "supervisor"))[0] == 0x44
        assert b.req(s, GET, "/1024//7") == (0x45, b"\xff\xfe")
        # no password is kept, only SCRAM keys (the defaults ship as keys too)
        for g in b.cfg.d["groups"].values():
            for field in g:
                assert field in ("name", "lifetime", "alias", "key", "it", "dflt", "prov"), field
        assert len(bytes.fromhex(b.cfg.group(0xFFFF)["key"])) == 36
    finally:
        b.close()


def test_bad_credentials_and_lockout_per_peer():
    b = Board()
    try:
        s = b.session()
        assert b.req(s, POST, "/1024//0", login_body("admin", "nope"))[0] == 0x86
        assert b.req(s, POST, "/1024//0", login_body("nobody", "x"))[0] == 0x86
        assert b.req(s, POST, "/1024//0", b"short")[0] == 0x86
        assert b.req(s, POST, "/1024//0", login_body("admin", "wrong"))[0] == 0x86
        # the third failure locks this peer out for 60 s, even with the right password
        assert b.req(s, POST, "/1024//0", login_body("admin", "admin"))[0] == 0xA3
        s2 = b.session("tcp#2")  # a reconnect from the same host
        assert b.req(s2, POST, "/1024//0", login_body("admin", "admin"))[0] == 0xA3
        other = b.session("tcp#3", "tcp:10.0.0.2")
        assert b.req(other, POST, "/1024//0", login_body("admin", "admin"))[0] == 0x44
        b.clock.ms += 59000
        assert b.req(s2, POST, "/1024//0", login_body("admin", "admin"))[0] == 0xA3
        b.clock.ms += 1000
        assert b.req(s2, POST, "/1024//0", login_body("admin", "admin"))[0] == 0x44
    finally:
        b.close()


def test_session_lifetime_in_minutes():
    b = Board()
    try:
        s = b.session()
        assert b.req(s, POST, "/1024//0", login_body("admin", "admin"))[0] == 0x44
        assert b.req(s, GET, "/1025/65535/4") == (0x45, b"\x00\x1e")  # 30 minutes
        b.clock.ms += 29 * 60000
        assert b.req(s, GET, "/1024//7") == (0x45, b"\xff\xff")
        b.clock.ms += 60000
        assert b.req(s, GET, "/1024//7") == (0x45, b"\x00\x00")  # expired: anonymous
        # lifetime 0 never expires
        assert b.req(s, POST, "/1024//0", login_body("admin", "admin"))[0] == 0x44
        assert b.req(s, PUT, "/1025/65535/4", b"\x00\x00")[0] == 0x44
        assert b.req(s, POST, "/1024//0", login_body("admin", "admin"))[0] == 0x44
        b.clock.ms += 1000 * 60000
        assert b.req(s, GET, "/1024//7") == (0x45, b"\xff\xff")
    finally:
        b.close()


def test_acl_rights_on_values_and_bundles():
    b = Board()
    try:
        anon = b.session()
        assert b.req(anon, POST, "/1029/5/5", b"\x00\x07")[0] == 0x44  # controls: rw
        assert b.req(anon, POST, "/1029/8/5", b"\x00\x07")[0] == 0x81  # sensors: r
        assert b.req(anon, GET, "/1029/8/4")[0] == 0x45
        assert b.req(anon, GET, "/1029/8/3") == (0x45, b"\x41\x00\x01")
        assert b.req(anon, GET, "/1029/9/4")[0] == 0x81  # outside any bundle: admin only
        admin = b.session("tcp#2")
        assert b.req(admin, POST, "/1024//0", login_body("admin", "admin"))[0] == 0x44
        assert b.req(admin, POST, "/1029/8/5", b"\x00\x07")[0] == 0x44
        assert b.req(admin, GET, "/1029/8/3") == (0x45, b"\x61\xff\xff\x03")
        assert b.req(admin, GET, "/1029/9/4")[0] == 0x45
        assert b.req(admin, POST, "/1029/1/5", bytes(4))[0] == 0x81  # read-only property
        # no read right on a bundle: its values are refused
        assert b.req(anon, PUT, "/1028/1/0", b"\x41\x00\x00")[0] == 0x44
        assert b.req(anon, GET, "/1028/1/1")[0] == 0x81
        assert b.req(admin, GET, "/1028/1/1")[0] == 0x45
        # a user inherits its profile's rights (alias)
        assert b.req(admin, POST, "/1025/7/65535")[0] == 0x44
        assert b.req(admin, PUT, "/1025/7/0", b"tech")[0] == 0x44
        assert b.req(admin, PUT, "/1025/9/0", b"tech")[0] == 0x84
        assert b.req(admin, POST, "/1025/8/65535")[0] == 0x44
        assert b.req(admin, PUT, "/1025/8/0", b"tech")[0] == 0x86  # names are unique
        assert b.req(admin, PUT, "/1025/7/5", b"\x00\x03")[0] == 0x44  # alias: profile 3
        assert b.req(admin, PUT, "/1028/1/0", b"\x41\x03\x03")[0] == 0x44
        assert b.req(admin, POST, "/1025/7/2", b"techpw")[0] == 0x44
        tech = b.session("tcp#3")
        assert b.req(tech, POST, "/1024//0", login_body("tech", "techpw"))[0] == 0x44
        assert b.req(tech, GET, "/1024//7") == (0x45, b"\x00\x07")
        assert b.req(tech, GET, "/1024//2") == (0x45, b"\x00\x03")
        assert b.req(tech, POST, "/1029/8/5", b"\x00\x09")[0] == 0x44
    finally:
        b.close()


def test_configuration_locks_once_the_admin_password_changes():
    b = Board()
    try:
        anon = b.session()
        assert b.req(anon, PUT, "/1024//9", b"open")[0] == 0x44  # factory state: open
        assert b.req(anon, PUT, "/1024//6", b"\x00\x08")[0] == 0x81  # options: admin only
        assert b.req(anon, PUT, "/1024//42", b"\x03\xe8")[0] == 0x81
        assert b.req(anon, POST, "/1025/65535/2", b"x")[0] == 0x81  # others' passwords
        admin = b.session("tcp#2")
        assert b.req(admin, POST, "/1024//0", login_body("admin", "admin"))[0] == 0x44
        key = scram.password_key("s3cret!", b"\x5a\x01\x02\x03", 5000)
        assert b.req(admin, POST, "/1025/65535/2", key)[0] == 0x44
        assert b.cfg.locked()
        for method, path, payload in (
            (PUT, "/1024//9", b"locked"), (PUT, "/1028/1/0", b"\x41\x00\x03"),
            (POST, "/1028/5/65535", b""), (PUT, "/1029/5/8", b"x:y"),
            (POST, "/3//4", b""), (POST, "/3//5", b""), (POST, "/1025/4/65535", b""),
        ):
            assert b.req(anon, method, path, payload)[0] == 0x81, path
        assert b.req(anon, POST, "/1029/5/5", b"\x00\x01")[0] == 0x44  # values: ACLs only
        assert b.req(admin, PUT, "/1024//9", b"locked")[0] == 0x44
        # the old password is gone, the new one works
        assert b.req(anon, POST, "/1024//0", login_body("admin", "admin"))[0] == 0x86
        assert b.req(anon, POST, "/1024//0", login_body("admin", "s3cret!"))[0] == 0x44
        # a user may change its own password, not another one
        sup = b.session("tcp#3", "tcp:10.0.0.3")
        assert b.req(sup, POST, "/1024//0", login_body("supervisor", "supervisor"))[0] == 0x44
        assert b.req(sup, POST, "/1025/65534/2", b"mine")[0] == 0x44
        assert b.req(sup, POST, "/1025/65535/2", b"theirs")[0] == 0x81
        assert b.req(sup, POST, "/1025/0/2", b"x")[0] == 0x81
        assert b.req(admin, POST, "/1025/0/2", b"x")[0] == 0x86
        text = open(b.files[1]).read()
        assert "s3cret" not in text and "mine" not in text and "theirs" not in text
    finally:
        b.close()


def test_hashed_login_and_uid_login():
    b = Board()
    try:
        admin = b.session("uart", "uart")
        uid = b.req(admin, GET, "/1024//5")[1]  # the wire (UART) may read the UID
        assert len(uid) == 8
        tcp = b.session()
        assert b.req(tcp, GET, "/1024//5")[0] == 0x81
        assert b.req(tcp, POST, "/1024//5", bytes(8))[0] == 0x86
        assert b.req(tcp, POST, "/1024//5", uid)[0] == 0x44
        assert b.req(tcp, GET, "/1024//7") == (0x45, b"\xff\xff")
        assert b.req(tcp, GET, "/1024//5") == (0x45, uid)  # admin may
        assert b.req(tcp, PUT, "/1024//6", b"\x00\x0a")[0] == 0x44  # hash + no UID login
        assert b.req(tcp, GET, "/1024//6") == (0x45, b"\x00\x0a")
        assert b.req(tcp, POST, "/1024//5", uid)[0] == 0x87
        h = scram.hash_password("admin")
        assert b.req(tcp, POST, "/1024//0", scram.field("admin") + h)[0] == 0x44
        assert b.req(tcp, POST, "/1024//0", login_body("admin", "admin"))[0] == 0x86
        # hash mode: a 16-byte password body is H(pw)
        assert b.req(tcp, POST, "/1025/65534/2", scram.hash_password("sup2"))[0] == 0x44
        assert b.req(tcp, POST, "/1024//0", scram.field("supervisor")
                     + scram.hash_password("sup2"))[0] == 0x44
    finally:
        b.close()


def test_login_code_is_loaded_for_a_login_and_dropped_after():
    # tap/login.py (and the SCRAM/AES codecs) stay in the heap only while a session needs
    # them: a SCRAM exchange in progress or an encrypted channel
    import sys

    b = Board()
    login = fw("tap.auth").__name__.rsplit(".", 1)[0] + ".login"
    try:
        s = b.session()
        assert b.req(s, POST, "/1024//0", login_body("admin", "admin"))[0] == 0x44
        assert login not in sys.modules
        assert b.req(s, PUT, "/1024//6", b"\x00\x18")[0] == 0x44  # SCRAM on
        assert b.req(s, POST, "/1024//1")[0] == 0x44
        assert login not in sys.modules
        cn = 0x01020304
        st, data = b.req(s, GET, "/1024//40", scram.encode_login("admin", cn))
        assert st == 0x45 and login in sys.modules  # between /1024//40 and /1024//41
        sn, salt, it = scram.decode_login_reply(data)
        stored, _ = scram.keys_from_hash(scram.hash_password("admin"), salt, it)
        assert b.req(s, GET, "/1024//41", scram.client_proof(stored, cn, sn))[0] == 0x45
        assert login in sys.modules  # the encrypted channel is open
        s.key = None  # as at the end of the channel
        assert b.req(s, GET, "/1024//7")[0] == 0x45
        assert b.req(s, POST, "/1024//1")[0] == 0x44
        assert login not in sys.modules
    finally:
        b.close()


def test_scram_login_and_encrypted_session():
    b = Board()
    try:
        s = b.session()
        assert b.req(s, GET, "/1024//40", scram.encode_login("admin", 1))[0] == 0x87  # off
        assert b.req(s, POST, "/1024//0", login_body("admin", "admin"))[0] == 0x44
        assert b.req(s, PUT, "/1024//6", b"\x00\x18")[0] == 0x44
        assert b.req(s, POST, "/1024//1")[0] == 0x44
        assert b.req(s, POST, "/1024//0", login_body("admin", "admin"))[0] == 0x87  # SCRAM only
        assert b.req(s, GET, "/1024//42") == (0x45, b"\x00\x00\x13\x88")
        st, key = scram_login(b, s, "admin", "admin")
        assert st == 0x45 and len(key) == 16
        ch = Channel(b, s, key)
        assert ch.req(GET, "/1024//7") == (0x45, b"\xff\xff")
        assert ch.req(POST, "/1029/8/5", b"\x00\x05") == (0x44, b"")
        assert ch.req(GET, "/1029/8/4") == (0x45, b"\x00\x05")
        assert ch.req(GET, "/1029/99/4") == (0x84, b"")
        # IV exchange inside the channel: the answer still uses the old IVs
        client_iv = bytes(range(16))
        st, server_iv = ch.req(GET, "/1024//45", client_iv)
        assert st == 0x45 and len(server_iv) == 16
        ch.iv_enc, ch.iv_dec = client_iv, server_iv
        assert ch.req(GET, "/1024//7") == (0x45, b"\xff\xff")
        # replayed or stale frame ids are refused
        inner = frame.encode_frame(GET, 1024, None, 7)
        stale = encframe.encrypt(key, ch.iv_enc, ch.id - 1, inner)
        assert b.req(s, GET, "/1024//48", stale)[0] == 0x80
        assert b.req(s, GET, "/1024//48", b"\x00" * 15)[0] == 0x80  # bad length
        garbage = encframe.encrypt(bytes(16), ch.iv_enc, ch.id, inner)  # bad CRC
        assert b.req(s, GET, "/1024//48", garbage)[0] == 0x80
        assert ch.req(GET, "/1024//7") == (0x45, b"\xff\xff")  # still fine
        # logout: answered encrypted, then the channel ends
        assert ch.req(POST, "/1024//1") == (0x44, b"")
        after = encframe.encrypt(key, ch.iv_enc, ch.id, inner)
        assert b.req(s, GET, "/1024//48", after)[0] == 0x81
        # wrong password -> UNAUTHORIZED at the proof; unknown users fail the same way
        assert scram_login(b, s, "admin", "nope")[0] == 0x81
        assert scram_login(b, s, "ghost", "x")[0] == 0x81
        assert scram_login(b, s, "admin", "again")[0] == 0x81
        assert scram_login(b, s, "admin", "admin")[0] == 0xA3  # 3 failures: locked out
    finally:
        b.close()


def test_new_session_key_iv_per_request_and_require_encryption():
    b = Board({"require_encryption": True})
    try:
        s = b.session()
        assert b.req(s, POST, "/1029/5/5", b"\x00\x01")[0] == 0x81  # a write in clear
        assert b.req(s, GET, "/1029/5/4")[0] == 0x45  # reads stay open
        st, key = b.req(s, GET, "/1024//47")
        assert st == 0x45 and len(key) == 16
        ch = Channel(b, s, key)
        st, server_iv = b.req(s, GET, "/1024//45", b"\x01" * 16)  # in clear, after /47
        ch.iv_enc, ch.iv_dec = b"\x01" * 16, server_iv
        assert ch.req(POST, "/1029/5/5", b"\x00\x02") == (0x44, b"")
        # /1024//44: a new client IV with every request, the server's comes back
        iv = b"\x02" * 16
        inner = frame.encode_frame(GET, 1029, 5, 4)
        st, data = b.req(s, GET, "/1024//44", iv + encframe.encrypt(key, iv, ch.id, inner))
        assert st == 0x45
        _, plain = encframe.decrypt(key, data[:16], data[16:])
        assert frame.decode_response(plain) == (0x45, b"\x00\x02")
        # a new key restarts the frame ids
        st, key2 = b.req(s, GET, "/1024//47")
        ch = Channel(b, s, key2)
        assert ch.req(GET, "/1029/5/4") == (0x45, b"\x00\x02")
    finally:
        b.close()


if __name__ == "__main__":
    run(globals())
