"""``twintap provision``: give a board its Wi-Fi, its Rapidomize account and its Tap admin
password, check it, and (``--verify``) watch it come online.

- Fields come from ``--profile FILE.toml`` (same names, ``_`` or ``-``), then the options.
  Any subset may be given; the board keeps the values it has for the others.
- Every field is checked with a message of its own (app and client id characters, token,
  ``mqtt(s)://host[:port]``, a CA certificate that parses as PEM or DER, Wi-Fi SSID and
  password lengths); the merged configuration is checked with the board's own validator
  (``twintap.proto.settings``) before anything is written.
- The CA goes to the board as DER under a name made from its hash (``ca-1a2b3c4d.der``), so
  the configuration in force never points at a half-written certificate; ``config.json`` is
  written as ``config.json.tmp``, checked on the board (size and SHA-256), then renamed: a
  provisioning killed at any point leaves the previous configuration in force.
- ``--admin-password`` never reaches the board: the host derives the Tap SCRAM keys
  (``twintap.proto.scram``, random 4-byte salt) and the board keeps
  ``"tap": {"users": {"admin": {"stored", "server", "salt", "it"}}}``.
- The board is reset; ``--verify`` then reads its console and reports each stage (Wi-Fi, DNS,
  connection, TLS, authentication, registration, Tap) until it is online or one fails.
- ``--fleet devices.csv`` does this for many boards (one row each: ``client_id``, ``port``
  or ``vboard_dir`` (a REPL pty), and any field as a per-row override), carries on past
  failures and ends with a table.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from twintap import TwintapError, ports, table
from twintap.monitor import Console
from twintap.proto import scram, settings
from twintap.repl import BoardRepl


@dataclass(frozen=True)
class Field:
    """One provisionable value: its option, where it goes in config.json, whether secret."""

    name: str
    section: str
    key: str
    secret: bool
    help: str

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


FIELDS = [
    Field("wifi_ssid", "wifi", "ssid", False, "Wi-Fi network name"),
    Field("wifi_password", "wifi", "password", True, "Wi-Fi password"),
    Field("app_id", "rpz", "app_id", False, "Rapidomize app id"),
    Field("token", "rpz", "token", True, "the board's token (its MQTT password)"),
    Field("client_id", "rpz", "client_id", False, "the board's client id in the app"),
    Field("username", "rpz", "username", False, "MQTT user name (default: the app id)"),
    Field("broker", "rpz", "broker", False, "mqtts://host[:port] or mqtt://host[:port]"),
    Field("ca", "rpz", "ca", False, "CA certificate of the broker (PEM or DER file)"),
    Field("admin_password", "tap", "users", True, "Tap admin password (kept as SCRAM keys)"),
]
BY_NAME = {f.name: f for f in FIELDS}
BY_KEY = {(f.section, f.key): f for f in FIELDS}
CONFIG = "config.json"
STAGES = ("configuration", "wifi", "dns", "connection", "tls", "authentication",
          "registration", "tap")

PROV_FACTS = r"""
import sys, os, json
def _tt_prov():
    def rd(p):
        try:
            with open(p) as f:
                return f.read()
        except OSError:
            return None
    board = None
    try:
        board = json.loads(rd('board.json') or 'null')
    except ValueError:
        pass
    m = sys.modules.get('twintap')
    print(json.dumps({'platform': sys.platform, 'files': os.listdir(),
        'board': board, 'config': rd('config.json'),
        'twintap': getattr(m, 'VERSION', None) if m else None}))
_tt_prov()
del _tt_prov
"""


# -- fields ----------------------------------------------------------------------------------
def load_profile(path: str | Path) -> dict[str, str]:
    """A TOML profile's fields (keys as the options, with ``_`` or ``-``)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise TwintapError(f"--profile {path}: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise TwintapError(f"--profile {path}: not valid TOML ({e})") from e
    out = {}
    for k, v in data.items():
        name = k.replace("-", "_")
        if name not in BY_NAME:
            known = ", ".join(f.name for f in FIELDS)
            raise TwintapError(f"--profile {path}: unknown key {k!r} (known: {known})")
        out[name] = str(v)
    if "ca" in out and not Path(out["ca"]).is_absolute():
        out["ca"] = str(Path(path).parent / out["ca"])
    return out


