# The client's half of the TLV codec (tlv.py): decoding, which only readers of bundle values
# need (the host, the tests). Reached through tlv.decode & co. (tlv.__getattr__).
from . import DecodeError

OBJECT_INSTANCE = 0
RESOURCE_INSTANCE = 1
MULTIPLE_RESOURCE = 2
RESOURCE_VALUE = 3


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
