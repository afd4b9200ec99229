# CRC-32/MPEG-2: poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final XOR.
# Used by Tap encrypted frames and single packets (spec tap-protocol.md section 3).
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_POLY = const(0x04C11DB7)
_table = None


def _make_table():
    t = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ _POLY) if c & 0x80000000 else (c << 1)
        t.append(c & 0xFFFFFFFF)
    return t


def crc32_mpeg2(data, crc=0xFFFFFFFF):
    # `crc` lets a caller continue over several buffers.
    global _table
    if _table is None:
        _table = _make_table()
    t = _table
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ t[((crc >> 24) ^ b) & 0xFF]
    return crc
