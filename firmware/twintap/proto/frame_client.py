# The client's half of the Tap frames (frame.py): what sends requests and reads responses,
# the host and the tests. A board never imports it; frame.encode_request & co. reach it
# through frame.__getattr__, so `from twintap.proto import frame` is all a client needs.
import struct

from . import DecodeError

# frame.py's private constants, named (the same numbers)
GET = 1
POST = 2
PUT = 3
CLA = 0xA2
INS_GET = 0xCA
INS_SET = 0xDA  # PUT and POST
NO_INSTANCE = 0xFFFF
APDU_HEADER_SIZE = 5  # CLA INS P1 P2 Lc
MAX_PAYLOAD = 248  # Lc is one byte: 7 + payload <= 255

METHOD_NAMES = {1: "GET", 2: "POST", 3: "PUT"}


def ins_for(method):
    return INS_GET if method == GET else INS_SET


def encode_frame(method, obj, inst, res, payload=b""):
    # Bare TapRequestFrame (what encrypted frames and multi-requests carry).
    if inst is None:
        inst = NO_INSTANCE
    return struct.pack(">BHHH", method, obj, inst & 0xFFFF, res & 0xFFFF) + bytes(payload)


def encode_request(method, obj, inst, res, payload=b""):
    frame = encode_frame(method, obj, inst, res, payload)
    if len(frame) > 255:
        raise ValueError("payload of %d bytes > %d (one-byte Lc)" % (len(payload), MAX_PAYLOAD))
    return bytes((CLA, ins_for(method), 0, 0, len(frame))) + frame


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
