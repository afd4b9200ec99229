"""``twintap broker``: Debian's mosquitto as the bench broker (MQTT over TLS, passwords, ACL).

Everything lives in one directory ``D`` (0700):

- ``ca.pem``/``ca.der``/``ca.key``, ``server.pem``/``server.key``: a private CA made on the first
  run and the server certificate it signs (subjectAltName ``localhost``, ``127.0.0.1`` and any
  ``--san``); ``ca.der`` is the copy boards load.
- ``platform.json`` (0600): the platform account (user ``twintap-platform``), made on first run.
- ``devices.json`` (0600): board records (app, cid, username, icapp) and each account's
  password hash. Tokens themselves are kept nowhere: ``add-device`` prints a generated one once.
- ``passwd``, ``acl``, ``mosquitto.conf``: generated from the above, never edited by hand.
- ``mosquitto.pid``, ``broker.json``: the running broker's process id and URL.

Accounts. Each board gets its own account, by default named after its MQTT client id
``{appId}/cid/{clientId}``, with its token as password (the spec's default user name is
``{appId}``; the username is configurable on the board, and must be set to what
``add-device`` printed). The ACL has one ``user`` section per account with explicit topic
rules, keyed on the username that the password authenticates, never on the client id that a
client chooses freely (mosquitto's ``%c`` patterns would let a board that picks another
board's client id into that board's topics). Several boards may share one account
(``--username``, e.g. the spec's ``{appId}``): they share its token and its rights.
``add-device``/``remove-device`` on a running broker make it reload (SIGHUP) and return only
once the reload has taken effect (a throwaway probe account with a fresh password per
generation of the files must be accepted).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from twintap import StopSignals, TwintapError, die_with_parent, pki, rpztopics, say, table
from twintap.mqttclient import Connection, Credentials

DEFAULT_DIR = Path(".twintap/broker")
DEFAULT_PORT = 8883
PLATFORM_USER = "twintap-platform"
PROBE_USER = "twintap-probe"
RESERVED_USERS = (PLATFORM_USER, PROBE_USER)
MOSQUITTO_FALLBACK = "/usr/sbin/mosquitto"


def mosquitto_path() -> str:
    """The mosquitto executable: on PATH, else Debian's ``/usr/sbin/mosquitto``."""
    found = shutil.which("mosquitto") or (
        MOSQUITTO_FALLBACK if os.access(MOSQUITTO_FALLBACK, os.X_OK) else None
    )
    if not found:
        raise TwintapError("mosquitto is not installed: apt-get install mosquitto")
    return found


@dataclass
class Device:
    """One board's record: where it publishes, and the account it connects with."""

    app: str
    cid: str
    username: str
    icapp: str | None = None
    created: str = ""

    @property
    def client_id(self) -> str:
        """The board's MQTT client id, ``{app}/cid/{cid}``."""
        return rpztopics.client_id(self.app, self.cid)


@dataclass
class Added:
    """What :func:`add_device` did: the token is set only when it was new (show it once)."""

    device: Device
    token: str | None
    reloaded: bool


def check_username(name: str) -> str:
    """A user name mosquitto's password and ACL files can hold, and not a reserved one."""
    if not name or ":" in name or any(c.isspace() or ord(c) < 32 for c in name):
        raise TwintapError(f"bad username {name!r}: non-empty, no ':' and no blanks")
    if name in RESERVED_USERS:
        raise TwintapError(f"username {name!r} is reserved")
    return name


