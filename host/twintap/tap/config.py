"""Apply an IoTize-shaped Tap configuration (JSON), step by step, as the official configurator
does: mark the configuration as in progress (config version 255.255.65535), write the
application name, the profiles, the bundles (create, name, ACLs, data-log period) and their
variables (create, type, count, bundle, meta, address, initial value), then write the final
configuration version. Profile lifetimes are in minutes (0: no limit); a profile's
``password`` is turned into SCRAM keys here (with the Tap's iterations) and ``key`` is such
a key already (hex storedKey | serverKey | salt): setting another user's password takes an
admin login (``twintap tap --user admin ...``).

Shape (the fields read; everything else is ignored)::

    {"application": {"name": "bench", "version": "1.0.0"},
     "config": {"version": "1.0.0"},
     "data": {
       "profiles": [{"id": 1, "username": "operator", "lifeTime": 60, "alias": 0,
                     "password": "..."}],
       "bundles": [{"id": 3, "name": "extra", "dataLogPeriod": 0,
                    "acls": {"anonymous": {"read": true, "write": false},
                             "operator": {"read": true, "write": true}},
                    "variables": [{"id": 10, "name": "speed", "unit": "rpm",
                                   "dataType": "UINT16", "domain": "IN_TAP_VOLATIL",
                                   "length": 1, "value": 1200}]}]}}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from twintap import TwintapError
from twintap.proto import frame, values
from twintap.tap.services import GROUPS, encode_acl

IN_PROGRESS = "255.255.65535"
DEFAULT_VERSION = "1.0.0"
DOMAINS = {"TARGET": 0, "GPIO": 1, "IN_TAP_STATIC": 2, "IN_TAP_VOLATIL": 3, "IN_TAP_VOLATILE": 3}
DEFAULT_DOMAIN = "IN_TAP_VOLATIL"  # twintap has no target: variables live in the Tap
TYPE_ALIASES = {"BOOLEAN": "bool", "FLOAT": "float32", "STRING": "ascii"}


class Step(NamedTuple):
    label: str
    method: int
    path: str
    payload: bytes | Callable[[Any], bytes] = b""  # a callable gets the Tap at apply time


class ConfigError(TwintapError):
    """The configuration file is not usable (before anything is sent) or a step failed."""


def _bad(where: str, msg: str) -> ConfigError:
    return ConfigError(f"configure: {where}: {msg}")


def _int(where: str, v: Any, lo: int, hi: int) -> int:
    try:
        n = int(v, 0) if isinstance(v, str) else int(v)
    except (TypeError, ValueError):
        raise _bad(where, f"not a number: {v!r}") from None
    if isinstance(v, bool) or not lo <= n <= hi:
        raise _bad(where, f"{v!r} is out of {lo}..{hi}")
    return n


def _u(t: int, v: int) -> bytes:
    return values.encode(t, v)


def data_type(where: str, v: dict) -> int:
    name = str(v.get("dataType", v.get("type", ""))).strip()
    key = TYPE_ALIASES.get(name.upper(), name.lower())
    try:
        return values.type_code(key)
    except ValueError:
        raise _bad(where, f"unknown dataType {name!r}") from None


def domain(where: str, v: dict) -> int:
    name = str(v.get("domain", DEFAULT_DOMAIN)).strip().upper()
    if name not in DOMAINS:
        raise _bad(where, f"unknown domain {name!r} (one of {', '.join(DOMAINS)})")
    return DOMAINS[name]


def group_ids(profiles: list[dict]) -> dict[str, int]:
    """User name -> group id: anonymous 0, admin 0xFFFF, supervisor 0xFFFE, then profiles."""
    ids = dict(GROUPS)
    for i, p in enumerate(profiles):
        if "username" in p:
            ids[str(p["username"])] = _int(f"data.profiles[{i}].id", p.get("id"), 0, 0xFFFF)
    return ids


def _rights(where: str, r: Any) -> tuple[bool, bool]:
    if isinstance(r, str):
        return "r" in r.lower(), "w" in r.lower()
    if isinstance(r, dict):
        return bool(r.get("read", False)), bool(r.get("write", False))
    raise _bad(where, f"rights must be {{read, write}} or a string like 'rw': {r!r}")


def _variable_steps(where: str, v: dict, bid: int) -> list[Step]:
    vid = _int(f"{where}.id", v.get("id"), 0, 0xFFFE)
    t = data_type(where, v)
    count = _int(f"{where}.length", v.get("length", 1), 1, 0xFF)
    name = str(v.get("name", f"var{vid}"))
    unit = str(v.get("unit", ""))
    meta = str(v.get("meta") or (f"{name}:{unit}" if unit else name))
    p = f"/1029/{vid}/"
    label = f"variable {vid} ({name})"
    steps = [
        Step(f"{label} create", frame.POST, p + "65535"),
        Step(f"{label} type", frame.PUT, p + "1", bytes((values.type_byte(domain(where, v), t),))),
        Step(f"{label} length", frame.PUT, p + "2", _u(values.UINT8, count)),
        Step(f"{label} bundle", frame.PUT, p + "6", _u(values.UINT16, bid)),
        Step(f"{label} meta", frame.PUT, p + "8", meta.encode()),
    ]
    if v.get("address") is not None:
        addr = _int(f"{where}.address", v["address"], 0, 0xFFFFFFFF)
        steps.append(Step(f"{label} address", frame.PUT, p + "0", _u(values.UINT32, addr)))
    if v.get("value") is not None:
        value = v["value"]
        try:
            if isinstance(value, str) and t != values.ASCII:
                value = values.parse(t, value, count)
            raw = values.encode(t, value, count)
        except (ValueError, TypeError) as e:
            raise _bad(f"{where}.value", str(e)) from None
        steps.append(Step(f"{label} value", frame.POST, p + "5", raw))
    return steps


def _password_key(password: str) -> Callable[[Any], bytes]:
    def derive(tap: Any) -> bytes:
        return tap.auth.password_key(password)

    return derive


def plan(cfg: dict) -> list[Step]:
    """The requests that apply ``cfg``, in order. ConfigError for an unusable file."""
    if not isinstance(cfg, dict):
        raise _bad("file", "the configuration must be a JSON object")
    app = cfg.get("application") or {}
    data = cfg.get("data") or {}
    profiles = data.get("profiles") or []
    bundles = data.get("bundles") or []
    version = str((cfg.get("config") or {}).get("version") or app.get("version")
                  or DEFAULT_VERSION)
    try:
        final = values.encode_version(version)
    except ValueError as e:
        raise _bad("config version", str(e)) from None
    groups = group_ids(profiles)

    steps = [Step("config version in progress", frame.PUT, "/1024//10",
                  values.encode_version(IN_PROGRESS))]
    if app.get("name"):
        steps.append(Step("application name", frame.PUT, "/1024//9", str(app["name"]).encode()))
    # profiles first: the bundle ACLs below refer to their group ids
    for i, prof in enumerate(profiles):
        where = f"data.profiles[{i}]"
        gid = _int(f"{where}.id", prof.get("id"), 0, 0xFFFF)
        user = str(prof.get("username", f"group{gid}"))
        p = f"/1025/{gid}/"
        label = f"profile {gid} ({user})"
        steps.append(Step(f"{label} create", frame.POST, p + "65535"))
        steps.append(Step(f"{label} name", frame.PUT, p + "0", user.encode()))
        life = prof.get("lifeTime", prof.get("lifetime", prof.get("sessionLifetime")))
        if life is not None:
            mins = _int(f"{where}.lifeTime", life, 0, 0xFFFF)  # minutes, 0 = no limit
            steps.append(Step(f"{label} lifetime", frame.PUT, p + "4", _u(values.UINT16, mins)))
        if prof.get("alias") is not None:
            alias = _int(f"{where}.alias", prof["alias"], 0, 0xFFFF)
            steps.append(Step(f"{label} alias", frame.PUT, p + "5", _u(values.UINT16, alias)))
        if prof.get("key"):
            try:
                key = bytes.fromhex(str(prof["key"]).replace(" ", ""))
            except ValueError:
                raise _bad(f"{where}.key", "not hex") from None
            if len(key) != 36:
                raise _bad(f"{where}.key", "storedKey | serverKey | salt is 36 bytes")
            steps.append(Step(f"{label} password key", frame.POST, p + "2", key))
        elif prof.get("password"):
            # SCRAM keys derived at apply time with the Tap's iterations: the password
            # itself never goes to the Tap
            steps.append(Step(f"{label} password", frame.POST, p + "2",
                              _password_key(str(prof["password"]))))
    for i, b in enumerate(bundles):
        where = f"data.bundles[{i}]"
        bid = _int(f"{where}.id", b.get("id"), 0, 0xFFFE)
        name = str(b.get("name", f"bundle{bid}"))
        p = f"/1028/{bid}/"
        label = f"bundle {bid} ({name})"
        steps.append(Step(f"{label} create", frame.POST, p + "65535"))
        steps.append(Step(f"{label} name", frame.PUT, p + "4", name.encode()))
        for who, rights in (b.get("acls") or {}).items():
            if str(who) in groups:
                gid = groups[str(who)]
            elif str(who).isdigit():
                gid = _int(f"{where}.acls", who, 0, 0xFFFF)
            else:
                raise _bad(f"{where}.acls", f"unknown user or group {who!r}")
            read, write = _rights(f"{where}.acls.{who}", rights)
            steps.append(Step(f"{label} acl {who}", frame.PUT, p + "0",
                              encode_acl(gid, read, write)))
        period = b.get("dataLogPeriod", (b.get("dataLog") or {}).get("period"))
        if period is not None:
            ms = _int(f"{where}.dataLogPeriod", period, 0, 0xFFFFFFFF)
            steps.append(Step(f"{label} data-log period", frame.PUT, p + "2",
                              _u(values.UINT32, ms)))
        for j, v in enumerate(b.get("variables") or []):
            steps += _variable_steps(f"{where}.variables[{j}]", v, bid)
    steps.append(Step(f"config version {version}", frame.PUT, "/1024//10", final))
    return steps


def apply(tap: Any, cfg: dict, progress: Callable[[str], None] | None = print) -> int:
    """Send the steps of ``cfg`` through ``tap``; stop with ConfigError on the first error
    status. ``progress`` gets one line per step. Returns the number of steps."""
    steps = plan(cfg)
    for i, s in enumerate(steps, 1):
        payload = s.payload(tap) if callable(s.payload) else s.payload
        resp = tap.request(s.method, s.path, payload)
        if progress:
            progress(f"[{i}/{len(steps)}] {s.label}: {resp.method} {resp.path} "
                     f"{resp.code_name}")
        if not resp.ok:
            raise ConfigError(
                f"configure: {s.label} failed: {resp.code_name} (0x{resp.code:02X})"
            )
    return len(steps)
