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

# code -> name as one string (in flash with the bytecode), not a dict in the heap:
# " HH:NAME" entries, HH the code in hex.
_NAMES = (
    " 00:NOP 01:READ 02:WRITE 03:UPDATE 04:DELETE 05:EXEC 06:PATCH 07:INFO"
    " 20:CONTINUE 21:SWITCHING_PROTOCOLS 22:PROCESSING 40:OK 41:CREATED 42:ACCEPTED"
    " 44:CHANGED 45:TUN_ACK 62:FOUND 64:NOT_CHANGED 80:BAD_REQUEST 81:UNAUTHORIZED"
    " 83:FORBIDDEN 84:NOT_FOUND 86:NOT_ACCEPTABLE 88:REQUEST_TIMEOUT 89:CONFLICT"
    " 8A:GONE 8B:INVALID_CONTENT_SIZE 8C:PRECONDITION_FAILED 8D:PAYLOAD_TOO_LARGE"
    " 8F:UNSUPPORTED_MEDIA_TYPE 9D:TOO_MANY_REQUESTS A0:INTERNAL_SERVER_ERROR"
    " A2:BAD_GATEWAY A3:SERVICE_UNAVAILABLE A4:GATEWAY_TIMEOUT A5:INVALID_VERSION"
    " B4:UNKNOWN"
)


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
    # 0x84 -> "NOT_FOUND"; a code without a name -> "0x2A"
    i = _NAMES.find(" %02X:" % code)
    if i < 0:
        return "0x%02X" % code
    j = _NAMES.find(" ", i + 4)
    return _NAMES[i + 4 : j if j > 0 else len(_NAMES)]
