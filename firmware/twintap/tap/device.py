# Device service, LwM2M object 3 (spec tap-protocol.md section 6, "device").
import gc
import struct
import sys
import time

from .. import VERSION
from ..proto import tapcodes
from .dispatcher import TapError

_OBJ = 3
DC = 1
# seconds between 1970-01-01 and the port's epoch (2000-01-01 on the ESP32)
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0


def serial_number(unique_id):
    # Stable serial from the chip id (the ESP32's MAC): "TT" + 12 upper-case hex digits.
    return "TT" + "".join("%02X" % b for b in unique_id)


def firmware_version():
    return "twintap %s MicroPython %d.%d.%d" % ((VERSION,) + sys.implementation.version[:3])


class System:
    # What the device service needs from the app: reboot, factory reset, errors, clock.
    def __init__(self, platform, reboot, factory_reset):
        self.platform = platform
        self.reboot = reboot
        self.factory_reset = factory_reset
        self.last_error = 0
        self.clock_offset = 0

    def unix_time(self):
        return time.time() + _EPOCH + self.clock_offset


def mount(d, system, board):
    plat = system.platform
    serial = serial_number(plat.unique_id()).encode()

    def constant(value):
        return lambda s, inst, p: value

    d.add(_OBJ, 0, get=constant(b"twintap"))
    d.add(_OBJ, 1, get=constant(board.get("name", plat.name).encode()))
    d.add(_OBJ, 2, get=constant(serial))
    d.add(_OBJ, 3, get=constant(firmware_version().encode()))
    d.add(_OBJ, 4, post=lambda s, i, p: system.reboot())
    d.add(_OBJ, 5, post=lambda s, i, p: system.factory_reset())
    d.add(_OBJ, 6, get=constant(bytes((DC,))))
    d.add(_OBJ, 7, get=constant(struct.pack(">I", board.get("vcc_mv", 3300))))
    def memory_free(s, i, p):
        gc.collect()  # what is really free, not what garbage hides
        return struct.pack(">I", plat.mem_free())

    d.add(_OBJ, 10, get=memory_free)

    def get_error(s, i, p):
        return struct.pack(">I", system.last_error)

    def post_error(s, i, p):
        if len(p) < 4:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        system.last_error = struct.unpack_from(">I", p)[0]

    def reset_error(s, i, p):
        system.last_error = 0

    d.add(_OBJ, 11, get=get_error, post=post_error)
    d.add(_OBJ, 12, post=reset_error)

    def get_time(s, i, p):
        t = time.gmtime(int(system.unix_time()) - _EPOCH)
        return ("%04d-%02d-%02dT%02d:%02d:%02dZ" % t[:6]).encode()

    def put_time(s, i, p):
        if len(p) < 4:
            raise TapError(tapcodes.NOT_ACCEPTABLE)
        now = struct.unpack_from(">I", p)[0]
        system.clock_offset = now - (time.time() + _EPOCH)

    d.add(_OBJ, 13, get=get_time, put=put_time)
