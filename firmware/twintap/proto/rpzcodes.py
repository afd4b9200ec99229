# Rapidomize op-codes and status codes (spec rapidomize.md): 3-bit class, 5-bit detail.
# Class 0 = request op-code; classes 1..5 = status. `dotted(0x45)` == "2.05".
# The table is one string (in flash with the bytecode, not a dict of constants in the heap):
# " HH:NAME" entries, HH the code in hex. A code is read by its name as an attribute of this
# module, rpzcodes.NOT_FOUND == 0x84 (a module __getattr__, on MicroPython and CPython).
_NAMES = (
    " 00:NOP 01:READ 02:WRITE 03:UPDATE 04:DELETE 05:EXEC 06:PATCH 07:INFO"
    " 20:CONTINUE 21:SWITCHING_PROTOCOLS 22:PROCESSING 40:OK 41:CREATED 42:ACCEPTED"
    " 44:CHANGED 45:TUN_ACK 62:FOUND 64:NOT_CHANGED 80:BAD_REQUEST 81:UNAUTHORIZED"
    " 83:FORBIDDEN 84:NOT_FOUND 86:NOT_ACCEPTABLE 88:REQUEST_TIMEOUT 89:CONFLICT"
    " 8A:GONE 8B:INVALID_CONTENT_SIZE 8C:PRECONDITION_FAILED 8D:PAYLOAD_TOO_LARGE"
    " 8F:UNSUPPORTED_MEDIA_TYPE 9D:TOO_MANY_REQUESTS A0:INTERNAL_SERVER_ERROR"
    " A2:BAD_GATEWAY A3:SERVICE_UNAVAILABLE A4:GATEWAY_TIMEOUT A5:INVALID_VERSION"
    " B4:UNKNOWN "
)


def __getattr__(attr):
    # rpzcodes.NOT_FOUND -> 0x84; a name not in the table -> AttributeError
    i = _NAMES.find(":" + attr + " ")
    if i < 0 or " " in attr:
        raise AttributeError(attr)
    return int(_NAMES[i - 2 : i], 16)


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
    return _NAMES[i + 4 : _NAMES.find(" ", i + 4)]
