# The socket protocol between the virtual board's emulated BLE radio (platform/vradio.py,
# the peripheral) and an emulated central (the host's twintap.tap.ble.VbleCentral).
#
# The radio listens on a unix-domain stream socket; one socket connection is one BLE link
# (or one scan). Both ways the stream is a sequence of records:
#   record = length u16 (big-endian, of what follows) | op u8 | body
# central -> radio
#   SCAN       (no body)                      -> ADV, then the radio closes the socket
#   CONNECT    addr_type u8 | addr 6 B        -> CONNECTED conn u16 | board address 6 B
#                                                or REFUSED text (not advertising: one
#                                                central at a time), then close
#   MTU        client rx MTU u16              -> MTU effective u16 (min of both, >= 23);
#                                                once per connection, else ERROR
#   DISCOVER   (no body)                      -> SERVICES, 36 bytes per characteristic:
#                                                service UUID 16 B | characteristic UUID 16 B
#                                                (big-endian, as written) | value handle u16
#                                                | flags u16 (bluetooth.FLAG_*)
#   WRITE      response u8 (1 request, 0 command) | handle u16 | value
#                                             -> WRITTEN handle u16 (requests only), or
#                                                ERROR att_code u8 | text (unknown handle
#                                                0x01, not writable 0x03, value longer than
#                                                MTU-3 0x0D: nothing is delivered)
#   DISCONNECT (no body), or closing the socket: the link ends
# radio -> central
#   NOTIFY     handle u16 | value (at most MTU-3 bytes: the radio refuses larger ones)
#   DISCONNECTED reason u8 (the board called gap_disconnect), then the radio closes
#   ADV        adv_len u8 | advertising data | scan response data (AD structures); an empty
#              body when the board is not advertising
# ATT rules enforced: MTU 23 until the central exchanges it (the board never initiates),
# writes and notifications of at most MTU-3 bytes, one central at a time.
# The board does not import this module (heap): platform/vradio.py repeats the record layout,
# the op and ATT codes and the limits as const(); change both together.
import struct

from . import DecodeError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


SCAN = const(0x01)
CONNECT = const(0x02)
MTU = const(0x03)
DISCOVER = const(0x04)
WRITE = const(0x05)
DISCONNECT = const(0x06)
ADV = const(0x81)
CONNECTED = const(0x82)
REFUSED = const(0x83)
MTU_EXCHANGED = const(0x84)
SERVICES = const(0x85)
WRITTEN = const(0x86)
ERROR = const(0x87)
NOTIFY = const(0x88)
DISCONNECTED = const(0x89)

ATT_INVALID_HANDLE = const(0x01)
ATT_WRITE_NOT_PERMITTED = const(0x03)
ATT_REQUEST_NOT_SUPPORTED = const(0x06)
ATT_INVALID_LENGTH = const(0x0D)

MIN_MTU = const(23)
MAX_MTU = const(517)
MAX_RECORD = const(1024)


def record(op, body=b""):
    return struct.pack(">HB", len(body) + 1, op) + bytes(body)


def parse(buf):
    # -> (op, body, consumed) for the first whole record in buf, or None when incomplete
    if len(buf) < 2:
        return None
    n = buf[0] << 8 | buf[1]
    if n < 1 or n > MAX_RECORD:
        raise DecodeError("radio record of %d bytes" % n)
    if len(buf) < 2 + n:
        return None
    return buf[2], bytes(buf[3 : 2 + n]), 2 + n


def uuid_bytes(text):
    return bytes.fromhex(text.replace("-", ""))


def uuid_text(b):
    h = "".join("%02x" % x for x in b)
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def u16(b, i=0):
    return b[i] << 8 | b[i + 1]


def ad_fields(data):
    # AD structures -> list of (type, value)
    out = []
    i = 0
    while i < len(data):
        n = data[i]
        if n == 0 or i + 1 + n > len(data):
            break
        out.append((data[i + 1], bytes(data[i + 2 : i + 1 + n])))
        i += 1 + n
    return out