def load_ca(path: str) -> bytes:
    """The CA certificate in ``path`` (PEM or DER) as DER; TwintapError when it is not one."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise TwintapError(f"--ca: {path}: {e.strerror or e}") from e
    try:
        if b"-----BEGIN" in raw:
            cert = x509.load_pem_x509_certificate(raw)
        else:
            cert = x509.load_der_x509_certificate(raw)
    except ValueError as e:
        why = str(e).split(".")[0]
        raise TwintapError(f"--ca: {path} is not a PEM or DER X.509 certificate ({why})") from e
    return cert.public_bytes(Encoding.DER)


def check_fields(values: dict[str, str]) -> list[str]:
    """One message per bad field, named by its option."""
    errs = []

    def bad(name: str, msg: str) -> None:
        errs.append(f"{BY_NAME[name].option}: {msg}")

    for name in ("app_id", "client_id"):
        if name in values:
            why = settings.check_id(values[name], "the " + name.replace("_", " "))
            if why:
                bad(name, why)
    if "token" in values and (not values["token"] or " " in values["token"]):
        bad("token", "the token is empty or has blanks")
    if "username" in values and (not values["username"] or " " in values["username"]):
        bad("username", "the user name is empty or has blanks")
    if "broker" in values:
        try:
            settings.parse_broker(values["broker"])
        except ValueError as e:
            bad("broker", str(e))
    if "wifi_ssid" in values:
        ssid = values["wifi_ssid"]
        if not ssid or len(ssid.encode()) > 32:
            bad("wifi_ssid", "an SSID has 1 to 32 bytes")
    if "wifi_password" in values:
        pw = values["wifi_password"]
        if pw and not 8 <= len(pw) <= 64:
            bad("wifi_password", "a WPA password has 8 to 63 characters (or 64 hex digits); "
                "give '' for an open network")
    if "admin_password" in values:
        pw = values["admin_password"]
        if not 1 <= len(pw.encode()) <= scram.FIELD:
            bad("admin_password", f"a Tap password has 1 to {scram.FIELD} bytes")
    if "ca" in values:
        try:
            load_ca(values["ca"])
        except TwintapError as e:
            errs.append(str(e))
    return errs


def derive_user(password: str, iterations: int = scram.DEFAULT_ITERATIONS) -> dict:
    """SCRAM keys of a Tap user, as config.json keeps them (no password)."""
    salt = bytearray(os.urandom(scram.SALT_SIZE))
    salt[0] |= 1  # an all-zero salt disables a user
    key = scram.password_key(password, bytes(salt), iterations)
    return {"stored": key[0:16].hex(), "server": key[16:32].hex(), "salt": key[32:36].hex(),
            "it": iterations}


# -- the new configuration -------------------------------------------------------------------
@dataclass
class Staged:
    """The configuration to write and the files that go with it."""

    config: dict
    files: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def board_has_wifi(board: dict | None) -> bool:
    """A chip with a radio, or a virtual board with simulated Wi-Fi."""
    return bool(board and (board.get("chip") or board.get("sim_wifi")))


def stage_config(values: dict[str, str], current: dict | None, board: dict | None,
                 board_files: list[str]) -> Staged:
    """Merge ``values`` into the board's configuration and check the result."""
    cfg = copy.deepcopy(current) if isinstance(current, dict) else {}
    st = Staged(cfg)
    errs = []
    if ("wifi_ssid" in values or "wifi_password" in values) and not board_has_wifi(board):
        errs.append("--wifi-ssid: this board has no Wi-Fi (a virtual board needs none)")
    for name, value in values.items():
        f = BY_NAME[name]
        sec = cfg.get(f.section)
        if not isinstance(sec, dict):
            sec = cfg[f.section] = {}
        if name == "ca":
            der = load_ca(value)
            fname = "ca-" + hashlib.sha256(der).hexdigest()[:8] + ".der"
            st.files[fname] = der
            sec["ca"] = fname
        elif name == "admin_password":
            sec.setdefault("users", {})["admin"] = derive_user(value)
        else:
            sec[f.key] = value
    rpz = cfg.get("rpz")
    if isinstance(rpz, dict) and rpz and board_has_wifi(board) and board and board.get("chip"):
        if not isinstance(cfg.get("wifi"), dict) or not cfg["wifi"].get("ssid"):
            errs.append("--wifi-ssid: this board reaches the broker over Wi-Fi and has no "
                        "network yet: give --wifi-ssid and --wifi-password (or use Improv)")
    have = set(board_files) | set(st.files)
    for section, key, msg in settings.problems(cfg, lambda n: n in have):
        f = BY_KEY.get((section, key))
        where = f.option if f else f"{section}.{key}"
        if f and f.name not in values and ("missing" in msg or "empty" in msg):
            msg += f" (the board has none yet: give {where})"
        errs.append(f"{where}: {msg}")
    if errs:
        raise TwintapError("the configuration is not valid:\n  " + "\n  ".join(
            dict.fromkeys(errs)))
    return st


