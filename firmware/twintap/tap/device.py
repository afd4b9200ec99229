# Device service, LwM2M object 3 (spec tap-protocol.md section 6, "device").
import sys

from .. import VERSION
from ..proto import tapcodes
from .dispatcher import TapError

_OBJ = 3


def _ascii(s):
    return s.encode()


def serial_number(unique_id):
    # Stable serial from the chip id (the ESP32's MAC): "TT" + 12 upper-case hex digits.
    return "TT" + "".join("%02X" % b for b in unique_id)


def mount(d, platform, board):
    serial = _ascii(serial_number(platform.unique_id()))

    def no_instance(inst):
        if inst != 0xFFFF and inst != 0:
            raise TapError(tapcodes.NOT_FOUND)

    def getter(value):
        def get(session, inst, payload):
            no_instance(inst)
            return value

        return get

    d.add(_OBJ, 0, get=getter(b"twintap"))
    d.add(_OBJ, 1, get=getter(_ascii(board.get("name", platform.name))))
    d.add(_OBJ, 2, get=getter(serial))
    mpy = "%d.%d.%d" % sys.implementation.version[:3]
    d.add(_OBJ, 3, get=getter(_ascii("twintap " + VERSION + " MicroPython " + mpy)))
