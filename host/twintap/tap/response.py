"""A Tap response and the method names: shared by the client and its services."""

from __future__ import annotations

from dataclasses import dataclass

from twintap.proto import frame, tapcodes
from twintap.tap.errors import TapError

METHODS = {"GET": frame.GET, "POST": frame.POST, "PUT": frame.PUT}


@dataclass
class Response:
    """One Tap response: ``code`` (the status byte) and ``data``; the request it answers."""

    code: int
    data: bytes = b""
    method: str = "GET"
    path: str = ""

    @property
    def ok(self) -> bool:
        """True for a success status (bit 7 clear; BUSY counts as success, as in the spec)."""
        return tapcodes.is_success(self.code)

    @property
    def code_name(self) -> str:
        return tapcodes.name(self.code)

    def error_message(self) -> str:
        return f"{self.method} {self.path}: {self.code_name} (0x{self.code:02X})"

    def body(self) -> bytes:
        """The data of a successful response; raises :class:`TapError` on an error status."""
        if not self.ok:
            raise TapError(self.error_message(), self.code, self)
        return self.data

    def __str__(self) -> str:
        return f"{self.code_name} (0x{self.code:02X}) {self.data.hex(' ')}".rstrip()


def method_code(method: str | int) -> int:
    """``"GET"``/``"get"``/``1`` -> 1 (frame.GET); ValueError otherwise."""
    if isinstance(method, int):
        if method in frame.METHOD_NAMES:
            return method
    elif method.upper() in METHODS:
        return METHODS[method.upper()]
    raise ValueError(f"unknown Tap method {method!r} (GET, PUT or POST)")
