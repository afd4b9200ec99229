# Tap request/response frames and their APDU wrapper (spec tap-protocol.md sections 1-3).
#   request APDU  = A2 | CA (GET) or DA (PUT, POST) | 00 00 | Lc | frame
#   frame         = method u8 | object u16 | instance u16 | resource u16 | payload
#   response APDU = status u8 | data | 90 00
# All integers big-endian; instance 0xFFFF means "no instance" (path "/3//2").
# A board only decodes requests and encodes responses: the client's half (encode_frame,
# encode_request, decode_response, parse_path, METHOD_NAMES, ins_for and the named numbers)
# is in frame_client.py, reached through this module (frame.encode_request, frame.GET) and
# imported on first use.
import struct

from . import DecodeError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# The numbers the board needs are private constants, folded into the bytecode (no heap);
# their public names (frame.GET, frame.CLA, ...) are defined in frame_client.py.
_GET = const(1)
_PUT = const(3)
_CLA = const(0xA2)
_INS_GET = const(0xCA)
_INS_SET = const(0xDA)  # PUT and POST
_NO_INSTANCE = const(0xFFFF)
HEADER_SIZE = const(7)  # frame header
_APDU_HEADER_SIZE = const(5)  # CLA INS P1 P2 Lc
SW_OK = b"\x90\x00"


def decode_frame(buf):
    # -> (method, obj, inst, res, payload); payload is a memoryview into buf
    if len(buf) < HEADER_SIZE:
        raise DecodeError("frame shorter than its 7-byte header")
    method, obj, inst, res = struct.unpack_from(">BHHH", buf, 0)
    if not _GET <= method <= _PUT:
        raise DecodeError("unknown method %d" % method, 0x85)
    return method, obj, inst, res, memoryview(buf)[HEADER_SIZE:]


def apdu_length(header):
    # Length of a whole request APDU from its first 5 bytes (byte-stream delimiting).
    return _APDU_HEADER_SIZE + header[4]


def check_apdu_header(buf):
    # Raises DecodeError on a header that cannot start a Tap request.
    if len(buf) < _APDU_HEADER_SIZE:
        raise DecodeError("APDU shorter than its 5-byte header")
    if buf[0] != _CLA:
        raise DecodeError("CLA 0x%02X is not 0xA2" % buf[0])
    if buf[1] != _INS_GET and buf[1] != _INS_SET:
        raise DecodeError("INS 0x%02X is neither 0xCA nor 0xDA" % buf[1])
    if buf[4] < HEADER_SIZE:
        raise DecodeError("Lc %d is shorter than a frame header" % buf[4])


def decode_request(buf):
    # Request APDU -> (method, obj, inst, res, payload). Checks CLA, INS, Lc and that INS
    # agrees with the method (GET -> CA, PUT/POST -> DA).
    check_apdu_header(buf)
    n = _APDU_HEADER_SIZE + buf[4]
    if len(buf) != n:
        raise DecodeError("APDU length %d does not match Lc (%d expected)" % (len(buf), n))
    req = decode_frame(memoryview(buf)[_APDU_HEADER_SIZE:n])
    if (buf[1] == _INS_GET) != (req[0] == _GET):
        raise DecodeError("INS 0x%02X does not carry method %d" % (buf[1], req[0]), 0x85)
    return req


def encode_response(status, data=b""):
    return bytes((status,)) + bytes(data) + SW_OK


def format_path(obj, inst, res):
    if inst == _NO_INSTANCE or inst is None:
        return "/%d//%d" % (obj, res)
    return "/%d/%d/%d" % (obj, inst, res)


def __getattr__(name):
    # the client's half, on first use (a board never needs it)
    from . import frame_client

    return getattr(frame_client, name)
