# HMAC, PBKDF2 and AES-128-CBC on both interpreters (spec tap-protocol.md sections 4-5).
# MicroPython has hashlib (sha1, sha256) and cryptolib but no hmac module: HMAC and PBKDF2
# are written here in plain Python (CPython takes hashlib.pbkdf2_hmac when it has it, the
# result is the same). AES: cryptolib.aes(key, 2, iv) on MicroPython (a new object per
# frame), the `cryptography` package on CPython. Never log what passes through here.
import hashlib

from . import DecodeError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_BLOCK = const(64)  # SHA-1 and SHA-256 block size
_CBC = const(2)
_fast_pbkdf2 = getattr(hashlib, "pbkdf2_hmac", None)


def _hash(name):
    return getattr(hashlib, name)


def _pads(h, key):
    if len(key) > _BLOCK:
        key = h(key).digest()
    key = bytes(key) + bytes(_BLOCK - len(key))
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _mac(h, ipad, opad, msg):
    x = h(ipad)
    x.update(msg)
    y = h(opad)
    y.update(x.digest())
    return y.digest()


def hmac(name, key, msg):
    # HMAC-<name>(key, msg); name "sha1" or "sha256"
    h = _hash(name)
    ipad, opad = _pads(h, key)
    return _mac(h, ipad, opad, msg)


def pbkdf2_py(name, password, salt, iterations, dklen):
    # PBKDF2-HMAC-<name> in plain Python (what MicroPython runs)
    h = _hash(name)
    ipad, opad = _pads(h, password)
    out = b""
    block = 1
    while len(out) < dklen:
        u = _mac(h, ipad, opad, bytes(salt) + block.to_bytes(4, "big"))
        n = len(u)
        t = int.from_bytes(u, "big")
        for _ in range(iterations - 1):
            u = _mac(h, ipad, opad, u)
            t ^= int.from_bytes(u, "big")
        out += t.to_bytes(n, "big")
        block += 1
    return out[:dklen]


def pbkdf2(name, password, salt, iterations, dklen):
    if iterations < 1:
        raise ValueError("PBKDF2 needs at least one iteration")
    if _fast_pbkdf2 is not None:
        return _fast_pbkdf2(name, bytes(password), bytes(salt), iterations, dklen)
    return pbkdf2_py(name, password, salt, iterations, dklen)


def equal(a, b):
    # constant-time comparison of two byte strings
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


try:
    import cryptolib as _aes_mod
except ImportError:
    try:
        import ucryptolib as _aes_mod
    except ImportError:
        _aes_mod = None


def _check(key, iv, data):
    if len(key) != 16 or len(iv) != 16:
        raise DecodeError("AES-128 takes a 16-byte key and IV")
    if not data or len(data) % 16:
        raise DecodeError("AES-CBC data must be a non-empty multiple of 16 bytes")


if _aes_mod is not None:

    def aes_cbc_encrypt(key, iv, data):
        _check(key, iv, data)
        return bytes(_aes_mod.aes(bytes(key), _CBC, bytes(iv)).encrypt(bytes(data)))

    def aes_cbc_decrypt(key, iv, data):
        _check(key, iv, data)
        return bytes(_aes_mod.aes(bytes(key), _CBC, bytes(iv)).decrypt(bytes(data)))

else:  # CPython: the `cryptography` package

    def _cipher(key, iv):
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        return Cipher(algorithms.AES(bytes(key)), modes.CBC(bytes(iv)))

    def aes_cbc_encrypt(key, iv, data):
        _check(key, iv, data)
        e = _cipher(key, iv).encryptor()
        return e.update(bytes(data)) + e.finalize()

    def aes_cbc_decrypt(key, iv, data):
        _check(key, iv, data)
        d = _cipher(key, iv).decryptor()
        return d.update(bytes(data)) + d.finalize()
