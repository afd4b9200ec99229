# The client's half of the Tap result codes (tapcodes.py): names for people. Reached through
# tapcodes.name & co. (tapcodes.__getattr__).
OK = 0x00
CREATED = 0x41
BUSY = 0x46
METHOD_NOT_ALLOWED = 0x85
NVM_FULL = 0xA7

# code -> name, complete table of @iotize/tap 2.7.0 (client-api ResultCode), as one string
# constant (" XX:NAME ..."): bytecode in flash, where a dict would be built in the heap
_NAMES = (
    " 00:OK 41:CREATED 42:DELETED 44:CHANGED 45:CONTENT 46:BUSY 80:BAD_REQUEST"
    " 81:UNAUTHORIZED 84:NOT_FOUND 85:METHOD_NOT_ALLOWED 86:NOT_ACCEPTABLE"
    " 87:RESOURCE_LOCKED A0:INTERNAL_SERVER_ERROR A1:NOT_IMPLEMENTED"
    " A3:SERVICE_UNAVAILABLE A4:NVM_ERROR A5:UNABLE_TO_CONNECT_TO_TARGET"
    " A6:TARGET_POWER_FAILURE A7:NVM_FULL A8:DEVICE_UNAVAILABLE"
    " B0:TARGET_PROTOCOL_ERROR B1:TARGET_PROTOCOL_BUSY B2:TARGET_PROTOCOL_REAL"
    " B3:TARGET_PROTOCOL_WRONG_PARAM B4:TARGET_PROTOCOL_FORBIDDEN"
    " B5:TARGET_PROTOCOL_DATA B6:TARGET_PROTOCOL_COM B7:TARGET_PROTOCOL_LOST_COM"
    " B8:TARGET_PROTOCOL_PARAM B9:TARGET_PROTOCOL_INT BA:TARGET_PROTOCOL_ABORT"
    " BB:TARGET_PROTOCOL_NOT_IMPLEMENTED"
)


def is_success(code):
    return not code & 0x80


def name(code):
    i = _NAMES.find(" %02X:" % code) if 0 <= code <= 0xFF else -1
    if i < 0:
        return "0x%02X" % code
    j = _NAMES.find(" ", i + 4)
    return _NAMES[i + 4 : j if j > 0 else len(_NAMES)]