def summary(cfg: dict) -> list[str]:
    """What the configuration says, secrets masked."""
    out = []
    w = cfg.get("wifi")
    if isinstance(w, dict):
        out.append(f"wifi  {w.get('ssid')} (password {'****' if w.get('password') else 'none'})")
    r = cfg.get("rpz")
    if isinstance(r, dict) and r:
        out.append(
            f"rpz   broker {r.get('broker', 'mqtts://ics.rapidomize.com')}, app {r.get('app_id')}"
            f", client {r.get('client_id', '_')}, user {r.get('username', r.get('app_id'))}"
            f", token {'****' if r.get('token') else 'none'}, ca {r.get('ca', '-')}"
        )
    t = cfg.get("tap")
    if isinstance(t, dict) and t.get("users"):
        users = ", ".join(f"{n} ({u.get('it')} iterations)" for n, u in t["users"].items())
        out.append(f"tap   SCRAM keys for {users}")
    return out


def write_config(repl: BoardRepl, st: Staged, board_files: list[str], chunk: int = 1024) -> None:
    """Files first, then config.json (the commit point), then stale CA files away."""
    for name, data in st.files.items():
        if name not in board_files:
            repl.write_file(name, data, chunk)
    repl.write_file(CONFIG, json.dumps(st.config, separators=(",", ":")).encode(), chunk)
    keep = (st.config.get("rpz") or {}).get("ca")
    repl.remove([n for n in board_files
                 if n.startswith("ca-") and n.endswith(".der") and n != keep])


# -- verification ----------------------------------------------------------------------------
@dataclass
class Stage:
    """One verification stage."""

    name: str
    status: str = "pending"  # ok, failed, skipped, pending
    detail: str = ""


HINTS = {
    "configuration": "fix what the board says with `twintap provision` (see `twintap doctor`)",
    "wifi": "check --wifi-ssid and --wifi-password, and that the network is in range",
    "dns": "the broker's host name does not resolve from the board: check --broker",
    "connection": "nothing answers at the broker's address and port: check --broker and "
                  "that the broker runs",
    "tls": "the broker's certificate does not verify against --ca (or its name differs from "
           "the host in --broker)",
    "authentication": "the broker refused the credentials: check --token, --username and "
                      "--client-id",
    "registration": "the platform did not accept the registration: check --app-id and that "
                    "the platform runs",
    "tap": "the board does not answer Tap: check --tap-link",
}


def classify(line: str) -> tuple[str, bool, str] | None:
    """(stage, ok, detail) for a console line that says how a stage went."""
    if line.startswith("[I][wifi] connected"):
        return "wifi", True, line.split("] ", 1)[1]
    if line.startswith("[W][wifi] cannot join"):
        return "wifi", False, line.split(": ", 1)[-1]
    if line.startswith("[E][main] safe mode:") or line.startswith("[E][rpz] not started"):
        return "configuration", False, line.split("] ", 2)[-1]
    if line.startswith("[I][rpz] online as"):
        return "authentication", True, line.split("] ", 1)[1]
    if line.startswith(("[I][rpz] registered", "[I][rpz] declaration unchanged")):
        return "registration", True, line.split("] ", 1)[1]
    if line.startswith("[W][rpz] broker ") or line.startswith("[E][rpz] session failed"):
        msg = line.split(": ", 1)[-1]
        low = msg.lower()
        if "registration refused" in low or "no answer from the platform" in low:
            return "registration", False, msg
        if "connection refused, code" in low:
            code = low.rsplit(" ", 1)[-1]
            if code in ("3",):
                return "connection", False, msg + " (server unavailable)"
            return "authentication", False, msg
        if "addrinfo" in low or "-202" in low or "name or service" in low or "eai" in low:
            return "dns", False, msg
        if any(k in low for k in ("ssl", "tls", "certificate", "x509", "handshake",
                                  "mbedtls", "common name", "-0x")):
            return "tls", False, msg
        if any(k in low for k in ("econnrefused", "111", "ehostunreach", "113", "etimedout",
                                  "110", "timeout", "no connack", "econnreset", "104")):
            return "connection", False, msg
        return "connection", False, msg
    return None


