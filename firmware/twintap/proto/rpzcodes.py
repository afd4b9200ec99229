# Rapidomize op-codes and status codes (spec rapidomize.md): 3-bit class, 5-bit detail.
# Class 0 = request op-code; classes 1..5 = status. `dotted(0x45)` == "2.05".
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


NOP = const(0x00)
READ = const(0x01)
WRITE = const(0x02)
UPDATE = const(0x03)
DELETE = const(0x04)
EXEC = const(0x05)
PATCH = const(0x06)
INFO = const(0x07)

CONTINUE = const(0x20)
SWITCHING_PROTOCOLS = const(0x21)
PROCESSING = const(0x22)
OK = const(0x40)
CREATED = const(0x41)
ACCEPTED = const(0x42)
CHANGED = const(0x44)
TUN_ACK = const(0x45)
FOUND = const(0x62)
NOT_CHANGED = const(0x64)
BAD_REQUEST = const(0x80)
UNAUTHORIZED = const(0x81)
FORBIDDEN = const(0x83)
NOT_FOUND = const(0x84)
NOT_ACCEPTABLE = const(0x86)
REQUEST_TIMEOUT = const(0x88)
CONFLICT = const(0x89)
GONE = const(0x8A)
INVALID_CONTENT_SIZE = const(0x8B)
PRECONDITION_FAILED = const(0x8C)
PAYLOAD_TOO_LARGE = const(0x8D)
UNSUPPORTED_MEDIA_TYPE = const(0x8F)
TOO_MANY_REQUESTS = const(0x9D)
INTERNAL_SERVER_ERROR = const(0xA0)
BAD_GATEWAY = const(0xA2)
SERVICE_UNAVAILABLE = const(0xA3)
GATEWAY_TIMEOUT = const(0xA4)
INVALID_VERSION = const(0xA5)
UNKNOWN = const(0xB4)

NAMES = {
    0x00: "NOP",
    0x01: "READ",
    0x02: "WRITE",
    0x03: "UPDATE",
    0x04: "DELETE",
    0x05: "EXEC",
    0x06: "PATCH",
    0x07: "INFO",
    0x20: "CONTINUE",
    0x21: "SWITCHING_PROTOCOLS",
    0x22: "PROCESSING",
    0x40: "OK",
    0x41: "CREATED",
    0x42: "ACCEPTED",
    0x44: "CHANGED",
    0x45: "TUN_ACK",
    0x62: "FOUND",
    0x64: "NOT_CHANGED",
    0x80: "BAD_REQUEST",
    0x81: "UNAUTHORIZED",
    0x83: "FORBIDDEN",
    0x84: "NOT_FOUND",
    0x86: "NOT_ACCEPTABLE",
    0x88: "REQUEST_TIMEOUT",
    0x89: "CONFLICT",
    0x8A: "GONE",
    0x8B: "INVALID_CONTENT_SIZE",
    0x8C: "PRECONDITION_FAILED",
    0x8D: "PAYLOAD_TOO_LARGE",
    0x8F: "UNSUPPORTED_MEDIA_TYPE",
    0x9D: "TOO_MANY_REQUESTS",
    0xA0: "INTERNAL_SERVER_ERROR",
    0xA2: "BAD_GATEWAY",
    0xA3: "SERVICE_UNAVAILABLE",
    0xA4: "GATEWAY_TIMEOUT",
    0xA5: "INVALID_VERSION",
    0xB4: "UNKNOWN",
}


def code_class(code):
    return (code >> 5) & 0x07


def is_request(code):
    return code_class(code) == 0


def is_error(code):
    return code_class(code) >= 4


def dotted(code):
    # 0x45 -> "2.05", 0x84 -> "4.04", 0x9D -> "4.29"
    return "%d.%02d" % (code >> 5, code & 0x1F)


def name(code):
    return NAMES.get(code, "0x%02X" % code)
