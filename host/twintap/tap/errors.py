"""Errors of the Tap client: one base class, carrying the Tap result code when there is one."""

from __future__ import annotations

from twintap import TwintapError
from twintap.proto import tapcodes


class TapError(TwintapError):
    """A Tap request failed: an error status (``code`` set), a broken link or a bad answer."""

    def __init__(self, message: str, code: int | None = None, response: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.response = response

    @property
    def code_name(self) -> str | None:
        return None if self.code is None else tapcodes.name(self.code)


class TapTimeout(TapError, TimeoutError):
    """No complete response arrived within the request timeout."""
