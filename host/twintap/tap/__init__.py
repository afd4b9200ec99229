"""Tap client library: ``Tap.connect(url)`` then requests and named services.

>>> with Tap.connect("tcp://127.0.0.1:2000") as tap:
...     tap.device.serial_number()
...     tap.get("/1029/1/4").body()
...     tap.variable.read(1)
...     tap.auth.login("admin", "admin")   # basic, hashed or SCRAM, as the Tap says
...     tap.encryption.start()             # or the SCRAM login's own encrypted session
"""

from __future__ import annotations

from twintap.tap.auth import Auth, TapAuthError
from twintap.tap.client import Tap
from twintap.tap.encryption import Encryption
from twintap.tap.errors import TapError, TapTimeout
from twintap.tap.links import Link, SerialLink, TcpLink, open_link
from twintap.tap.response import Response
from twintap.tap.services import MULTI_ANYTHING, MULTI_SUCCESS, VariableType

__all__ = [
    "MULTI_ANYTHING", "MULTI_SUCCESS", "Auth", "Encryption", "Link", "Response", "SerialLink",
    "Tap", "TapAuthError", "TapError", "TapTimeout", "TcpLink", "VariableType", "open_link",
]
