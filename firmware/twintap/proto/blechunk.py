# Tap over BLE, the facts the board and the host share (spec tap-protocol.md section 8):
# the two GATT services, the advertising data, and the legacy chunking of the LwM2M service
# ("SPP over BLE"), the same in both directions (tap-background.md 5.1):
#   wrapped = frame | checksum (sum of the frame's bytes mod 256)
#   pieces of 19 bytes where the piece at offset 0 is the short remainder (len % 19, or 19)
#   packet  = offset u8 (mod 256) | piece, sent from the highest offset down; offset 0 ends
# The receiver stores each piece at its offset, ends on offset 0, then checks and strips the
# checksum; its buffer holds 255 bytes (so a frame is at most 254 bytes).
# Heap: the sender works in place in one buffer (wrapped frame at [1:], each packet's offset
# byte written just before its piece), so the board's link needs no packet buffer. The
# board loads this module to register its services and while a central is connected only
# (links/ble.py).
from . import DecodeError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_PIECE = const(19)  # frame bytes per packet: 20-byte packets, what an ATT MTU of 23 carries
_MAX_WRAPPED = const(255)  # the reassembly buffer: frame + checksum
MAX_FRAME = const(254)

# legacy: chunked APDUs both ways; large-frame: one write = one request APDU, one
# notification = its response
LEGACY_SERVICE = "6c7b16c2-2a5b-8c9f-cf42-d31425470e7b"
LEGACY_CHAR = "cc5c5491-b3be-9287-cb42-f7a6a29a50d5"
FAST_SERVICE = "7c7b16c2-2a5b-8c9f-cf42-d31425470e7b"
FAST_CHAR = "dc5c5491-b3be-9287-cb42-f7a6a29a50d5"


def adv_payload(name):
    # advertising data: flags (LE general discoverable, no BR/EDR), the legacy service (the
    # one every Tap has: LEGACY_SERVICE, little-endian), the name (short when it does not
    # fit); scan response: the complete name
    nm = name.encode()[:29]
    short = nm[:8]
    adv = b"\x02\x01\x06\x11\x06\x7b\x0e\x47\x25\x14\xd3\x42\xcf\x9f\x8c\x5b\x2a\xc2\x16\x7b\x6c"
    adv += bytes((len(short) + 1, 0x09 if short == nm else 0x08)) + short
    return adv, bytes((len(nm) + 1, 0x09)) + nm


def checksum(data):
    return sum(data) & 0xFF


def packets(buf, frame, piece=_PIECE):
    # the packets of `frame` in sending order, as views of buf (at least len(frame) + 2
    # bytes), each valid until the next one is asked for: the wrapped frame (frame |
    # checksum) goes to buf[1:] first (ValueError, at the first packet, when the frame is too
    # long); each packet's offset byte takes the place of the byte before its piece (the last
    # byte of the next piece, or buf[0]) and is put back after.
    n = len(frame)
    if n > MAX_FRAME or n + 2 > len(buf):
        raise ValueError("BLE frame of %d bytes > %d" % (n, MAX_FRAME))
    buf[1 : n + 1] = frame
    buf[n + 1] = checksum(frame)
    mv = memoryview(buf)
    off = n + 1 - piece
    size = piece
    while True:
        if off <= 0:
            size += off
            off = 0
        keep = buf[off]
        buf[off] = off & 0xFF
        yield mv[off : off + size + 1]
        buf[off] = keep
        if not off:
            return
        off -= piece


def split(frame, piece=_PIECE):
    # frame -> the packets to send, in order (allocates: host side and tests)
    out = []
    for p in packets(bytearray(len(frame) + 2), frame, piece):
        out.append(bytes(p))
    return out


class Assembler:
    # Reassembles the packets of one frame at a time into a preallocated buffer (`buf`, a
    # memoryview: of 255 new bytes, or of the buffer given).
    # feed(packet) -> None while pieces are missing; the frame's length once the packet at
    # offset 0 came (the frame is self.buf[:length], checksum stripped). A bad frame raises
    # DecodeError when its packet at offset 0 comes (one error per frame) and leaves the
    # assembler empty. Within a frame each piece ends where the previous one began, so a
    # packet that does not starts a new frame: a half frame (its sender gone, a packet lost)
    # is dropped and counted in `dropped`.
    def __init__(self, buf=None):
        self.buf = memoryview(bytearray(_MAX_WRAPPED) if buf is None else buf)
        self.dropped = 0
        self.reset()

    def reset(self):
        self.n = 0  # bytes received
        self.end = 0  # the frame's wrapped length, from its first (highest) packet
        self.last = -1  # offset of the previous packet; -1: no frame in progress
        self.error = None

    def busy(self):
        return self.last >= 0

    def feed(self, packet):
        if not len(packet):
            self.reset()
            raise DecodeError("empty BLE packet")
        off = packet[0]
        k = len(packet) - 1
        if self.last >= 0 and off + k != self.last:
            self.dropped += 1
            self.reset()
        if self.last < 0:
            self.end = off + k
        self.last = off
        buf = self.buf
        if not k:
            self.error = "empty BLE packet"
        elif off + k > len(buf):
            self.error = "BLE frame larger than %d bytes" % len(buf)
        elif self.error is None:
            buf[off : off + k] = memoryview(packet)[1:]
            self.n += k
        if off:
            return None
        n = self.n
        end = self.end
        error = self.error
        self.reset()
        if error is not None:
            raise DecodeError(error)
        if n != end:
            raise DecodeError("BLE frame with missing pieces")
        if checksum(buf[: n - 1]) != buf[n - 1]:
            raise DecodeError("BLE frame checksum")
        return n - 1
