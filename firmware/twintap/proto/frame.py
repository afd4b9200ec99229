# Tap request/response frames and their APDU wrapper (spec tap-protocol.md sections 1-3).
#   request APDU  = A2 | CA (GET) or DA (PUT, POST) | 00 00 | Lc | frame
#   frame         = method u8 | object u16 | instance u16 | resource u16 | payload
#   response APDU = status u8 | data | 90 00
# All integers big-endian; instance 0xFFFF means "no instance" (path "/3//2").
import struct

from . import DecodeError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


GET = const(1)
POST = const(2)
PUT = const(3)
METHOD_NAMES = {1: "GET", 2: "POST", 3: "PUT"}

CLA = const(0xA2)
INS_GET = const(0xCA)
INS_SET = const(0xDA)  # PUT and POST
NO_INSTANCE = const(0xFFFF)
HEADER_SIZE = const(7)  # frame header
APDU_HEADER_SIZE = const(5)  # CLA INS P1 P2 Lc
MAX_PAYLOAD = const(248)  # Lc is one byte: 7 + payload <= 255
SW_OK = b"\x90\x00"


def ins_for(method):
    return INS_GET if method == GET else INS_SET


def encode_frame(method, obj, inst, res, payload=b""):
    # Bare TapRequestFrame (what encrypted frames and multi-requests carry).
    if inst is None:
        inst = NO_INSTANCE
    return struct.pack(">BHHH", method, obj, inst & 0xFFFF, res & 0xFFFF) + bytes(payload)


def decode_frame(buf):
    # -> (method, obj, inst, res, payload); payload is a memoryview into buf
    if len(buf) < HEADER_SIZE:
        raise DecodeError("frame shorter than its 7-byte header")
    method, obj, inst, res = struct.unpack_from(">BHHH", buf, 0)
    if method not in METHOD_NAMES:
        raise DecodeError("unknown method %d" % method, 0x85)
    return method, obj, inst, res, memoryview(buf)[HEADER_SIZE:]


def encode_request(method, obj, inst, res, payload=b""):
    frame = encode_frame(method, obj, inst, res, payload)
    if len(frame) > 255:
        raise ValueError("payload of %d bytes > %d (one-byte Lc)" % (len(payload), MAX_PAYLOAD))
    return bytes((CLA, ins_for(method), 0, 0, len(frame))) + frame


def apdu_length(header):
    # Length of a whole request APDU from its first 5 bytes (byte-stream delimiting).
    return APDU_HEADER_SIZE + header[4]


def check_apdu_header(buf):
    # Raises DecodeError on a header that cannot start a Tap request.
    if len(buf) < APDU_HEADER_SIZE:
        raise DecodeError("APDU shorter than its 5-byte header")
    if buf[0] != CLA:
        raise DecodeError("CLA 0x%02X is not 0xA2" % buf[0])
    if buf[1] != INS_GET and buf[1] != INS_SET:
        raise DecodeError("INS 0x%02X is neither 0xCA nor 0xDA" % buf[1])
    if buf[4] < HEADER_SIZE:
        raise DecodeError("Lc %d is shorter than a frame header" % buf[4])


def decode_request(buf):
    # Request APDU -> (method, obj, inst, res, payload). Checks CLA, INS, Lc and that INS
    # agrees with the method (GET -> CA, PUT/POST -> DA).
    check_apdu_header(buf)
    n = APDU_HEADER_SIZE + buf[4]
    if len(buf) != n:
        raise DecodeError("APDU length %d does not match Lc (%d expected)" % (len(buf), n))
    req = decode_frame(memoryview(buf)[APDU_HEADER_SIZE:n])
    if (buf[1] == INS_GET) != (req[0] == GET):
        raise DecodeError("INS 0x%02X does not carry method %d" % (buf[1], req[0]), 0x85)
    return req


def encode_response(status, data=b""):
    return bytes((status,)) + bytes(data) + SW_OK


def decode_response(buf):
    # Response APDU -> (status, data bytes)
    if len(buf) < 3:
        raise DecodeError("response shorter than status + 90 00")
    if buf[-2] != 0x90 or buf[-1] != 0x00:
        raise DecodeError("response does not end with 90 00")
    return buf[0], bytes(buf[1:-2])


def parse_path(path):
    # "/obj/[inst]/res[/resInst]" -> (obj, inst, res); empty instance -> 0xFFFF.
    # A 4th component is accepted and dropped, as @iotize/tap does.
    parts = path.strip().strip("/").split("/")
    if len(parts) < 3 or len(parts) > 4 or not parts[0] or not parts[2]:
        raise DecodeError("Tap path must look like /obj/inst/res or /obj//res: %r" % path)
    try:
        obj = int(parts[0])
        inst = int(parts[1]) if parts[1] else NO_INSTANCE
        res = int(parts[2])
    except ValueError:
        raise DecodeError("Tap path components must be numbers: %r" % path)
    for v in (obj, inst, res):
        if v < 0 or v > 0xFFFF:
            raise DecodeError("Tap path component out of 0..65535: %r" % path)
    return obj, inst, res


def format_path(obj, inst, res):
    if inst == NO_INSTANCE or inst is None:
        return "/%d//%d" % (obj, res)
    return "/%d/%d/%d" % (obj, inst, res)
