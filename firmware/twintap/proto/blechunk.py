# Legacy BLE chunking of the Tap's LwM2M service ("SPP over BLE"), the same in both
# directions (spec tap-protocol.md section 8, tap-background.md 5.1):
#   wrapped = frame | checksum (sum of the frame's bytes mod 256)
#   pieces of 19 bytes where the piece at offset 0 is the short remainder (len % 19, or 19)
#   packet  = offset u8 (mod 256) | piece, sent from the highest offset down; offset 0 ends
# The receiver stores each piece at its offset, ends on offset 0, then checks and strips the
# checksum; its buffer holds 255 bytes (so a frame is at most 254 bytes).
from . import DecodeError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


PIECE = const(19)  # frame bytes per packet: 20-byte packets, what an ATT MTU of 23 carries
MAX_WRAPPED = const(255)  # the reassembly buffer: frame + checksum
MAX_FRAME = const(254)


def checksum(data):
    return sum(data) & 0xFF


def wrap_into(out, data):
    # frame + checksum into `out`; returns the wrapped length
    n = len(data)
    if n + 1 > MAX_WRAPPED or n + 1 > len(out):
        raise ValueError("BLE frame of %d bytes > %d" % (n, MAX_FRAME))
    out[:n] = data
    out[n] = checksum(data)
    return n + 1


def chunks(n, piece=PIECE):
    # (offset, size) of each piece of an n-byte wrapped frame, in sending order
    off = n - piece
    while off > 0:
        yield off, piece
        off -= piece
    yield 0, off + piece


def packet_into(out, wrapped, off, size):
    # one packet (offset header + piece) into `out`; returns its length
    out[0] = off & 0xFF
    out[1 : size + 1] = wrapped[off : off + size]
    return size + 1


def split(frame, piece=PIECE):
    # frame -> the packets to send, in order (allocates: host side and tests)
    buf = bytearray(len(frame) + 1)
    n = wrap_into(buf, frame)
    pkt = bytearray(piece + 1)
    out = []
    for off, size in chunks(n, piece):
        out.append(bytes(pkt[: packet_into(pkt, buf, off, size)]))
    return out


class Assembler:
    # Reassembles the packets of one frame at a time into a preallocated buffer.
    # feed(packet) -> None while pieces are missing; the frame's length once the packet at
    # offset 0 came (the frame is self.buf[:length], checksum stripped). A bad frame raises
    # DecodeError when its packet at offset 0 comes (one error per frame) and leaves the
    # assembler empty. Within a frame each piece ends where the previous one began, so a
    # packet that does not starts a new frame: a half frame (its sender gone, a packet lost)
    # is dropped and counted in `dropped`.
    def __init__(self, size=MAX_WRAPPED):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
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
        if not k:
            self.error = "empty BLE packet"
        elif off + k > len(self.buf):
            self.error = "BLE frame larger than %d bytes" % len(self.buf)
        elif self.error is None:
            self.mv[off : off + k] = memoryview(packet)[1:]
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
        if checksum(self.mv[: n - 1]) != self.buf[n - 1]:
            raise DecodeError("BLE frame checksum")
        return n - 1
