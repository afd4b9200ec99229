# OMA LwM2M TLV as the Tap uses it for bundle values (spec tap-protocol.md section 7):
# header byte = type<<6 | (id > 255)<<5 | length-field size<<3 | length (when < 8).
# A bundle = one type-2 node (id = bundle id) holding type-3 nodes (id = variable id).
import struct

from . import DecodeError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


OBJECT_INSTANCE = const(0)
RESOURCE_INSTANCE = const(1)
MULTIPLE_RESOURCE = const(2)
RESOURCE_VALUE = const(3)


def encode(kind, ident, value):
    n = len(value)
    h = kind << 6
    if ident > 0xFF:
        h |= 0x20
        idb = struct.pack(">H", ident)
    else:
        idb = bytes((ident,))
    if n < 8:
        h |= n
        lb = b""
    elif n < 0x100:
        h |= 1 << 3
        lb = bytes((n,))
    elif n < 0x10000:
        h |= 2 << 3
        lb = struct.pack(">H", n)
    else:
        h |= 3 << 3
        lb = struct.pack(">I", n)[1:]
    return bytes((h,)) + idb + lb + bytes(value)


def encode_bundle(bundle_id, items):
    # items: [(variable id, raw value bytes)] -> type-2 node
    body = b"".join(encode(RESOURCE_VALUE, vid, raw) for vid, raw in items)
    return encode(MULTIPLE_RESOURCE, bundle_id, body)


def decode(buf):
    # -> [(kind, id, value bytes)] for the nodes at this level
    out = []
    i = 0
    n = len(buf)
    while i < n:
        h = buf[i]
        i += 1
        wide = h & 0x20
        lsize = (h >> 3) & 3
        need = (2 if wide else 1) + lsize
        if i + need > n:
            raise DecodeError("TLV header truncated")
        if wide:
            ident = (buf[i] << 8) | buf[i + 1]
            i += 2
        else:
            ident = buf[i]
            i += 1
        if lsize == 0:
            length = h & 7
        else:
            length = 0
            for _ in range(lsize):
                length = (length << 8) | buf[i]
                i += 1
        if i + length > n:
            raise DecodeError("TLV value truncated")
        out.append((h >> 6, ident, bytes(buf[i : i + length])))
        i += length
    return out


def decode_bundle(buf):
    # type-2 node -> (bundle id, [(variable id, raw)])
    nodes = decode(buf)
    if len(nodes) != 1 or nodes[0][0] != MULTIPLE_RESOURCE:
        raise DecodeError("a bundle is one multiple-resource TLV node")
    kids = decode(nodes[0][2])
    return nodes[0][1], [(vid, raw) for kind, vid, raw in kids]