def _ready(line: str) -> dict | None:
    if not line.startswith("READY "):
        return None
    return dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)


def _check_tap(url: str) -> str:
    from twintap.tap import Tap

    with Tap.connect(url, timeout=3.0) as tap:
        return tap.device.serial_number()


def _platform_saw(platform_dir: Path, app: str, cid: str, since: float) -> bool:
    from twintap.platformstore import Store

    db = Path(platform_dir) / "platform.db"
    if not db.is_file():
        return False
    store = Store(db, create=False)
    try:
        for i in store.instances():
            if i["app"] == app and i["cid"] == cid and (i.get("last_seen") or 0) >= since:
                return True
        return False
    finally:
        store.close()


def verify(con: Console, cfg: dict, board: dict | None, timeout: float = 60.0,
           tap_link: str | None = None, platform_dir: Path | None = None,
           since: float | None = None) -> list[Stage]:
    """Watch the board's console after a reset until it is online or a stage fails."""
    since = time.time() if since is None else since
    stages = {n: Stage(n) for n in STAGES}
    stages["configuration"].status = "ok"
    wifi = isinstance(cfg.get("wifi"), dict) and board_has_wifi(board)
    rpz = isinstance(cfg.get("rpz"), dict) and bool(cfg["rpz"])
    if not wifi:
        stages["wifi"] = Stage("wifi", "skipped",
                               "no Wi-Fi on this board" if not board_has_wifi(board)
                               else "no Wi-Fi configured")
    if not rpz:
        for n in ("dns", "connection", "tls", "authentication", "registration"):
            stages[n] = Stage(n, "skipped", "no Rapidomize configuration")
    elif not settings.parse_broker(cfg["rpz"].get("broker", "mqtts://x"))[2]:
        stages["tls"] = Stage("tls", "skipped", "mqtt:// (no TLS)")
    deadline = time.monotonic() + timeout
    ready: dict | None = None
    wifi_ip = ""
    failed: Stage | None = None

    def done() -> bool:
        need = [s for s in STAGES[:-1] if stages[s].status == "pending"]
        return not need and ready is not None

    for line in con.lines(deadline):
        r = _ready(line)
        if r is not None:
            ready = r
        c = classify(line)
        if c is None or (c[0] == "wifi" and not wifi):
            continue
        name, ok, detail = c
        if not ok and name != "wifi" and wifi and stages["wifi"].status != "ok":
            continue  # the cloud link fails until Wi-Fi is up: not a verdict yet
        if ok:
            stages[name].status, stages[name].detail = "ok", detail
            if name == "wifi" and "ip " in detail:
                wifi_ip = detail.rsplit("ip ", 1)[1].strip()
        else:
            stages[name].status, stages[name].detail = "failed", detail
            failed = stages[name]
        # a cloud stage reached means the cloud stages before it went well (in order);
        # Wi-Fi only counts from its own line (a virtual board's network needs none)
        for s in STAGES[2:STAGES.index(name)]:
            if stages[s].status == "pending":
                stages[s].status = "ok"
        if failed is not None or done():
            break
    if failed is None:
        for s in STAGES[:-1]:
            if stages[s].status == "pending":
                stages[s].status = "failed"
                stages[s].detail = f"no word from the board within {timeout:.0f} s"
                failed = stages[s]
                break
    if failed is None and rpz and platform_dir is not None:
        r = cfg["rpz"]
        plat_deadline = time.monotonic() + 10
        while not _platform_saw(platform_dir, r["app_id"], r.get("client_id") or "_", since):
            if time.monotonic() > plat_deadline:
                stages["registration"].status = "failed"
                stages["registration"].detail = "the platform has no record of this board"
                failed = stages["registration"]
                break
            time.sleep(0.2)
        else:
            stages["registration"].detail += " (the platform saw it)"
    if failed is not None:
        for s in STAGES[STAGES.index(failed.name) + 1:]:
            if stages[s].status == "pending":
                stages[s].status = "not reached"
        return [stages[n] for n in STAGES]
    url = tap_link
    if url is None and ready and ready.get("tcp", "-") not in ("-", "0"):
        host = wifi_ip or ("127.0.0.1" if not (board or {}).get("chip") else "")
        if host:
            url = f"tcp://{host}:{ready['tcp']}"
    if url is None:
        stages["tap"] = Stage("tap", "skipped", "no Tap link known (give --tap-link)")
    else:
        try:
            stages["tap"] = Stage("tap", "ok", f"serial {_check_tap(url)} over {url}")
        except Exception as e:  # any link failure is this stage's failure
            stages["tap"] = Stage("tap", "failed", f"{url}: {e}")
    return [stages[n] for n in STAGES]


