# Tap result codes (spec tap-protocol.md section 2). A status is a success when bit 7 is 0.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


OK = const(0x00)
CREATED = const(0x41)
DELETED = const(0x42)
CHANGED = const(0x44)
CONTENT = const(0x45)
BUSY = const(0x46)
BAD_REQUEST = const(0x80)
UNAUTHORIZED = const(0x81)
NOT_FOUND = const(0x84)
METHOD_NOT_ALLOWED = const(0x85)
NOT_ACCEPTABLE = const(0x86)
RESOURCE_LOCKED = const(0x87)
INTERNAL_SERVER_ERROR = const(0xA0)
NOT_IMPLEMENTED = const(0xA1)
SERVICE_UNAVAILABLE = const(0xA3)
NVM_ERROR = const(0xA4)
UNABLE_TO_CONNECT_TO_TARGET = const(0xA5)
TARGET_POWER_FAILURE = const(0xA6)
NVM_FULL = const(0xA7)
DEVICE_UNAVAILABLE = const(0xA8)

# code -> name, complete table of @iotize/tap 2.7.0 (client-api ResultCode)
NAMES = {
    0x00: "OK",
    0x41: "CREATED",
    0x42: "DELETED",
    0x44: "CHANGED",
    0x45: "CONTENT",
    0x46: "BUSY",
    0x80: "BAD_REQUEST",
    0x81: "UNAUTHORIZED",
    0x84: "NOT_FOUND",
    0x85: "METHOD_NOT_ALLOWED",
    0x86: "NOT_ACCEPTABLE",
    0x87: "RESOURCE_LOCKED",
    0xA0: "INTERNAL_SERVER_ERROR",
    0xA1: "NOT_IMPLEMENTED",
    0xA3: "SERVICE_UNAVAILABLE",
    0xA4: "NVM_ERROR",
    0xA5: "UNABLE_TO_CONNECT_TO_TARGET",
    0xA6: "TARGET_POWER_FAILURE",
    0xA7: "NVM_FULL",
    0xA8: "DEVICE_UNAVAILABLE",
    0xB0: "TARGET_PROTOCOL_ERROR",
    0xB1: "TARGET_PROTOCOL_BUSY",
    0xB2: "TARGET_PROTOCOL_REAL",
    0xB3: "TARGET_PROTOCOL_WRONG_PARAM",
    0xB4: "TARGET_PROTOCOL_FORBIDDEN",
    0xB5: "TARGET_PROTOCOL_DATA",
    0xB6: "TARGET_PROTOCOL_COM",
    0xB7: "TARGET_PROTOCOL_LOST_COM",
    0xB8: "TARGET_PROTOCOL_PARAM",
    0xB9: "TARGET_PROTOCOL_INT",
    0xBA: "TARGET_PROTOCOL_ABORT",
    0xBB: "TARGET_PROTOCOL_NOT_IMPLEMENTED",
}


def is_success(code):
    return not code & 0x80


def name(code):
    return NAMES.get(code, "0x%02X" % code)