class BrokerDir:
    """The broker's directory: certificates, accounts, generated mosquitto files."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).resolve()
        if any(c.isspace() for c in str(self.path)):
            raise TwintapError(f"the broker directory may not contain blanks: {self.path}")
        p = self.path
        self.ca_pem, self.ca_der, self.ca_key = p / "ca.pem", p / "ca.der", p / "ca.key"
        self.server_pem, self.server_key = p / "server.pem", p / "server.key"
        self.platform_json, self.devices_json = p / "platform.json", p / "devices.json"
        self.passwd, self.acl, self.conf = p / "passwd", p / "acl", p / "mosquitto.conf"
        self.pid_file, self.state_json = p / "mosquitto.pid", p / "broker.json"

    # -- setup ---------------------------------------------------------------------------
    def ensure(self, names: list[str] | tuple[str, ...] = ()) -> None:
        """Make what is missing: the directory, the CA, a server certificate covering
        ``names``, the platform account."""
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        if not (self.ca_pem.is_file() and self.ca_key.is_file()):
            pki.make_ca(self.path)
            self.server_pem.unlink(missing_ok=True)
        if not self.ca_der.is_file():
            from cryptography import x509
            from cryptography.hazmat.primitives.serialization import Encoding

            cert = x509.load_pem_x509_certificate(self.ca_pem.read_bytes())
            self.ca_der.write_bytes(cert.public_bytes(Encoding.DER))
        wanted = set(pki.DEFAULT_NAMES) | set(names)
        if not (self.server_pem.is_file() and self.server_key.is_file()) or not wanted <= (
            pki.server_names(self.server_pem)
        ):
            pki.make_server_cert(self.path, sorted(wanted - set(pki.DEFAULT_NAMES)))
        if not self.platform_json.is_file():
            account = {"username": PLATFORM_USER, "password": secrets.token_urlsafe(24)}
            pki.write_private(self.platform_json, json.dumps(account, indent=1) + "\n")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise changes to the accounts between processes."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # -- accounts ------------------------------------------------------------------------
    def platform_credentials(self) -> Credentials:
        """The platform account and the CA, for platform-side clients."""
        try:
            account = json.loads(self.platform_json.read_text())
        except (OSError, ValueError) as e:
            raise TwintapError(f"no platform account in {self.path}: {e}") from None
        return Credentials(account["username"], account["password"], self.ca_pem)

    def load(self) -> dict:
        """The device records and account hashes (``devices.json``)."""
        if not self.devices_json.is_file():
            return {"devices": [], "accounts": {}}
        try:
            state = json.loads(self.devices_json.read_text())
        except ValueError as e:
            raise TwintapError(f"{self.devices_json} is not valid JSON: {e}") from None
        state.setdefault("devices", [])
        state.setdefault("accounts", {})
        return state

    def devices(self) -> list[Device]:
        """Every board record."""
        return [Device(**d) for d in self.load()["devices"]]

    def save(self, state: dict) -> None:
        """Write ``devices.json`` (0600)."""
        pki.write_private(self.devices_json, json.dumps(state, indent=1) + "\n")

    def write_security(self, state: dict) -> str:
        """Write ``passwd`` and ``acl`` from ``state``; returns this generation's probe password.

        The probe account is in the password file only (no ACL section: no topic at all).
        """
        platform = self.platform_credentials()
        probe = secrets.token_urlsafe(18)
        lines = [
            f"{PLATFORM_USER}:{pki.mosquitto_hash(platform.password or '')}",
            f"{PROBE_USER}:{pki.mosquitto_hash(probe)}",
        ]
        lines += [f"{user}:{h}" for user, h in sorted(state["accounts"].items())]
        pki.write_private(self.passwd, "\n".join(lines) + "\n")
        pki.write_private(self.acl, acl_text(self.devices_from(state)))
        return probe

    @staticmethod
    def devices_from(state: dict) -> list[Device]:
        """The board records of a loaded ``state``."""
        return [Device(**d) for d in state["devices"]]

    # -- the running broker --------------------------------------------------------------
    def running_pid(self) -> int | None:
        """The pid of the mosquitto serving this directory, if it is alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if b"mosquitto" in os.path.basename(cmdline[0]) and str(self.conf).encode() in cmdline:
            return pid
        return None

    def running_url(self) -> str | None:
        """The URL of the running broker (from ``broker.json``), if it runs."""
        if self.running_pid() is None:
            return None
        try:
            return json.loads(self.state_json.read_text())["url"]
        except (OSError, ValueError, KeyError):
            return None


