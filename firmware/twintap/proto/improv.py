# Improv Wi-Fi over a serial line (https://www.improv-wifi.com/serial/): the framing, pure.
#   "IMPROV" | version 0x01 | type | length | data (length bytes) | checksum
# checksum = low byte of the sum of every byte before it, header included. A frame is
# followed by "\n" so that it mixes with log lines on a console (the clients read line by
# line and drop what does not start with "IMPROV"). RPC data = command | length | payload;
# an RPC result = command | length | strings, each one length-prefixed (UTF-8).
# Shared by the board (links/improv.py) and the host (tests, `twintap` tools).
from . import DecodeError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


HEADER = b"IMPROV"
VERSION = const(1)
HEAD_LEN = const(9)  # header, version, type, length

# packet types
CURRENT_STATE = const(0x01)
ERROR_STATE = const(0x02)
RPC = const(0x03)
RPC_RESULT = const(0x04)

# current states (0x01 "authorization required" exists only over BLE)
READY = const(0x02)
PROVISIONING = const(0x03)
PROVISIONED = const(0x04)

# error states
NO_ERROR = const(0x00)
INVALID_RPC = const(0x01)
UNKNOWN_RPC = const(0x02)
UNABLE_TO_CONNECT = const(0x03)
BAD_HOSTNAME = const(0x05)
UNKNOWN_ERROR = const(0xFF)

# RPC commands
WIFI_SETTINGS = const(0x01)
GET_STATE = const(0x02)
GET_INFO = const(0x03)
SCAN = const(0x04)
HOSTNAME = const(0x05)
DEVICE_NAME = const(0x06)


def checksum(data):
    s = 0
    for b in data:
        s += b
    return s & 0xFF


def encode(ptype, data=b""):
    # one packet, newline included
    data = bytes(data)
    if len(data) > 255:
        raise ValueError("an Improv packet carries at most 255 bytes")
    body = HEADER + bytes((VERSION, ptype, len(data))) + data
    return body + bytes((checksum(body), 0x0A))


def encode_state(state):
    return encode(CURRENT_STATE, bytes((state,)))


def encode_error(error):
    return encode(ERROR_STATE, bytes((error,)))


def _strings(items):
    out = bytearray()
    for s in items:
        raw = s.encode() if isinstance(s, str) else bytes(s)
        if len(raw) > 255:
            raise ValueError("an Improv string is at most 255 bytes")
        out.append(len(raw))
        out += raw
    return bytes(out)


def encode_rpc(command, payload=b""):
    # what a client sends: the RPC packet (host side and tests)
    payload = bytes(payload)
    return encode(RPC, bytes((command, len(payload))) + payload)


def encode_result(command, strings=()):
    # an RPC result packet: command | length | length-prefixed strings
    body = _strings(strings)
    return encode(RPC_RESULT, bytes((command, len(body))) + body)


def encode_wifi(ssid, password):
    # payload of WIFI_SETTINGS: len-prefixed SSID, then len-prefixed password
    return _strings((ssid, password))


def decode(frame):
    # one complete packet (newline optional) -> (type, data); DecodeError when malformed
    frame = bytes(frame)
    if frame[-1:] == b"\n":
        frame = frame[:-1]
    if len(frame) < HEAD_LEN + 1 or frame[:6] != HEADER:
        raise DecodeError("not an Improv packet")
    if frame[6] != VERSION:
        raise DecodeError("Improv version %d not supported" % frame[6])
    n = frame[8]
    if len(frame) != HEAD_LEN + n + 1:
        raise DecodeError("Improv packet length mismatch")
    if checksum(frame[:-1]) != frame[-1]:
        raise DecodeError("Improv checksum mismatch")
    return frame[7], frame[HEAD_LEN : HEAD_LEN + n]


def decode_rpc(data):
    # RPC packet data -> (command, payload)
    data = bytes(data)
    if len(data) < 2 or data[1] != len(data) - 2:
        raise DecodeError("Improv RPC length mismatch")
    return data[0], data[2:]


def decode_strings(raw):
    # length-prefixed strings -> list of str
    raw = bytes(raw)
    out = []
    i = 0
    while i < len(raw):
        n = raw[i]
        if i + 1 + n > len(raw):
            raise DecodeError("Improv string runs past the data")
        out.append(raw[i + 1 : i + 1 + n].decode())
        i += 1 + n
    return out


def decode_wifi(payload):
    # WIFI_SETTINGS payload -> (ssid, password)
    items = decode_strings(payload)
    if len(items) != 2 or not items[0]:
        raise DecodeError("Wi-Fi settings need an SSID and a password")
    return items[0], items[1]


def decode_result(data):
    # RPC result data -> (command, [strings])
    command, body = decode_rpc(data)
    return command, decode_strings(body)


class Parser:
    # Incremental: feed bytes, get packets. A packet may start anywhere ("IMPROV" resyncs);
    # bytes that are not part of a packet are dropped. `errors` counts malformed packets
    # (bad checksum or version), which the caller answers with INVALID_RPC.
    def __init__(self):
        self.buf = bytearray()
        self.want = 0
        self.packets = []
        self.errors = 0

    def feed(self, chunk):
        # -> list of (type, data) completed by these bytes
        for b in chunk:
            self._byte(b)
        out = self.packets
        self.packets = []
        return out

    def _byte(self, b):
        buf = self.buf
        n = len(buf)
        if n < 6:
            if b == HEADER[n]:
                buf.append(b)
            elif n:
                self.buf = bytearray(b"I") if b == 0x49 else bytearray()
            return
        if (n == 6 and b != VERSION) or (n == 7 and not CURRENT_STATE <= b <= RPC_RESULT):
            self.buf = bytearray(b"I") if b == 0x49 else bytearray()  # not a packet
            return
        buf.append(b)
        n += 1
        if n == HEAD_LEN:
            self.want = HEAD_LEN + b + 1
        elif n > HEAD_LEN and n == self.want:
            try:
                self.packets.append(decode(buf))
            except DecodeError:
                self.errors += 1
            self.buf = bytearray()

    def busy(self):
        # True while a packet is partly received
        return len(self.buf) > 0

    def reset(self):
        # drop a partial packet (the line went idle)
        self.buf = bytearray()
