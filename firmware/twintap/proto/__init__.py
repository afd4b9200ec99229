# twintap.proto: pure codecs shared by the board (MicroPython) and the host (CPython).
# No I/O here, and only the common subset of both interpreters: struct, bytes, bytearray,
# memoryview; no enum, dataclasses or typing.


class DecodeError(ValueError):
    # The one error every decoder raises on bad input. `code` is the Tap result code (or
    # Rapidomize status) an endpoint should answer with; 0x80 BAD_REQUEST by default.
    def __init__(self, msg, code=0x80):
        super().__init__(msg)
        self.code = code
