# Tap variable types and value converters (spec tap-protocol.md section 7).
# Type byte: bits 7-6 domain, bits 5-0 data type. Values are count x size, big-endian.
# size(), parse() and the type names only clients use (the client's half) are in
# values_client.py, reached through this module (values.parse, values.INT16) and imported on
# first use.
import struct

from . import DecodeError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# The types and domains the board names; INT8 01, INT16 02, INT32 03, UINT16 22, UINT32 23,
# DOMAIN_TARGET 0 and DOMAIN_GPIO 1 are named for clients in values_client.py.
BOOLEAN = const(0x00)
ASCII = const(0x08)
FLOAT32 = const(0x13)
UINT8 = const(0x21)

DOMAIN_STATIC = const(2)  # IN_TAP_STATIC: kept in the Tap's flash
DOMAIN_VOLATILE = const(3)  # IN_TAP_VOLATIL

# The known types, in one order, as constants in flash rather than dicts built in the heap:
# their codes (as characters), struct codes and sizes, and the names board files and the CLI use.
_CODES = "\x00\x01\x02\x03\x08\x13\x21\x22\x23"
_STRUCT = "BbhisfBHI"
_SIZES = b"\x01\x01\x02\x04\x01\x04\x01\x02\x04"
_NAMES = "bool int8 int16 int32 ascii float32 uint8 uint16 uint32"
_NOT_ACCEPTABLE = const(0x86)


def _index(t, need=True):
    # index of type t in the tables above; KeyError (or -1 when not needed) for an unknown type
    i = _CODES.find(chr(t)) if 0 <= t < 0x40 else -1
    if i < 0 and need:
        raise KeyError(t)
    return i


def type_code(name_or_code):
    # "uint16" or 0x22 -> 0x22; ValueError for anything else
    if isinstance(name_or_code, int):
        if _index(name_or_code & 0x3F, False) >= 0:
            return name_or_code & 0x3F
    elif isinstance(name_or_code, str) and name_or_code and " " not in name_or_code:
        i = (" " + _NAMES + " ").find(" " + name_or_code + " ")
        if i >= 0:
            return ord(_CODES[_NAMES[:i].count(" ")])
    raise ValueError("unknown variable type %r" % (name_or_code,))


def type_name(t):
    return _NAMES.split(" ")[_index(t & 0x3F)]


def type_byte(domain, t):
    return ((domain & 3) << 6) | (t & 0x3F)


def split_type_byte(b):
    # -> (domain, type); DecodeError(0x86) for an unknown data type
    t = b & 0x3F
    if _index(t, False) < 0:
        raise DecodeError("unknown variable type 0x%02X" % b, _NOT_ACCEPTABLE)
    return b >> 6, t


def check(t, v):
    # Normalise a Python value for type t (bool/int/float/str); ValueError if it does not fit
    if t == BOOLEAN:
        if isinstance(v, bool) or v in (0, 1):
            return bool(v)
        raise ValueError("not %s: %r" % ("a boolean", v))
    if t == ASCII:
        if not isinstance(v, str):
            raise ValueError("not %s: %r" % ("a string", v))
        for c in v:
            if ord(c) > 0x7F or ord(c) == 0:
                raise ValueError("not %s: %r" % ("printable ASCII", v))
        return v
    if t == FLOAT32:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError("not %s: %r" % ("a number", v))
        f = float(v)
        if f != f or f in (float("inf"), float("-inf")) or abs(f) > 3.4028234663852886e38:
            raise ValueError("not %s: %r" % ("a finite float32", v))
        return f
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v == int(v):
            v = int(v)
        else:
            raise ValueError("not %s: %r" % ("an integer", v))
    i = _index(t)
    if t == BOOLEAN or t == ASCII or t == FLOAT32:
        raise KeyError(t)
    hi = 1 << (8 * _SIZES[i])
    if t & 0x20:  # unsigned
        lo = 0
    else:
        hi >>= 1
        lo = -hi
    hi -= 1
    if v < lo or v > hi:
        raise ValueError("%d is out of range %d..%d for %s" % (v, lo, hi, type_name(t)))
    return v


def encode(t, value, count=1):
    # Python value (a list when count > 1, a str for ascii) -> wire bytes
    if t == ASCII:
        raw = check(t, value).encode()
        if len(raw) > count:
            raise ValueError("string longer than %d characters" % count)
        return raw
    if count == 1:
        value = [value]
    if len(value) != count:
        raise ValueError("%d values for %d elements" % (len(value), count))
    i = _index(t)
    n = _SIZES[i]
    out = bytearray(n * count)
    code = ">" + _STRUCT[i]
    for i in range(count):
        struct.pack_into(code, out, i * n, check(t, value[i]))
    return bytes(out)


def decode(t, data, count=1):
    # wire bytes -> Python value; DecodeError(0x86) when the length does not fit the type
    if t == ASCII:
        if len(data) > count:
            raise DecodeError("string longer than %d characters" % count, _NOT_ACCEPTABLE)
        raw = bytes(data)
        i = raw.find(b"\x00")
        if i >= 0:
            raw = raw[:i]
        try:
            return check(t, raw.decode())
        except (ValueError, UnicodeError):
            raise DecodeError("not printable ASCII", _NOT_ACCEPTABLE)
    i = _index(t)
    n = _SIZES[i]
    if len(data) != n * count:
        raise DecodeError(
            "%s x%d takes %d bytes, not %d" % (type_name(t), count, n * count, len(data)),
            _NOT_ACCEPTABLE,
        )
    if t == BOOLEAN:
        # @iotize/tap encodes false as 0xFE and true as 0x01: only bit 0 counts
        vals = [bool(data[i] & 1) for i in range(count)]
    else:
        code = ">" + _STRUCT[i]
        vals = [struct.unpack_from(code, data, i * n)[0] for i in range(count)]
        if t == FLOAT32:
            for i in range(count):
                if vals[i] != vals[i] or vals[i] in (float("inf"), float("-inf")):
                    raise DecodeError("not a finite float32", _NOT_ACCEPTABLE)
    return vals[0] if count == 1 else vals


def encode_version(text):
    # "a.b.c" -> a u8, b u8, c u16 ("1.2.300" -> 0102012c)
    parts = text.split(".")
    if len(parts) != 3:
        raise ValueError("version must look like a.b.c: %r" % text)
    a, b, c = int(parts[0]), int(parts[1]), int(parts[2])
    if not (0 <= a <= 255 and 0 <= b <= 255 and 0 <= c <= 65535):
        raise ValueError("version out of range: %r" % text)
    return struct.pack(">BBH", a, b, c)


def decode_version(data):
    if len(data) != 4:
        raise DecodeError("a version takes 4 bytes", _NOT_ACCEPTABLE)
    a, b, c = struct.unpack(">BBH", data)
    return "%d.%d.%d" % (a, b, c)


def __getattr__(name):
    # the client's half, on first use (a board never needs it)
    from . import values_client

    return getattr(values_client, name)