def acl_text(devices: list[Device]) -> str:
    """The mosquitto ACL: the platform reaches everything; each account its boards' trees."""
    out = [
        "# Generated by `twintap broker` from devices.json: do not edit.",
        "# Rules are per user (the password authenticates the user name); none uses %c, the",
        "# client id a client picks freely. For a board whose user name is its client id",
        "# {appId}/cid/{clientId}, the rules below are what these patterns would give:",
        "#   pattern write /api/v1/mo/%c",
        "#   pattern write /api/v1/mo/%c/event",
        "#   pattern write /api/v1/mo/%c/ack/+",
        "#   pattern read $/api/v1/mo/%c",
        "# plus `topic read $/api/v1/mo/{appId}` (SSRs for all instances of the app).",
        "# '#' never matches topics that begin with '$' (MQTT 3.1.1, 4.7.2): '$' rules are",
        "# spelt out.",
        "",
        f"user {PLATFORM_USER}",
        "topic readwrite #",
        "topic readwrite $/#",
    ]
    by_user: dict[str, list[Device]] = {}
    for d in devices:
        by_user.setdefault(d.username, []).append(d)
    for user in sorted(by_user):
        out += ["", f"user {user}"]
        for d in by_user[user]:
            pub, sub = rpztopics.device_topics(d.app, d.cid, d.icapp)
            out += [f"topic write {t}" for t in pub]
            out += [f"topic read {t}" for t in sub]
    return "\n".join(out) + "\n"


def _reload(bdir: BrokerDir, probe: str, timeout: float) -> bool:
    """SIGHUP the running broker and wait until it accepts this generation's probe password.

    Returns False when no broker runs (the files take effect at its next start).
    """
    pid = bdir.running_pid()
    url = bdir.running_url()
    if pid is None or url is None:
        return False
    os.kill(pid, signal.SIGHUP)
    creds = Credentials(PROBE_USER, probe, bdir.ca_pem)
    deadline = time.monotonic() + timeout
    while True:
        try:
            Connection(url, creds, client_id="twintap-probe-" + secrets.token_hex(4)).connect(
                timeout=max(0.5, deadline - time.monotonic())
            ).close()
            return True
        except TwintapError as e:
            if time.monotonic() > deadline:
                raise TwintapError(f"the broker (pid {pid}) did not reload its accounts: {e}")
            time.sleep(0.05)  # mosquitto reloads on its next loop iteration


def _apply(bdir: BrokerDir, state: dict, timeout: float) -> bool:
    bdir.save(state)
    probe = bdir.write_security(state)
    return _reload(bdir, probe, timeout)


