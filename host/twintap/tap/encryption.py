"""Encrypted Tap sessions, as ``@iotize/tap``'s ``TapEncryption``/``ScramInterceptor`` do
(spec tap-protocol.md section 4).

Once a session key is set (``start()`` asks the Tap for one with ``GET /1024//47``; a SCRAM
login sets its own), every request goes as a bare TapRequestFrame wrapped in an encrypted
frame (id, length, padding, CRC-32/MPEG-2; AES-128-CBC restarting at the IV for every frame)
inside ``GET /1024//48``; the answer is ``status | data | 90 00`` in the same wrapper. IVs
are exchanged with ``GET /1024//45`` every ``iv_period`` frames (default 100; 1 = a fresh IV
per request through ``GET /1024//44``; 0 = never). Keys never appear in messages or reprs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from twintap.proto import DecodeError, encframe, frame, tapcodes
from twintap.tap.errors import TapError
from twintap.tap.response import Response

if TYPE_CHECKING:
    from twintap.tap.client import Tap

IF = 1024
SEND_WITH_IV = 44
SET_IV = 45
INITIALIZE = 47
SEND = 48
CARRIERS = (SEND_WITH_IV, SEND)
DEFAULT_IV_PERIOD = 100
IV_SIZE = 16


class Encryption:
    """The encrypted channel of one :class:`Tap` (``tap.encryption``)."""

    def __init__(self, tap: Tap, iv_period: int = DEFAULT_IV_PERIOD) -> None:
        self.tap = tap
        self.iv_period = iv_period
        self.active = False
        self.iv_supported = True
        self.frames = 0  # encrypted exchanges of this session
        self._key: bytes | None = None
        self._iv_enc = encframe.ZERO_IV  # requests
        self._iv_dec = encframe.ZERO_IV  # responses
        self._next_id = 0
        self._since_iv = 0

    # -- session ------------------------------------------------------------------------------
    @property
    def has_key(self) -> bool:
        return self._key is not None

    def set_key(self, key: bytes, reset_iv: bool = False) -> None:
        """Use ``key`` from now on (frame ids restart at 0), and encrypt."""
        if len(key) != 16:
            raise TapError("a session key is 16 bytes")
        self._key = bytes(key)
        self._next_id = 0
        if reset_iv:
            self._iv_enc = self._iv_dec = encframe.ZERO_IV
            self._since_iv = 0
        self.active = True

    def start(self, iv_period: int | None = None) -> None:
        """A new session: ``GET /1024//47`` (in clear) gives the key, then new IVs with
        ``GET /1024//45`` unless the period is 0 (NOT_FOUND/NOT_IMPLEMENTED: IVs stay zero)."""
        if iv_period is not None:
            self.iv_period = iv_period
        self.stop()
        key = self.tap.get(f"/{IF}//{INITIALIZE}").body()
        if len(key) != 16:
            raise TapError(f"GET /{IF}//{INITIALIZE}: a session key is 16 bytes, got {len(key)}")
        self.set_key(key, reset_iv=True)
        self.active = False  # the IV exchange of a new session goes in clear, as the JS does
        try:
            if self.iv_period > 0:
                self.refresh_iv()
        finally:
            self.active = True

    def stop(self) -> None:
        """Forget the key and IVs; requests go in clear again."""
        self.active = False
        self._key = None
        self._iv_enc = self._iv_dec = encframe.ZERO_IV
        self._next_id = 0
        self._since_iv = 0

    def refresh_iv(self) -> bool:
        """``GET /1024//45`` with a new client IV; both IVs change after its answer. Goes
        encrypted when the session is active. False when the Tap has no IV support."""
        client = os.urandom(IV_SIZE)
        resp = self.tap.get(f"/{IF}//{SET_IV}", client)
        if resp.code in (tapcodes.NOT_FOUND, tapcodes.NOT_IMPLEMENTED):
            self.iv_supported = False
            return False
        server = resp.body()
        if len(server) != IV_SIZE:
            raise TapError(f"GET /{IF}//{SET_IV}: the server IV is 16 bytes, got {len(server)}")
        self._iv_enc, self._iv_dec = client, bytes(server)
        self._since_iv = 0
        return True

    # -- requests ---------------------------------------------------------------------------
    def wants(self, obj: int, res: int) -> bool:
        """Whether a request goes encrypted (not the carriers themselves)."""
        return self.active and self._key is not None and not (obj == IF and res in CARRIERS)

    def request(self, method: int, obj: int, inst: int, res: int, payload: bytes,
                name: str, where: str) -> Response:
        """One request through the encrypted channel -> the inner :class:`Response`."""
        if self.iv_period > 1 and self.iv_supported and self._since_iv >= self.iv_period:
            self._since_iv = 0  # the refresh below is itself an encrypted exchange
            self.refresh_iv()
        inner = frame.encode_frame(method, obj, inst, res, payload)
        size = (len(inner) + 8 + 15) // 16 * 16 + (IV_SIZE if self.iv_period == 1 else 0)
        if size > frame.MAX_PAYLOAD:
            raise TapError(f"{name} {where}: {len(payload)} bytes do not fit an encrypted frame")
        fid = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFF
        key = self._key
        if self.iv_period == 1:
            iv = os.urandom(IV_SIZE)
            body = iv + encframe.encrypt(key, iv, fid, inner)
            data = self.tap.plain_request(frame.GET, IF, None, SEND_WITH_IV, body).body()
            if len(data) < IV_SIZE + 16:
                raise TapError(f"{name} {where}: encrypted answer too short")
            iv_dec, data = data[:IV_SIZE], data[IV_SIZE:]
            self._iv_enc, self._iv_dec = iv, iv_dec
        else:
            body = encframe.encrypt(key, self._iv_enc, fid, inner)
            iv_dec = self._iv_dec
            data = self.tap.plain_request(frame.GET, IF, None, SEND, body).body()
            self._since_iv += 1
        try:
            _, plain = encframe.decrypt(key, iv_dec, data)
            status, rdata = frame.decode_response(plain)
        except DecodeError as e:
            raise TapError(f"{name} {where}: cannot decrypt the answer: {e}") from None
        self.frames += 1
        return Response(status, rdata, name, where)

    def __repr__(self) -> str:
        state = "active" if self.active else ("paused" if self._key else "off")
        return f"<Encryption {state} iv_period={self.iv_period}>"
