# Target service, object 1027, for an ESP32 that is its own target: always connected,
# protocol DIRECT_IO; memory, debug, serial and Modbus access answer NOT_IMPLEMENTED.
from .. import VERSION
from ..proto import tapcodes, values
from .dispatcher import TapError

_TARGET = 1027
DIRECT_IO = 4
_UNSUPPORTED = (5, 30, 31, 32, 33, 34, 35, 37, 38)


def mount(d):
    def not_implemented(s, inst, p):
        raise TapError(tapcodes.NOT_IMPLEMENTED)

    d.add(_TARGET, 1, get=lambda s, i, p: bytes((DIRECT_IO,)))
    d.add(_TARGET, 3, get=lambda s, i, p: b"\x01", post=lambda s, i, p: None)
    d.add(_TARGET, 4, post=lambda s, i, p: None)
    d.add(_TARGET, 6, get=lambda s, i, p: values.encode_version(VERSION))
    for res in _UNSUPPORTED:
        d.add(_TARGET, res, get=not_implemented, put=not_implemented, post=not_implemented)