def add_device(
    directory: Path | str,
    app: str,
    cid: str = rpztopics.DEFAULT_CID,
    token: str | None = None,
    username: str | None = None,
    icapp: str | None = None,
    replace: bool = False,
    timeout: float = 10.0,
) -> Added:
    """Give board ``{app}/cid/{cid}`` an account; a running broker has it when this returns.

    ``username`` defaults to the board's client id. An account another board already has is
    shared (``token``, if given, must be its token). ``replace`` issues a new token for a board
    that exists. A generated token is returned once, in :attr:`Added.token`.
    """
    bdir = BrokerDir(directory)
    client_id = rpztopics.client_id(app, cid)
    if icapp:
        rpztopics.check_id("icapp id", icapp)
    if token is not None and not token:
        raise TwintapError("the token may not be empty")
    with bdir.locked():
        bdir.ensure()
        state = bdir.load()
        old = [d for d in state["devices"] if (d["app"], d["cid"]) == (app, cid)]
        if old and not replace:
            raise TwintapError(f"device {client_id} exists (--replace issues a new token)")
        state["devices"] = [d for d in state["devices"] if d not in old]
        user = check_username(username or (old[0]["username"] if old else client_id))
        in_use = {d["username"] for d in state["devices"]}
        for d in old:  # a replaced board's account goes, unless another board uses it
            if d["username"] not in in_use:
                state["accounts"].pop(d["username"], None)
        new_token: str | None = None
        if user in state["accounts"]:
            if token is not None and not pki.check_mosquitto_hash(token, state["accounts"][user]):
                raise TwintapError(f"account {user!r} exists with another token")
            if replace and token is None:
                raise TwintapError(
                    f"account {user!r} is shared with other boards: give its --token"
                )
        else:
            new_token = token or secrets.token_urlsafe(24)
            state["accounts"][user] = pki.mosquitto_hash(new_token)
        device = Device(app, cid, user, icapp, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        state["devices"].append(asdict(device))
        reloaded = _apply(bdir, state, timeout)
    return Added(device, new_token if token is None else None, reloaded)


def remove_device(
    directory: Path | str, app: str, cid: str = rpztopics.DEFAULT_CID, timeout: float = 10.0
) -> bool:
    """Remove a board (and its account unless shared); True if a running broker reloaded."""
    bdir = BrokerDir(directory)
    client_id = rpztopics.client_id(app, cid)
    with bdir.locked():
        state = bdir.load()
        old = [d for d in state["devices"] if (d["app"], d["cid"]) == (app, cid)]
        if not old:
            raise TwintapError(f"no device {client_id} in {bdir.path}")
        state["devices"] = [d for d in state["devices"] if d not in old]
        in_use = {d["username"] for d in state["devices"]}
        for d in old:
            if d["username"] not in in_use:
                state["accounts"].pop(d["username"], None)
        return _apply(bdir, state, timeout)


class Broker:
    """A mosquitto child process serving one broker directory. :meth:`start`, :meth:`stop`."""

    def __init__(
        self,
        directory: Path | str = DEFAULT_DIR,
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        names: list[str] | tuple[str, ...] = (),
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.dir = BrokerDir(directory)
        self.port = port
        self.host = host
        self.connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.names = [*names] + ([] if host in ("0.0.0.0", "") else [host])
        self.echo = echo or say
        self.proc: subprocess.Popen | None = None
        self.exited = threading.Event()
        self._tail: list[str] = []

    @property
    def url(self) -> str:
        """Where clients connect: ``mqtts://HOST:PORT``."""
        return f"mqtts://{self.connect_host}:{self.port}"

    @property
    def ready_line(self) -> str:
        """What ``broker run`` prints once the broker serves."""
        return f"READY {self.url} ca={self.dir.ca_pem}"

    def config_text(self) -> str:
        """mosquitto.conf for this directory, port and address."""
        d = self.dir
        return "\n".join([
            "# Generated by `twintap broker run` at every start: do not edit.",
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {d.passwd}",
            f"acl_file {d.acl}",
            # sessions and queued QoS 1 messages of persistent clients (the platform) survive
            # a broker restart
            "persistence true",
            f"persistence_location {d.path}/",
            "autosave_interval 5",
            "log_dest stderr",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "log_timestamp false",
            "connection_messages true",
            # answer small packets at once: with Nagle on, a QoS 1 round trip meets the
            # clients' delayed ACKs and costs about 40 ms (see bench/report.md)
            "set_tcp_nodelay true",
            f"listener {self.port} {self.host}" if self.host else f"listener {self.port}",
            "protocol mqtt",
            f"cafile {d.ca_pem}",
            f"certfile {d.server_pem}",
            f"keyfile {d.server_key}",
            "",
        ])

    def start(self, timeout: float = 15.0) -> str:
        """Prepare the directory, start mosquitto, wait until it completes a TLS handshake
        with a client that verifies it against the CA; returns the READY line."""
        d = self.dir
        with d.locked():
            other = d.running_pid()
            if other is not None:
                raise TwintapError(f"a broker already serves {d.path} (pid {other})")
            d.ensure(self.names)
            d.write_security(d.load())
            d.conf.write_text(self.config_text())
        main = threading.current_thread() is threading.main_thread()
        self.proc = subprocess.Popen(
            [mosquitto_path(), "-c", str(d.conf)], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            preexec_fn=die_with_parent if main and sys.platform == "linux" else None,
        )
        d.pid_file.write_text(f"{self.proc.pid}\n")
        threading.Thread(target=self._read, name="mosquitto", daemon=True).start()
        try:
            self._wait_tls(timeout)
        except BaseException:
            self.stop()
            raise
        d.state_json.write_text(json.dumps({"url": self.url, "pid": self.proc.pid}) + "\n")
        return self.ready_line

    def _read(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self._tail = (self._tail + [line])[-20:]
            self.echo(f"[mosquitto] {line}")
        self.proc.wait()
        self.exited.set()

    def _wait_tls(self, timeout: float) -> None:
        ctx = ssl.create_default_context(cafile=str(self.dir.ca_pem))
        deadline = time.monotonic() + timeout
        while True:
            if self.exited.wait(0) or (self.proc and self.proc.poll() is not None):
                self.exited.wait(1.0)  # let the reader collect the last words
                why = " / ".join(self._tail[-3:]) or f"status {self.proc.returncode}"
                raise TwintapError(f"mosquitto exited: {why}")
            try:
                with socket.create_connection((self.connect_host, self.port), 1.0) as s:
                    with ctx.wrap_socket(s, server_hostname=self.connect_host) as t:
                        with contextlib.suppress(OSError):
                            t.unwrap()  # close_notify: no "unexpected eof" in the log
                        return
            except ssl.SSLError as e:
                if self.exited.wait(1.0):  # another server on that port, mosquitto gave up
                    continue
                raise TwintapError(f"TLS handshake with mosquitto failed: {e}") from None
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TwintapError(f"mosquitto did not accept TLS within {timeout:g} s")
            self.exited.wait(0.05)  # the listener is not up yet

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop mosquitto (SIGTERM, then SIGKILL) and remove the pid and state files."""
        proc = self.proc
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.exited.wait(1.0)
        with contextlib.suppress(OSError):
            if proc and self.dir.pid_file.read_text().strip() == str(proc.pid):
                self.dir.pid_file.unlink()
                self.dir.state_json.unlink(missing_ok=True)
        return proc.returncode if proc else None


# -- CLI ---------------------------------------------------------------------------------------
def run(args) -> int:
    """``twintap broker run``: serve until SIGINT/SIGTERM, then stop mosquitto (exit 0)."""
    b = Broker(args.dir, port=args.port, host=args.host, names=args.san or ())
    stop = StopSignals()
    say(b.start())
    while not stop.wait(0.2):
        if b.exited.is_set():
            b.stop()
            raise TwintapError(f"mosquitto exited with status {b.proc.returncode}")
    b.stop()
    say("[I][broker] stopped")
    return 0


def _add(args) -> int:
    added = add_device(
        args.dir, args.app, args.cid, token=args.token, username=args.username,
        icapp=args.icapp, replace=args.replace,
    )
    d = added.device
    if args.json:
        out = {"app": d.app, "cid": d.cid, "client_id": d.client_id, "username": d.username}
        if d.icapp:
            out["icapp"] = d.icapp
        if added.token:
            out["token"] = added.token
        print(json.dumps(out))
        return 0
    print(f"device {d.client_id}: username {d.username}" + (f", icapp {d.icapp}" if d.icapp
                                                           else ""))
    if added.token:
        print(f"token: {added.token}")
        print("(shown once: the broker keeps only its hash; put it in the board's config)")
    print("broker: reloaded" if added.reloaded else "broker: not running (used at next start)")
    return 0


def _remove(args) -> int:
    reloaded = remove_device(args.dir, args.app, args.cid)
    print(f"removed {rpztopics.client_id(args.app, args.cid)}" +
          ("; broker reloaded" if reloaded else ""))
    return 0


def _list(args) -> int:
    bdir = BrokerDir(args.dir)
    rows = [("CLIENT ID", "USERNAME", "ICAPP", "CREATED")]
    rows += [(d.client_id, d.username, d.icapp or "-", d.created) for d in bdir.devices()]
    for line in table(rows):
        print(line)
    return 0


def add_parser(sub) -> None:
    """Register ``twintap broker``."""
    p = sub.add_parser("broker", help="run the bench MQTT broker (mosquitto, TLS, ACL)")
    bsub = p.add_subparsers(dest="broker_cmd", required=True)

    def with_dir(q) -> None:
        q.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                       help=f"broker directory (default: {DEFAULT_DIR})")

    r = bsub.add_parser("run", help="run mosquitto until SIGINT/SIGTERM")
    with_dir(r)
    r.add_argument("--port", type=int, default=DEFAULT_PORT, help="TLS port (default 8883)")
    r.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all)")
    r.add_argument("--san", action="append", metavar="NAME",
                   help="extra host name or address for the server certificate (repeatable)")
    r.set_defaults(func=run)

    a = bsub.add_parser("add-device", help="give a board an account (prints a new token once)")
    with_dir(a)
    a.add_argument("--app", required=True, help="app id")
    a.add_argument("--cid", default=rpztopics.DEFAULT_CID, help="client id (default: _)")
    a.add_argument("--token", help="the board's token (default: a random one, printed once)")
    a.add_argument("--username", help="account name (default: the client id {app}/cid/{cid})")
    a.add_argument("--icapp", help="ICApp id the board also publishes events to")
    a.add_argument("--replace", action="store_true", help="issue a new token for a known board")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.set_defaults(func=_add)

    rm = bsub.add_parser("remove-device", help="remove a board and its account")
    with_dir(rm)
    rm.add_argument("--app", required=True)
    rm.add_argument("--cid", default=rpztopics.DEFAULT_CID)
    rm.set_defaults(func=_remove)

    ls = bsub.add_parser("devices", help="list the boards that have an account")
    with_dir(ls)
    ls.set_defaults(func=_list)
