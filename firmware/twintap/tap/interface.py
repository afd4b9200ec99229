# Interface service, object 1024 (spec tap-protocol.md section 6, "interface"), without the
# login, security options and encryption resources (tap/auth.py). Reads are answered here;
# the configuration writes and multi-request /1024//89, rare, live in tap/ifwrite.py,
# imported for such a request and forgotten after it.
import struct

from .. import forget, ticks
from ..proto import tapcodes, values
from .config import IN_PROGRESS
from .dispatcher import NO_METHOD, NO_RESOURCE, TapError

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_IF = const(1024)
_GET = const(1)
_POST = const(2)
_PUT = const(3)
WIFI = const(0x20)
BLE = const(0x40)
UART = const(0x100)
_MAX_REQUEST = const(255)  # Lc is one byte
_MAX_RESPONSE = const(255)


def mount(d, cfg, available_protocols, boot_ms):
    d.register(_IF, Interface(d, cfg, available_protocols, boot_ms))


class Interface:
    # The service of /1024 but for its security resources (tap/auth.py serves those).
    def __init__(self, d, cfg, protocols, boot_ms):
        self.d = d
        self.cfg = cfg
        self.protocols = protocols
        self.boot_ms = boot_ms

    def serve(self, s, m, inst, res, p):
        # the resources of this service; those a PUT writes, and /89, go to tap/ifwrite.py
        if res not in (2, 3, 4, 7, 8, 9, 10, 11, 17, 18, 19, 21, 34, 36, 84, 88, 89):
            return NO_RESOURCE
        if m == _PUT and res in (3, 8, 9, 10, 11, 17, 19, 34, 36, 84) or m == _GET and res == 89:
            from . import ifwrite

            try:
                return ifwrite.serve(self, s, res, p)
            finally:
                forget("tap.ifwrite")
        c = self.cfg.d
        if m == _POST and res == 10:  # reload: refused while the configurator is writing
            if c["config_version"] == IN_PROGRESS:  # ("configuration in progress")
                raise TapError(tapcodes.RESOURCE_LOCKED)
            return None
        if m != _GET or res == 89:
            return NO_METHOD
        # profile (2) and group (7) follow login, logout and expiry
        if res == 2:
            v = s.profile
        elif res == 7:
            v = s.group
        elif res == 3:  # the protocol of the link this request came by
            kind = s.link.split("#")[0]
            v = WIFI if kind == "tcp" else BLE if kind == "ble" else UART
        elif res == 21:
            v = self.protocols
        elif res == 17:
            v = c.get("authorized_protocols", self.protocols)
        elif res == 8 or res == 18:
            v = c["config_format"]
        elif res == 34:
            v = c.get("inactivity", 0)
        elif res == 4:
            return struct.pack(">I", ticks.ticks_diff(ticks.ticks_ms(), self.boot_ms))
        elif res == 88:
            return struct.pack(">HH", _MAX_REQUEST, _MAX_RESPONSE)
        elif res == 9:
            return c["app_name"].encode()
        elif res == 10:
            return values.encode_version(c["config_version"])
        elif res == 36:
            return bytes.fromhex(c["app_data"])
        else:  # 11, 19, 84: app path, universal link, product code: stored ascii
            return c["strings"].get(str(res), "").encode()
        return struct.pack(">H", v)
