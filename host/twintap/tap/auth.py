"""Tap login, logout and passwords (spec tap-protocol.md section 5), as ``@iotize/tap``'s
``TapAuth`` does: the method comes from the Tap's security options (``GET /1024//6``):

- scramActivated: SCRAM (``GET /1024//40`` then ``/41``); the session key it yields starts
  the encrypted session (``tap.encryption``), frame ids from 0;
- hashPassword: ``POST /1024//0`` with the user name and ``H(pw)`` (PBKDF2-SHA1);
- otherwise ``POST /1024//0`` with the user name and the password (16 bytes each).

Passwords are set as SCRAM keys derived here (``storedKey | serverKey | salt``, with a
random salt whose first byte is not 0 and the Tap's iterations from ``GET /1024//42``), so a
password never travels to the Tap. Neither passwords nor keys appear in messages.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

from twintap.proto import DecodeError, scram, tapcodes
from twintap.tap.errors import TapError

if TYPE_CHECKING:
    from twintap.tap.client import Tap

IF = 1024
GROUPS = {"anonymous": 0, "admin": 0xFFFF, "supervisor": 0xFFFE}
# security options, byte 1 of GET /1024//6
SCRAM = 0x10
HASH_PASSWORD = 0x08
PROBE_GROUPS = 64  # group ids probed when a user is named without its id


class TapAuthError(TapError):
    """A login failed: ``reason`` is "invalid-credentials", "too-many-attempts",
    "method-disabled", "invalid-server-proof" or "request"."""

    def __init__(self, message: str, reason: str, code: int | None = None) -> None:
        super().__init__(message, code)
        self.reason = reason


def random_salt() -> bytes:
    """4 random bytes whose first byte is not 0 (an all-zero salt disables a user)."""
    salt = bytearray(os.urandom(scram.SALT_SIZE))
    if salt[0] == 0:
        salt[0] = 1
    return bytes(salt)


class Auth:
    """Login state of one :class:`Tap` (``tap.auth``)."""

    def __init__(self, tap: Tap) -> None:
        self.tap = tap
        self.user: str | None = None
        self.method: str | None = None  # "basic", "hashed" or "scram" after a login

    # -- what the Tap says --------------------------------------------------------------------
    def options(self) -> int:
        """Byte 1 of the security options (GET /1024//6)."""
        data = self.tap.get(f"/{IF}//6").body()
        return data[1] if len(data) > 1 else (data[0] if data else 0)

    def method_for(self, options: int) -> str:
        if options & SCRAM:
            return "scram"
        return "hashed" if options & HASH_PASSWORD else "basic"

    def iterations(self) -> int:
        """The Tap's SCRAM iterations for new passwords (GET /1024//42, u32)."""
        data = self.tap.get(f"/{IF}//42").body()
        if len(data) < 4:
            raise TapError(f"GET /{IF}//42: 4 bytes expected, got {len(data)}")
        return struct.unpack(">I", data[:4])[0]

    def current_group(self) -> int:
        return self.tap.interface.current_group_id()

    def current_profile(self) -> int:
        return self.tap.interface.current_profile_id()

    # -- login ------------------------------------------------------------------------------
    def login(self, user: str, password: str, method: str | None = None) -> str:
        """Log in; returns the method used. :class:`TapAuthError` on refusal."""
        method = method or self.method_for(self.options())
        try:
            if method == "scram":
                self._scram(user, password)
            else:
                if method == "hashed":
                    secret = scram.hash_password(password)
                else:
                    secret = scram.field(password)
                self._check(self.tap.post(f"/{IF}//0", scram.field(user) + secret), user)
        except TapAuthError:
            raise
        except TapError as e:
            raise TapAuthError(f"login as {user!r} failed: {e}", "request", e.code) from None
        self.user = user
        self.method = method
        return method

    def _check(self, resp, user: str):
        if resp.ok:
            return resp.data
        if resp.code in (tapcodes.NOT_ACCEPTABLE, tapcodes.UNAUTHORIZED):
            raise TapAuthError(f"login as {user!r} refused: invalid user name or password",
                               "invalid-credentials", resp.code)
        if resp.code == tapcodes.SERVICE_UNAVAILABLE:
            raise TapAuthError("login refused: too many failed attempts, wait a minute",
                               "too-many-attempts", resp.code)
        if resp.code == tapcodes.RESOURCE_LOCKED:
            raise TapAuthError("login refused: this login method is disabled on the Tap",
                               "method-disabled", resp.code)
        raise TapAuthError(f"login as {user!r} failed: {resp.error_message()}", "request",
                           resp.code)

    def _scram(self, user: str, password: str) -> None:
        cn = struct.unpack(">I", os.urandom(4))[0]
        reply = self._check(self.tap.get(f"/{IF}//40", scram.encode_login(user, cn)), user)
        try:
            sn, salt, iterations = scram.decode_login_reply(reply)
        except DecodeError as e:
            raise TapAuthError(f"SCRAM login: bad reply: {e}", "request") from None
        if not 1 <= iterations <= 1_000_000:
            raise TapAuthError(f"SCRAM login: {iterations} iterations is not sensible", "request")
        stored, server = scram.keys_from_hash(scram.hash_password(password), salt, iterations)
        proof = scram.client_proof(stored, cn, sn)
        got = self._check(self.tap.get(f"/{IF}//41", proof), user)
        if got != scram.server_proof(server, cn, sn):
            raise TapAuthError("SCRAM login: the Tap's proof is wrong (not the expected Tap?)",
                               "invalid-server-proof")
        self.tap.encryption.set_key(scram.session_key(cn, sn, salt, server, stored))

    def logout(self) -> None:
        """POST /1024//1 (encrypted when the session is), then the session ends here too."""
        try:
            self.tap.post(f"/{IF}//1").body()
        finally:
            self.user = self.method = None
            self.tap.encryption.stop()

    def login_with_uid(self, uid: bytes) -> None:
        """POST /1024//5: admin login with the Tap's UID (GET /1024//5 where allowed)."""
        self._check(self.tap.post(f"/{IF}//5", bytes(uid)), "admin")
        self.user, self.method = "admin", "uid"

    # -- passwords --------------------------------------------------------------------------
    def group_id(self, user: str | int) -> int:
        """A group id from a number, a built-in name (admin, supervisor) or a user name
        looked up among the ids 1..64."""
        if isinstance(user, int):
            return user
        text = user.strip()
        if text.isdigit():
            return int(text)
        if text.lower().startswith("0x"):
            return int(text, 16)
        if text in GROUPS:
            return GROUPS[text]
        for gid in range(1, PROBE_GROUPS + 1):
            resp = self.tap.get(f"/1025/{gid}/0")
            if resp.ok and scram.unfield(resp.data).decode(errors="replace") == text:
                return gid
        raise TapError(f"no user {text!r} among the group ids 1..{PROBE_GROUPS}: give its id")

    def password_key(self, password: str, iterations: int | None = None,
                     salt: bytes | None = None) -> bytes:
        """The 36-byte SCRAM key of ``password`` for this Tap (its iterations)."""
        if iterations is None:
            iterations = self.iterations()
        return scram.password_key(password, salt or random_salt(), iterations)

    def change_password(self, user: str | int, password: str) -> int:
        """Set the password of ``user`` (POST /1025/{g}/2 with SCRAM keys derived here).
        Returns the group id."""
        if not password:
            raise TapError("empty password")
        gid = self.group_id(user)
        self.tap.post(f"/1025/{gid}/2", self.password_key(password)).body()
        return gid

    def __repr__(self) -> str:
        return f"<Auth user={self.user!r} method={self.method}>"
