# Tap result codes (spec tap-protocol.md section 2). A status is a success when bit 7 is 0.
# The codes the board answers with are here; is_success(), name() and the codes only clients
# meet (OK, CREATED, BUSY, METHOD_NOT_ALLOWED, NVM_FULL) are in tapcodes_client.py, reached
# through this module (tapcodes.name, tapcodes.OK) and imported on first use.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


CHANGED = const(0x44)
CONTENT = const(0x45)
BAD_REQUEST = const(0x80)
UNAUTHORIZED = const(0x81)
NOT_FOUND = const(0x84)
NOT_ACCEPTABLE = const(0x86)
RESOURCE_LOCKED = const(0x87)
INTERNAL_SERVER_ERROR = const(0xA0)
NOT_IMPLEMENTED = const(0xA1)
SERVICE_UNAVAILABLE = const(0xA3)


def __getattr__(name):
    # the client's half, on first use (a board never needs it)
    from . import tapcodes_client

    return getattr(tapcodes_client, name)
