# OMA LwM2M TLV as the Tap uses it for bundle values (spec tap-protocol.md section 7):
# header byte = type<<6 | (id > 255)<<5 | length-field size<<3 | length (when < 8).
# A bundle = one type-2 node (id = bundle id) holding type-3 nodes (id = variable id).
# A board only encodes; decode, decode_bundle and the node type names (the client's half) are
# in tlv_client.py, reached through this module (tlv.decode) and imported on first use.
import struct

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# node types: 0 object instance, 1 resource instance, 2 multiple resource, 3 resource value
# (their public names, tlv.RESOURCE_VALUE & co., are in tlv_client.py)
_MULTIPLE_RESOURCE = const(2)
_RESOURCE_VALUE = const(3)


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
    body = b"".join(encode(_RESOURCE_VALUE, vid, raw) for vid, raw in items)
    return encode(_MULTIPLE_RESOURCE, bundle_id, body)


def __getattr__(name):
    # the client's half, on first use (a board never needs it)
    from . import tlv_client

    return getattr(tlv_client, name)
