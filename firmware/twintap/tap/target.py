# Target service, object 1027, for an ESP32 that is its own target: always connected,
# protocol DIRECT_IO; memory, debug, serial and Modbus access answer NOT_IMPLEMENTED.
# It has no state: this module itself is the service object (its serve() below), no class.
import sys

from .. import VERSION
from ..proto import tapcodes, values
from .dispatcher import NO_METHOD, NO_RESOURCE, TapError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_TARGET = const(1027)
_DIRECT_IO = const(4)
_GET = const(1)
_POST = const(2)


def mount(d):
    d.register(_TARGET, sys.modules[__name__])


def serve(s, m, inst, res, p):
    if res == 1:
        if m == _GET:
            return bytes((_DIRECT_IO,))
    elif res == 3:  # connection state: connected; connecting (POST) does nothing
        if m == _GET:
            return b"\x01"
        if m == _POST:
            return None
    elif res == 4:  # disconnect: nothing to do
        if m == _POST:
            return None
    elif res == 6:
        if m == _GET:
            return values.encode_version(VERSION)
    elif res == 5 or (30 <= res <= 38 and res != 36):  # every method
        raise TapError(tapcodes.NOT_IMPLEMENTED)
    else:
        return NO_RESOURCE
    return NO_METHOD
