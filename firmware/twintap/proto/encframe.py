# Tap encrypted frames (spec tap-protocol.md section 4):
#   plaintext = id u16 | len u16 | payload | zero padding | CRC-32/MPEG-2 u32 (all BE),
#   padded so that the whole is a multiple of 16, then AES-128-CBC from the frame's IV.
# Requests carry a bare TapRequestFrame; responses carry status | data | 90 00.
import struct

from . import DecodeError
from .crc import crc32_mpeg2
from .crypto import aes_cbc_decrypt, aes_cbc_encrypt

ZERO_IV = bytes(16)


def wrap(frame_id, payload):
    n = len(payload)
    pad = (16 - ((8 + n) % 16)) % 16
    body = struct.pack(">HH", frame_id & 0xFFFF, n) + bytes(payload) + bytes(pad)
    return body + struct.pack(">I", crc32_mpeg2(body))


def unwrap(plain):
    # -> (id, payload); DecodeError on a bad length or CRC
    if len(plain) < 16 or len(plain) % 16:
        raise DecodeError("encrypted frame is not a multiple of 16 bytes")
    if crc32_mpeg2(memoryview(plain)[:-4]) != struct.unpack_from(">I", plain, len(plain) - 4)[0]:
        raise DecodeError("encrypted frame CRC mismatch")
    frame_id, n = struct.unpack_from(">HH", plain)
    if 4 + n > len(plain) - 4:
        raise DecodeError("encrypted frame length %d does not fit" % n)
    return frame_id, bytes(plain[4 : 4 + n])


def encrypt(key, iv, frame_id, payload):
    return aes_cbc_encrypt(key, iv, wrap(frame_id, payload))


def decrypt(key, iv, data):
    # ciphertext -> (id, payload); DecodeError on bad input
    return unwrap(aes_cbc_decrypt(key, iv, data))
