# Device service, LwM2M object 3 (spec tap-protocol.md section 6, "device").
import struct
import sys
import time

from .. import VERSION
from ..proto import tapcodes
from .dispatcher import NO_METHOD, NO_RESOURCE, TapError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_OBJ = const(3)
_GET = const(1)
_POST = const(2)
_PUT = const(3)
_DC = const(1)
# seconds between 1970-01-01 and the port's epoch (2000-01-01 on the ESP32)
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0


def serial_number(unique_id):
    # Stable serial from the chip id (the ESP32's MAC): "TT" + 12 upper-case hex digits.
    return "TT" + "".join("%02X" % b for b in unique_id)


def firmware_version():
    return "twintap %s MicroPython %d.%d.%d" % ((VERSION,) + sys.implementation.version[:3])


class System:
    # What the device service needs from the app: reboot, factory reset, errors, clock
    # (unix time = the port's time.time() + _EPOCH + clock_offset); mount() makes it the
    # service of /3 itself: identity, reboot, factory reset, memory, error code, clock. The
    # read-only resources are made when asked for rather than kept.
    last_error = 0  # (class defaults: an instance's dict holds them once they change)
    clock_offset = 0

    def __init__(self, platform, reboot, factory_reset):
        self.platform = platform
        self.reboot = reboot
        self.factory_reset = factory_reset

    def serve(self, s, m, inst, res, p):
        if res <= 3 or res == 6 or res == 7 or res == 10:
            if m == _GET:
                if res == 0:
                    return b"twintap"
                if res == 1:
                    return self.name.encode()
                if res == 2:
                    return serial_number(self.platform.unique_id()).encode()
                if res == 3:
                    return firmware_version().encode()
                if res == 6:
                    return bytes((_DC,))
                if res == 7:
                    return struct.pack(">I", self.vcc_mv)
                import gc

                gc.collect()  # /3//10: what is really free, not what garbage hides
                return struct.pack(">I", self.platform.mem_free())
        elif res == 4:
            if m == _POST:
                return self.reboot()
        elif res == 5:
            if m == _POST:
                return self.factory_reset()
        elif res == 11:
            if m == _GET:
                return struct.pack(">I", self.last_error)
            if m == _POST:
                self.last_error = _u32(p)
                return None
        elif res == 12:
            if m == _POST:
                self.last_error = 0
                return None
        elif res == 13:
            if m == _GET:
                t = time.gmtime(int(time.time() + _EPOCH + self.clock_offset) - _EPOCH)
                return ("%04d-%02d-%02dT%02d:%02d:%02dZ" % t[:6]).encode()
            if m == _PUT:
                self.clock_offset = _u32(p) - (time.time() + _EPOCH)
                return None
        else:
            return NO_RESOURCE
        return NO_METHOD


def mount(d, system, board):
    system.name = board.get("name", system.platform.name)
    system.vcc_mv = board.get("vcc_mv", 3300)
    d.register(_OBJ, system)


def _u32(p):
    if len(p) < 4:
        raise TapError(tapcodes.NOT_ACCEPTABLE)
    return struct.unpack_from(">I", p)[0]