# -- one board -------------------------------------------------------------------------------
@dataclass
class Outcome:
    """How provisioning one board went."""

    port: str
    ok: bool
    stage: str = ""
    detail: str = ""
    stages: list[Stage] = field(default_factory=list)
    seconds: float = 0.0


def provision(port: str | None, values: dict[str, str], do_verify: bool = False,
              timeout: float = 60.0, tap_link: str | None = None,
              platform_dir: Path | None = None, chunk: int = 1024,
              say: Callable[[str], None] = print) -> Outcome:
    """Provision the board on ``port`` with ``values``; raise TwintapError on a bad field,
    return the outcome (with the failed stage) otherwise."""
    if not values:
        opts = ", ".join(f.option for f in FIELDS)
        raise TwintapError(f"nothing to provision: give at least one of {opts} (or --profile)")
    errs = check_fields(values)
    if errs:
        raise TwintapError("\n  ".join(["invalid fields:", *errs]))
    port = ports.resolve(port)
    t0 = time.monotonic()
    repl = BoardRepl(port)
    try:
        facts = repl.json(PROV_FACTS)
        board = facts.get("board")
        if not isinstance(board, dict):
            raise TwintapError(f"{port} runs MicroPython but not twintap (no board.json): run "
                               f"`twintap deploy --port {port} --board BOARD` first")
        current = None
        if facts.get("config") is not None:
            try:
                current = json.loads(facts["config"])
            except ValueError:
                say("  the board's config.json is not valid JSON: starting from an empty one")
        st = stage_config(values, current, board, facts.get("files", []))
        name = (board or {}).get("name", "?")
        say(f"Provisioning {port} (board {name}, MicroPython on {facts['platform']})")
        for line in summary(st.config):
            say("  " + line)
        since = time.time()
        write_config(repl, st, facts.get("files", []), chunk)
        repl.reset()
        say("  config.json written; board reset")
        if not do_verify:
            return Outcome(port, True, seconds=time.monotonic() - t0)
        con = Console(port, ser=repl.detach(), status=lambda t: say("  " + t))
    finally:
        repl.close()
    try:
        stages = verify(con, st.config, board, timeout, tap_link, platform_dir, since)
    finally:
        con.close()
    width = max(len(s) for s in STAGES)
    for s in stages:
        say(f"  {s.name:<{width}}  {s.status}{': ' + s.detail if s.detail else ''}")
    bad = next((s for s in stages if s.status == "failed"), None)
    if bad:
        return Outcome(port, False, bad.name, bad.detail, stages, time.monotonic() - t0)
    return Outcome(port, True, stages=stages, seconds=time.monotonic() - t0)


def fail_message(o: Outcome) -> str:
    """``verification failed at stage X: detail; what to do``"""
    return (f"{o.port}: verification failed at stage {o.stage}: {o.detail}; "
            f"{HINTS.get(o.stage, '')}")


