# IoTize Tap credentials (spec tap-protocol.md section 5): the login password hash H(pw)
# and the SCRAM variant of the Tap (the proof is the HMAC itself, no XOR as in RFC 5802).
#   H(pw)      = PBKDF2-HMAC-SHA1(pw, "n0 salt in 1oTi2e", 4096)[0:16]
#   salted     = PBKDF2-HMAC-SHA256(H(pw), salt, iterations, 16)
#   storedKey  = PBKDF2-HMAC-SHA256(salted, "ClientKey", 2, 16)
#   serverKey  = PBKDF2-HMAC-SHA256(salted, "ServerKey", 2, 16)
#   clientProof = HMAC-SHA256(storedKey, cn | storedKey | sn)[0:16]
#   serverProof = HMAC-SHA256(serverKey, sn | serverKey | cn)[0:16]
#   sessionKey  = HMAC-SHA256(serverKey, cn | serverKey | salt | storedKey | sn)[0:16]
# Nonces are u32 big-endian. A Tap keeps only storedKey | serverKey | salt per user.
import struct

from . import DecodeError
from .crypto import hmac, pbkdf2

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


KEY_SIZE = const(16)
SALT_SIZE = const(4)
PASSWORD_KEY_SIZE = const(36)  # storedKey | serverKey | salt
FIELD = const(16)  # user names and passwords on the wire: 16 bytes, zero-padded
HASH_SALT = b"n0 salt in 1oTi2e"
HASH_ITERATIONS = const(4096)
DEFAULT_ITERATIONS = const(5000)  # the IoTize configurator's default


def field(text):
    # "admin" -> 16 bytes, zero-padded (longer names are truncated, as the client does)
    raw = text.encode() if isinstance(text, str) else bytes(text)
    raw = raw[:FIELD]
    return raw + bytes(FIELD - len(raw))


def unfield(raw):
    # 16-byte zero-padded field -> bytes without the padding
    raw = bytes(raw)
    i = raw.find(b"\x00")
    return raw[:i] if i >= 0 else raw


def hash_password(password):
    # H(pw): what a hashed login sends, and the input of the SCRAM keys
    pw = password.encode() if isinstance(password, str) else bytes(password)
    return pbkdf2("sha1", pw, HASH_SALT, HASH_ITERATIONS, KEY_SIZE)


def keys_from_hash(hashed, salt, iterations):
    # H(pw), salt, iterations -> (storedKey, serverKey)
    salted = pbkdf2("sha256", hashed, salt, iterations, KEY_SIZE)
    return (
        pbkdf2("sha256", salted, b"ClientKey", 2, KEY_SIZE),
        pbkdf2("sha256", salted, b"ServerKey", 2, KEY_SIZE),
    )


def password_key(password, salt, iterations):
    # the 36-byte body of POST /1025/{g}/2 under SCRAM: storedKey | serverKey | salt
    stored, server = keys_from_hash(hash_password(password), salt, iterations)
    return stored + server + bytes(salt)


def split_password_key(raw):
    # 36 bytes -> (storedKey, serverKey, salt); DecodeError otherwise
    if len(raw) != PASSWORD_KEY_SIZE:
        raise DecodeError("a SCRAM password key is 36 bytes", 0x86)
    raw = bytes(raw)
    salt = raw[32:36]
    if salt == bytes(SALT_SIZE):
        raise DecodeError("an all-zero salt disables the user", 0x86)
    return raw[0:16], raw[16:32], salt


def _proof(key, n1, n2):
    return hmac("sha256", key, struct.pack(">I", n1) + key + struct.pack(">I", n2))[:KEY_SIZE]


def client_proof(stored_key, client_nonce, server_nonce):
    return _proof(stored_key, client_nonce, server_nonce)


def server_proof(server_key, client_nonce, server_nonce):
    return _proof(server_key, server_nonce, client_nonce)


def session_key(client_nonce, server_nonce, salt, server_key, stored_key):
    msg = (
        struct.pack(">I", client_nonce) + server_key + bytes(salt) + stored_key
        + struct.pack(">I", server_nonce)
    )
    return hmac("sha256", server_key, msg)[:KEY_SIZE]


def encode_login(username, client_nonce):
    # GET /1024//40 body: user (16) | clientNonce u32
    return field(username) + struct.pack(">I", client_nonce)


def decode_login(body):
    # -> (user name bytes, client nonce)
    if len(body) != FIELD + 4:
        raise DecodeError("SCRAM login is user(16) + nonce(4)", 0x86)
    return unfield(body[:FIELD]), struct.unpack_from(">I", body, FIELD)[0]


def encode_login_reply(server_nonce, salt, iterations):
    return struct.pack(">I", server_nonce) + bytes(salt) + struct.pack(">I", iterations)


def decode_login_reply(data):
    # -> (server nonce, salt, iterations)
    if len(data) < 12:
        raise DecodeError("SCRAM login reply is nonce(4) + salt(4) + iterations(4)")
    nonce, it = struct.unpack_from(">I", data)[0], struct.unpack_from(">I", data, 8)[0]
    return nonce, bytes(data[4:8]), it
