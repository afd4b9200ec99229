"""The Tap client: requests and responses over a link, with the named services attached.

Shaped like ``@iotize/tap``: ``tap.request(method, path, payload)`` returns a
:class:`Response` whose ``body()`` raises :class:`TapError` on an error status, and the
services (``tap.device``, ``tap.interface``, ``tap.variable``, ``tap.bundle``, ``tap.group``,
``tap.target``) wrap the paths of the spec's service tables with their converters;
``tap.auth`` logs in and out (basic, hashed or SCRAM, as the Tap's security options say) and
``tap.encryption`` runs the encrypted session.
"""

from __future__ import annotations

from twintap.proto import DecodeError, frame
from twintap.tap import services
from twintap.tap.auth import Auth
from twintap.tap.encryption import Encryption
from twintap.tap.errors import TapError, TapTimeout
from twintap.tap.links import Link, open_link
from twintap.tap.response import Response, method_code


class Tap:
    """A Tap reached through one link. ``Tap.connect(url)``; a context manager."""

    def __init__(self, link: Link, timeout: float = 2.0) -> None:
        self.link = link
        self.timeout = timeout
        self.device = services.DeviceService(self)
        self.interface = services.InterfaceService(self)
        self.variable = services.VariableService(self)
        self.bundle = services.BundleService(self)
        self.group = services.GroupService(self)
        self.target = services.TargetService(self)
        self.encryption = Encryption(self)
        self.auth = Auth(self)

    @classmethod
    def connect(cls, url: str, timeout: float = 2.0) -> Tap:
        """Open ``url`` (``tcp://host:port``, ``serial:///dev/ttyUSB0?baud=115200``, a device
        or pty path, or a pyserial URL); ``timeout`` bounds each request, in seconds."""
        return cls(open_link(url, timeout=timeout), timeout=timeout)

    @property
    def url(self) -> str:
        return self.link.url

    def request(self, method: str | int, path: str, payload: bytes = b"") -> Response:
        """Send one request and return its :class:`Response` (whatever its status).

        Inside an encrypted session (``tap.encryption``) the request travels encrypted and
        the Response is the inner answer. Raises :class:`TapError` for a bad path or
        payload, a broken link or a malformed answer, and :class:`TapTimeout` when no
        complete answer comes within the timeout.
        """
        try:
            m = method_code(method)
            obj, inst, res = frame.parse_path(path)
        except (ValueError, DecodeError) as e:
            raise TapError(f"{method} {path}: {e}") from e
        if self.encryption.wants(obj, res):
            name = frame.METHOD_NAMES[m]
            where = frame.format_path(obj, inst, res)
            return self.encryption.request(m, obj, inst, res, bytes(payload), name, where)
        return self.plain_request(m, obj, inst, res, payload)

    def plain_request(self, m: int, obj: int, inst: int | None, res: int,
                      payload: bytes = b"") -> Response:
        """One request APDU as it is, never encrypted (the carriers use this)."""
        try:
            apdu = frame.encode_request(m, obj, inst, res, bytes(payload))
        except (ValueError, DecodeError) as e:
            raise TapError(f"{frame.METHOD_NAMES.get(m, m)} "
                           f"{frame.format_path(obj, inst, res)}: {e}") from e
        name = frame.METHOD_NAMES[m]
        where = frame.format_path(obj, inst, res)
        try:
            raw = self.link.transact(apdu, self.timeout)
        except TapTimeout as e:
            raise TapTimeout(f"{name} {where}: {e}") from None
        except TapError as e:
            raise TapError(f"{name} {where}: {e}") from None
        try:
            status, data = frame.decode_response(raw)
        except DecodeError as e:
            raise TapError(f"{name} {where}: bad response {raw.hex(' ')}: {e}") from e
        return Response(status, data, name, where)

    def get(self, path: str, payload: bytes = b"") -> Response:
        return self.request(frame.GET, path, payload)

    def put(self, path: str, payload: bytes = b"") -> Response:
        return self.request(frame.PUT, path, payload)

    def post(self, path: str, payload: bytes = b"") -> Response:
        return self.request(frame.POST, path, payload)

    def variables(self) -> list[dict]:
        """The variables this profile can read, probed by id.

        ``GET /1029//4`` gives the ids (the TLV children); each id is then asked for its
        meta, unit, type, element count, bundle and access. Returns dicts with the keys
        ``id, name, unit, type, count, bundle, access, value`` (None where the Tap has no
        answer; ``value`` decoded from the profile read when the type is known).
        """
        return self.variable.describe_all()

    def close(self) -> None:
        self.link.close()

    def __enter__(self) -> Tap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Tap {self.url}>"