# -- many boards -----------------------------------------------------------------------------
def read_fleet(path: str | Path) -> list[dict[str, str]]:
    """The rows of a fleet CSV (client_id, port or vboard_dir, per-row field overrides)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise TwintapError(f"--fleet {path}: {e.strerror or e}") from e
    if not rows:
        raise TwintapError(f"--fleet {path}: no rows")
    allowed = set(BY_NAME) | {"port", "vboard_dir", "tap_link"}
    for k in rows[0]:
        if k and k.strip().replace("-", "_") not in allowed:
            raise TwintapError(f"--fleet {path}: unknown column {k!r} "
                               f"(known: port, vboard_dir, tap_link, {', '.join(BY_NAME)})")
    out = []
    for i, row in enumerate(rows, 2):
        r = {k.strip().replace("-", "_"): (v or "").strip() for k, v in row.items() if k}
        if not r.get("client_id"):
            raise TwintapError(f"--fleet {path}, line {i}: no client_id")
        if not (r.get("port") or r.get("vboard_dir")):
            raise TwintapError(f"--fleet {path}, line {i}: give port or vboard_dir")
        out.append(r)
    return out


def provision_fleet(path: str | Path, base: dict[str, str], do_verify: bool, timeout: float,
                    platform_dir: Path | None, jobs: int = 4, chunk: int = 1024,
                    out=None) -> list[tuple[dict, Outcome]]:
    """Provision every board of the CSV, ``jobs`` at a time; never stops at a failure."""
    rows = read_fleet(path)
    out = out or sys.stdout
    lock = threading.Lock()

    def one(row: dict[str, str]) -> tuple[dict, Outcome]:
        cid = row["client_id"]
        port = row.get("port") or row.get("vboard_dir")

        def say(text: str) -> None:
            with lock:
                out.write(f"[{cid}] {text}\n")
                out.flush()

        values = dict(base)
        values.update({k: v for k, v in row.items() if k in BY_NAME and v})
        try:
            o = provision(port, values, do_verify, timeout, row.get("tap_link") or None,
                          platform_dir, chunk, say)
        except TwintapError as e:
            o = Outcome(port or "?", False, "provisioning", str(e).replace("\n", " "))
        except Exception as e:  # one board's surprise must not stop the fleet
            o = Outcome(port or "?", False, "provisioning", f"{e.__class__.__name__}: {e}")
        return row, o

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, rows))
    return results


def fleet_table(results: list[tuple[dict, Outcome]]) -> str:
    """The summary table printed at the end of a fleet run."""
    head = ("client_id", "port", "result", "stage", "detail")
    rows = []
    for row, o in results:
        detail = (o.detail or f"{o.seconds:.1f} s").replace(o.port + ": ", "")
        rows.append((row["client_id"], o.port, "ok" if o.ok else "FAILED",
                     o.stage or "-", detail[:80]))
    lines = table(rows, head)
    ok = sum(1 for _, o in results if o.ok)
    lines.append(f"{ok} of {len(results)} boards provisioned"
                 + ("" if ok == len(results) else f", {len(results) - ok} failed"))
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------------------
def collect(args) -> dict[str, str]:
    """Field values: the profile, then the options given."""
    values = load_profile(args.profile) if args.profile else {}
    for f in FIELDS:
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    return values


def run(args) -> int:
    """``twintap provision``"""
    values = collect(args)
    platform_dir = Path(args.platform_dir) if args.platform_dir else None
    if args.fleet:
        results = provision_fleet(args.fleet, values, args.verify, args.timeout, platform_dir,
                                  args.jobs, args.chunk_size)
        print(fleet_table(results))
        return 0 if all(o.ok for _, o in results) else 1
    o = provision(args.port, values, args.verify, args.timeout, args.tap_link, platform_dir,
                  args.chunk_size)
    if not o.ok:
        raise TwintapError(fail_message(o))
    if args.verify:
        print(f"{o.port}: provisioned and verified in {o.seconds:.1f} s")
    return 0


def add_parser(sub) -> None:
    """Register ``twintap provision``."""
    p = sub.add_parser("provision", help="give a board Wi-Fi, its cloud account, a Tap "
                       "admin password; --verify watches it come online")
    p.add_argument("--port", "-p", help="serial port or a virtual board's REPL pty "
                   "(default: the one ESP32 board on USB)")
    p.add_argument("--profile", help="TOML file with the fields below (options override it)")
    for f in FIELDS:
        p.add_argument(f.option, dest=f.name, metavar="FILE" if f.name == "ca" else "VALUE",
                       help=f.help)
    p.add_argument("--verify", action="store_true",
                   help="after the reset, wait until the board is online and answers Tap")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds --verify waits for the board (default 60)")
    p.add_argument("--tap-link", help="where --verify reaches Tap (default: the board's TCP "
                   "port from its READY line)")
    p.add_argument("--platform-dir", help="bench platform directory: --verify also checks "
                   "that the platform saw the board")
    p.add_argument("--fleet", metavar="CSV", help="provision every board listed (columns "
                   "client_id, port or vboard_dir, optional per-row fields)")
    p.add_argument("--jobs", type=int, default=4, help="boards provisioned at once (--fleet)")
    p.add_argument("--chunk-size", type=int, default=1024, help=argparse_suppress())
    p.set_defaults(func=run)


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS
