"""Named Tap services over ``tap.request`` (spec tap-protocol.md section 6), with the value
converters of section 7 taken from ``twintap.proto`` (values, tlv, frame)."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from twintap.proto import DecodeError, frame, tapcodes, tlv, values
from twintap.tap.errors import TapError, TapTimeout
from twintap.tap.response import Response, method_code

if TYPE_CHECKING:
    from twintap.tap.client import Tap

CREATE = 0xFFFF  # resource "create"
MULTI_SUCCESS = 0x7F  # multi-request: expect a success status
MULTI_ANYTHING = 0xFF  # multi-request: accept any status

# hostProto (u16 enum / bit mask)
HOST_PROTOCOLS = {
    1: "NFC", 2: "BLUETOOTH", 4: "GSM", 8: "USB_RLINK", 16: "USB_CMSIS_DAP", 32: "WIFI",
    64: "BLE", 256: "UART", 512: "MQTT", 1024: "WEBSOCKET",
}
# group ids fixed by the IoTize configurator
GROUPS = {"anonymous": 0, "admin": 0xFFFF, "supervisor": 0xFFFE}


# -- converters (thin wrappers over twintap.proto) ----------------------------------------
def decode_ascii(data: bytes) -> str:
    """StringConverter: cut at the first 00, clear bit 7."""
    clean = bytes(b & 0x7F for b in data)
    return values.decode(values.ASCII, clean, len(clean))


def decode_uint(t: int, data: bytes) -> int:
    """u8/u16/u32 (values.UINT8...): the first N bytes, big-endian (NumberConverter)."""
    return values.decode(t, data[: values.size(t)])


def encode_uint(t: int, v: int) -> bytes:
    return values.encode(t, int(v))


def rights_text(read: bool, write: bool) -> str:
    return ("r" if read else "") + ("w" if write else "") or "-"


def encode_acl(group: int, read: bool, write: bool) -> bytes:
    """readWriteRights: 0x41 group u8 rights, or 0x61 group u16 rights (bit1 write, bit0 read)."""
    rights = (2 if write else 0) | (1 if read else 0)
    if not 0 <= group <= 0xFFFF:
        raise ValueError(f"group id {group} out of 0..65535")
    if group <= 0xFF:
        return bytes((0x41, group, rights))
    return b"\x61" + struct.pack(">H", group) + bytes((rights,))


def decode_access(data: bytes) -> str:
    """readWriteRights -> "r", "w", "rw" or "-" (the rights byte; header and group optional)."""
    if not data:
        raise DecodeError("empty access rights", tapcodes.NOT_ACCEPTABLE)
    rights = data[-1]
    return rights_text(bool(rights & 1), bool(rights & 2))


def tlv_values(data: bytes) -> dict[int, bytes]:
    """A TLV bundle read (one or more type-2 nodes, or bare type-3 nodes) -> {var id: raw}."""
    out: dict[int, bytes] = {}
    for kind, ident, value in tlv.decode(data):
        if kind == tlv.RESOURCE_VALUE:
            out[ident] = value
        else:
            for _kind, vid, raw in tlv.decode(value):
                out[vid] = raw
    return out


def decode_value(t: int, raw: bytes, count: int = 1) -> Any:
    """Raw variable bytes -> Python value; floats rounded to 5 decimals as the JS client does."""
    v = values.decode(t, raw, count)
    if t == values.FLOAT32:
        v = [round(x, 5) for x in v] if isinstance(v, list) else round(v, 5)
    return v


def format_value(v: Any) -> str:
    """A decoded value as the CLI shows it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ",".join(format_value(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}" if abs(v) < 1e15 else repr(v)
    return str(v)


def encode_multi_request(calls: Iterable[Sequence]) -> bytes:
    """[(method, path[, payload[, expected]])] -> body of GET /1024//89.

    Each call = requestLen u16 (7 + payload) | TapRequestFrame | expected status u8
    (MULTI_SUCCESS 0x7F or MULTI_ANYTHING 0xFF, the default).
    """
    out = bytearray()
    for call in calls:
        method, path, payload, expected = (tuple(call) + (b"", MULTI_ANYTHING))[:4]
        obj, inst, res = frame.parse_path(path)
        f = frame.encode_frame(method_code(method), obj, inst, res, bytes(payload))
        out += struct.pack(">H", len(f)) + f + bytes((expected,))
    return bytes(out)


def decode_multi_response(body: bytes, calls: Sequence[Sequence] = ()) -> list[Response]:
    """Body of a multi-request response (repeat: len u16 = 1 + data, status u8, data) ->
    one Response per call (method and path taken from ``calls`` when given)."""
    out: list[Response] = []
    i = 0
    while i < len(body):
        if i + 3 > len(body):
            raise DecodeError("multi-request response truncated")
        (n,) = struct.unpack_from(">H", body, i)
        if n < 1 or i + 2 + n > len(body):
            raise DecodeError("multi-request response length %d does not fit" % n)
        method, path = "GET", ""
        if len(out) < len(calls):
            call = calls[len(out)]
            method = frame.METHOD_NAMES[method_code(call[0])]
            path = frame.format_path(*frame.parse_path(call[1]))
        out.append(Response(body[i + 2], bytes(body[i + 3 : i + 2 + n]), method, path))
        i += 2 + n
    return out


# -- services -------------------------------------------------------------------------------
class Service:
    """Base of the named services: one LwM2M object, requests through ``tap``."""

    OBJ = 0

    def __init__(self, tap: Tap) -> None:
        self.tap = tap

    def path(self, inst: int | None, res: int) -> str:
        return frame.format_path(self.OBJ, inst, res)

    def _call(
        self, method: int, inst: int | None, res: int, payload: bytes = b"",
        decode: Callable[[bytes], Any] | None = None,
    ) -> Any:
        resp = self.tap.request(method, self.path(inst, res), payload)
        data = resp.body()
        if decode is None:
            return data
        try:
            return decode(data)
        except DecodeError as e:
            raise TapError(
                f"{resp.method} {resp.path}: cannot decode {data.hex(' ')}: {e}", e.code, resp
            ) from e

    def _get(self, inst, res, decode=None, payload=b""):
        return self._call(frame.GET, inst, res, payload, decode)

    def _put(self, inst, res, payload=b""):
        return self._call(frame.PUT, inst, res, payload)

    def _post(self, inst, res, payload=b""):
        return self._call(frame.POST, inst, res, payload)


def _u8(data: bytes) -> int:
    return decode_uint(values.UINT8, data)


def _u16(data: bytes) -> int:
    return decode_uint(values.UINT16, data)


def _u32(data: bytes) -> int:
    return decode_uint(values.UINT32, data)


class DeviceService(Service):
    """Object 3: identity, memory, time, reboot."""

    OBJ = 3

    def manufacturer(self) -> str:
        return self._get(None, 0, decode_ascii)

    def model(self) -> str:
        """/3//1, getFirmwareFlavor: the board model on twintap."""
        return self._get(None, 1, decode_ascii)

    def serial_number(self) -> str:
        return self._get(None, 2, decode_ascii)

    def firmware_version(self) -> str:
        return self._get(None, 3, decode_ascii)

    def reboot(self) -> None:
        self._post(None, 4)

    def factory_reset(self) -> None:
        self._post(None, 5)

    def power_source(self) -> int:
        return self._get(None, 6, _u8)

    def power_voltage(self) -> int:
        return self._get(None, 7, _u32)

    def memory_free(self) -> int:
        return self._get(None, 10, _u32)

    def last_error(self) -> int:
        return self._get(None, 11, _u32)

    def reset_last_error(self) -> None:
        self._post(None, 12)

    def time(self) -> str:
        return self._get(None, 13, decode_ascii)

    def set_time(self, seconds: int) -> None:
        """PUT /3//13: the current time as u32 seconds."""
        self._put(None, 13, encode_uint(values.UINT32, seconds))


class InterfaceService(Service):
    """Object 1024: the Tap interface (login, application, configuration, protocols)."""

    OBJ = 1024

    def login(self, username: str, password: str) -> None:
        """Basic login: POST /1024//0 with 16-byte zero-padded user name and password."""
        body = b"".join(s.encode()[:16].ljust(16, b"\x00") for s in (username, password))
        self._post(None, 0, body)

    def logout(self) -> None:
        self._post(None, 1)

    def current_profile_id(self) -> int:
        return self._get(None, 2, _u16)

    def host_protocol(self) -> str:
        v = self._get(None, 3, _u16)
        return HOST_PROTOCOLS.get(v, "0x%04X" % v)

    def keep_alive(self) -> int:
        return self._get(None, 4, _u32)

    def uid(self) -> bytes:
        return self._get(None, 5)

    def security_options(self) -> dict[str, bool]:
        """/1024//6: byte1 bit4 scram, bit3 hashPassword, bit2..0 factory-reset/UID locks."""
        b = self._get(None, 6)
        bits = b[1] if len(b) > 1 else (b[0] if b else 0)
        return {
            "scram": bool(bits & 0x10),
            "hash_password": bool(bits & 0x08),
            "disable_hardware_factory_reset": bool(bits & 0x04),
            "disable_login_with_uid": bool(bits & 0x02),
            "disable_resource_factory_reset": bool(bits & 0x01),
        }

    def current_group_id(self) -> int:
        return self._get(None, 7, _u16)

    def config_format_version(self) -> int:
        return self._get(None, 8, _u16)

    def app_name(self) -> str:
        return self._get(None, 9, decode_ascii)

    def set_app_name(self, name: str) -> None:
        self._put(None, 9, name.encode("ascii"))

    def config_version(self) -> str:
        """/1024//10: "a.b.c" (a u8, b u8, c u16)."""
        return self._get(None, 10, values.decode_version)

    def set_config_version(self, version: str) -> None:
        self._put(None, 10, values.encode_version(version))

    def app_path(self) -> str:
        return self._get(None, 11, decode_ascii)

    def available_host_protocols(self) -> list[str]:
        """/1024//21: the u16 mask as names."""
        mask = self._get(None, 21, _u16)
        return [n for v, n in HOST_PROTOCOLS.items() if mask & v == v]

    def application_data(self) -> bytes:
        return self._get(None, 36)

    def set_application_data(self, data: bytes) -> None:
        self._put(None, 36, data)

    def product_code(self) -> str:
        return self._get(None, 84, decode_ascii)

    def max_frame_size(self) -> tuple[int, int]:
        """/1024//88: (request, response) maximum frame sizes of the current host protocol."""
        return self._get(None, 88, lambda d: (_u16(d[:2]), _u16(d[2:4])))

    def multi_request(self, calls: Sequence[Sequence]) -> list[Response]:
        """GET /1024//89: several requests in one frame.

        ``calls`` = [(method, path, payload, expected)] (payload and expected optional;
        expected MULTI_SUCCESS 0x7F or MULTI_ANYTHING 0xFF). Returns one Response each.
        """
        try:
            body = encode_multi_request(calls)
        except (ValueError, DecodeError) as e:
            raise TapError(f"multi-request: {e}") from e
        return self._get(None, 89, lambda d: decode_multi_response(d, calls), body)


def _split_type(data: bytes) -> tuple[int, int]:
    if not data:
        raise DecodeError("empty variable type", tapcodes.NOT_ACCEPTABLE)
    return values.split_type_byte(data[0])


class VariableType(NamedTuple):
    domain: int
    code: int  # values.BOOLEAN ... values.UINT32
    name: str  # "float32" ...


class VariableService(Service):
    """Object 1029: variables. ``read``/``write`` use the type and element count read once
    from ``/1029/{id}/1`` and ``/2`` and kept (``forget(id)`` drops them)."""

    OBJ = 1029

    def __init__(self, tap: Tap) -> None:
        super().__init__(tap)
        self._info: dict[int, tuple[int, int]] = {}

    # configuration
    def address(self, vid: int) -> int:
        return self._get(vid, 0, _u32)

    def set_address(self, vid: int, address: int) -> None:
        self._put(vid, 0, encode_uint(values.UINT32, address))

    def type(self, vid: int) -> VariableType:
        """/1029/{id}/1: the type byte, split into (domain, code, name)."""
        domain, code = self._get(vid, 1, _split_type)
        return VariableType(domain, code, values.type_name(code))

    def set_type(self, vid: int, data_type: int | str, domain: int = values.DOMAIN_VOLATILE):
        self._put(vid, 1, bytes((values.type_byte(domain, values.type_code(data_type)),)))
        self._info.pop(vid, None)

    def count(self, vid: int) -> int:
        """/1029/{id}/2: number of elements (characters for ascii)."""
        return self._get(vid, 2, _u8)

    def set_count(self, vid: int, count: int) -> None:
        self._put(vid, 2, encode_uint(values.UINT8, count))
        self._info.pop(vid, None)

    def access(self, vid: int) -> str:
        """/1029/{id}/3: the current profile's rights, "r", "w", "rw" or "-"."""
        return self._get(vid, 3, decode_access)

    def bundle_id(self, vid: int) -> int:
        return self._get(vid, 6, _u16)

    def set_bundle_id(self, vid: int, bundle: int) -> None:
        self._put(vid, 6, encode_uint(values.UINT16, bundle))

    def meta(self, vid: int) -> str:
        """/1029/{id}/8: "name:unit" (UTF-8)."""
        return self._get(vid, 8, lambda d: bytes(d).decode("utf-8", "replace"))

    def set_meta(self, vid: int, name: str, unit: str = "") -> None:
        self._put(vid, 8, (f"{name}:{unit}" if unit else name).encode())

    def name(self, vid: int) -> str:
        return self.meta(vid).partition(":")[0]

    def unit(self, vid: int) -> str:
        """/1029/{id}/9, or the unit part of the meta when the Tap has no /9."""
        resp = self.tap.get(self.path(vid, 9))
        if resp.code in (tapcodes.NOT_FOUND, tapcodes.NOT_IMPLEMENTED):
            return self.meta(vid).partition(":")[2]
        return decode_ascii(resp.body())

    def set_unit(self, vid: int, unit: str) -> None:
        self._put(vid, 9, unit.encode("ascii"))

    def create(self, vid: int, extra: int | None = None) -> None:
        """POST /1029/{id}/65535 (body: u8 extra size, when given)."""
        self._post(vid, CREATE, b"" if extra is None else bytes((extra,)))

    # values
    def read_raw(self, vid: int) -> bytes:
        return self._get(vid, 4)

    def write_raw(self, vid: int, raw: bytes) -> None:
        """POST /1029/{id}/5 (setValue), as the official data layer writes."""
        self._post(vid, 5, raw)

    def put_raw(self, vid: int, raw: bytes) -> None:
        """PUT /1029/{id}/4 (putValue)."""
        self._put(vid, 4, raw)

    def info(self, vid: int) -> tuple[int, int]:
        """(type code, element count), read once then cached."""
        if vid not in self._info:
            self._info[vid] = (self.type(vid).code, self.count(vid))
        return self._info[vid]

    def forget(self, vid: int | None = None) -> None:
        """Drop the cached type/count of ``vid`` (of every variable when None)."""
        if vid is None:
            self._info.clear()
        else:
            self._info.pop(vid, None)

    def decode(self, vid: int, raw: bytes) -> Any:
        t, n = self.info(vid)
        try:
            return decode_value(t, raw, n)
        except DecodeError as e:
            raise TapError(f"variable {vid}: cannot decode {raw.hex(' ')}: {e}", e.code) from e

    def encode(self, vid: int, value: Any) -> bytes:
        """A Python value (or command-line text, parsed per type) -> raw bytes."""
        t, n = self.info(vid)
        try:
            if isinstance(value, str) and t != values.ASCII:
                value = values.parse(t, value, n)
            return values.encode(t, value, n)
        except ValueError as e:
            raise TapError(f"variable {vid} ({values.type_name(t)}): {e}") from e

    def read(self, vid: int) -> Any:
        """The decoded value (a list when the count is > 1, a str for ascii)."""
        return self.decode(vid, self.read_raw(vid))

    def write(self, vid: int, value: Any) -> None:
        """Encode ``value`` for the variable's type and POST it to /1029/{id}/5."""
        self.write_raw(vid, self.encode(vid, value))

    def all_values(self) -> dict[int, bytes]:
        """GET /1029//4: every variable the profile may read -> {id: raw}."""
        return self._get(None, 4, tlv_values)

    # discovery
    def find(self, name: str) -> int:
        """The id of the readable variable called ``name``; TapError when there is none."""
        for vid in sorted(self.all_values()):
            meta = maybe(self.meta, vid)
            if meta is not None and meta.partition(":")[0] == name:
                return vid
        raise TapError(f"no variable named {name!r}")

    def resolve(self, var: int | str) -> int:
        """An id, or a name looked up with :meth:`find`."""
        if isinstance(var, int):
            return var
        return int(var) if var.strip().isdigit() else self.find(var)

    def describe(self, vid: int, raw: bytes | None = None) -> dict:
        """One variable: {id, name, unit, type, count, bundle, access, value}."""
        meta = maybe(self.meta, vid)
        name, _, unit = (meta or "").partition(":")
        vt = maybe(self.type, vid)
        count = maybe(self.count, vid)
        if vt is not None and count is not None:
            self._info[vid] = (vt.code, count)
        unit9 = maybe(self._get, vid, 9, decode_ascii)
        d = {
            "id": vid,
            "name": name if meta is not None else None,
            "unit": unit9 or unit,
            "type": vt.name if vt else None,
            "count": count,
            "bundle": maybe(self.bundle_id, vid),
            "access": maybe(self.access, vid),
            "value": None,
        }
        if raw is not None and vid in self._info:
            d["value"] = maybe(self.decode, vid, raw)
        return d

    def describe_all(self) -> list[dict]:
        """:meth:`describe` for every id of GET /1029//4."""
        return [self.describe(vid, raw) for vid, raw in sorted(self.all_values().items())]


def maybe(fn: Callable, *args: Any) -> Any:
    """fn(*args), or None when the Tap answers an error status (link errors propagate)."""
    try:
        return fn(*args)
    except TapTimeout:
        raise
    except TapError as e:
        if e.code is None:
            raise
        return None


class BundleService(Service):
    """Object 1028: bundles of variables (values, name, ACL, data-log period)."""

    OBJ = 1028

    def values(self, bid: int) -> dict[int, bytes]:
        """GET /1028/{id}/1: TLV -> {variable id: raw bytes}."""
        return self._get(bid, 1, tlv_values)

    def name(self, bid: int) -> str:
        return self._get(bid, 4, decode_ascii)

    def set_name(self, bid: int, name: str) -> None:
        self._put(bid, 4, name.encode("ascii"))

    def create(self, bid: int) -> None:
        self._post(bid, CREATE)

    def put_acl(self, bid: int, group: int, read: bool, write: bool) -> None:
        """PUT /1028/{id}/0: rights of ``group`` on the bundle."""
        self._put(bid, 0, encode_acl(group, read, write))

    def data_log_period(self, bid: int) -> int:
        return self._get(bid, 2, _u32)

    def set_data_log_period(self, bid: int, period: int) -> None:
        self._put(bid, 2, encode_uint(values.UINT32, period))


class GroupService(Service):
    """Object 1025: groups (profiles): name, session lifetime, alias, password."""

    OBJ = 1025

    def name(self, gid: int) -> str:
        return self._get(gid, 0, decode_ascii)

    def set_name(self, gid: int, name: str) -> None:
        self._put(gid, 0, name.encode("ascii"))

    def change_password(self, gid: int, password: str) -> None:
        """POST /1025/{id}/2 with the password in ASCII (basic mode; the password travels:
        prefer ``tap.auth.change_password``, which sends SCRAM keys)."""
        self._post(gid, 2, password.encode("ascii"))

    def change_password_key(self, gid: int, key: bytes) -> None:
        """POST /1025/{id}/2 with storedKey | serverKey | salt (36 bytes) or H(pw) (16)."""
        self._post(gid, 2, key)

    def session_lifetime(self, gid: int) -> int:
        """/1025/{id}/4: minutes before a login of this group expires (0: never)."""
        return self._get(gid, 4, _u16)

    def set_session_lifetime(self, gid: int, minutes: int) -> None:
        self._put(gid, 4, encode_uint(values.UINT16, minutes))

    def alias(self, gid: int) -> int:
        return self._get(gid, 5, _u16)

    def set_alias(self, gid: int, alias: int) -> None:
        self._put(gid, 5, encode_uint(values.UINT16, alias))

    def create(self, gid: int) -> None:
        self._post(gid, CREATE)


class TargetService(Service):
    """Object 1027: the target (twintap has none; kept minimal)."""

    OBJ = 1027

    def protocol(self) -> int:
        return self._get(None, 1, _u8)

    def is_connected(self) -> bool:
        return self._get(None, 3, lambda d: bool(d and d[0] & 1))

    def connect(self) -> None:
        self._post(None, 3)

    def disconnect(self) -> None:
        self._post(None, 4)

    def reset(self) -> None:
        self._post(None, 5)
