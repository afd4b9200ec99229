"""Virtual boards, the broker and the platform, as the bench runs them.

Boards are :class:`~twintap.vboard.VirtualBoard` objects in this process (their
``micropython`` process ids are what the CPU figures read); their log lines are kept here
rather than printed. The platform is ``twintap platform serve`` in a child process, so that
its SQLite work does not share this process's interpreter with the clients that measure.
"""

from __future__ import annotations

import collections
import json
import re
import sys
import threading
import time
from pathlib import Path

from twintap import TwintapError
from twintap.benchlib.procs import LineProcess
from twintap.broker import Broker, BrokerDir, add_device
from twintap.mqttclient import Credentials
from twintap.runall import provision_virtual_board
from twintap.vboard import VirtualBoard


class BenchBoard:
    """A virtual board whose log is collected; :meth:`wait_for` waits for a log line."""

    def __init__(self, flash: Path, **kw: object) -> None:
        self.flash = Path(flash)
        self.lines: collections.deque[str] = collections.deque(maxlen=500)
        self._cv = threading.Condition()
        self._count = 0
        self.vb = VirtualBoard(self.flash, tcp_port=0, echo=self._echo, **kw)  # type: ignore[arg-type]

    def _echo(self, line: str) -> None:
        with self._cv:
            self.lines.append(line)
            self._count += 1
            self._cv.notify_all()

    def start(self, timeout: float = 30.0) -> BenchBoard:
        """Start the board and wait for its READY line."""
        self.vb.start(timeout)
        return self

    @property
    def tcp_port(self) -> int:
        """The board's Tap TCP port."""
        return int(self.vb.tcp_port or 0)

    @property
    def pid(self) -> int:
        """The micropython process id (0 when it is not running)."""
        return self.vb.proc.pid if self.vb.proc else 0

    @property
    def uart(self) -> str:
        """The user end of the board's UART pty."""
        if not self.vb.uart:
            raise TwintapError("this board has no UART")
        return self.vb.uart.user_path

    def wait_for(self, pattern: str, timeout: float = 20.0,
                 fail: str | None = None) -> re.Match:
        """The first log line (since start) matching ``pattern``; TwintapError on timeout,
        when the board exits, or at once when a line matches ``fail``."""
        rx = re.compile(pattern)
        bad = re.compile(fail) if fail else None
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                    if bad is not None and bad.search(line):
                        raise TwintapError(line.strip())
                left = deadline - time.monotonic()
                if left <= 0 or self.vb.exited.is_set():
                    why = "exited" if self.vb.exited.is_set() else f"nothing in {timeout:g} s"
                    raise TwintapError(f"board {self.flash.name}: {why} matching "
                                       f"{pattern!r}; last lines: {' | '.join(self.tail(4))}")
                self._cv.wait(min(left, 0.2))

    def tail(self, n: int = 6) -> list[str]:
        """The last ``n`` log lines."""
        with self._cv:
            return list(self.lines)[-n:]

    def stop(self) -> None:
        """Stop the board (Ctrl-C as on a real board; SIGKILL after a grace period)."""
        self.vb.stop()


class Accounts:
    """Board accounts on the bench broker, made before it starts (no reload per board)."""

    def __init__(self, broker_dir: Path) -> None:
        self.dir = Path(broker_dir)
        self.tokens: dict[tuple[str, str], tuple[str, str]] = {}

    def add(self, app: str, cid: str) -> tuple[str, str]:
        """(username, token) of board ``{app}/cid/{cid}``, made on first use."""
        key = (app, cid)
        if key not in self.tokens:
            added = add_device(self.dir, app, cid, replace=True)
            if not added.token:
                raise TwintapError(f"no token for {app}/cid/{cid}")
            self.tokens[key] = (added.device.username, added.token)
        return self.tokens[key]

    def creds(self, app: str, cid: str) -> Credentials:
        """A device's credentials, for paho stand-ins."""
        user, token = self.add(app, cid)
        return Credentials(user, token, BrokerDir(self.dir).ca_pem)

    def platform(self) -> Credentials:
        """The platform account."""
        return BrokerDir(self.dir).platform_credentials()


def provision(flash: Path, accounts: Accounts, url: str, app: str, cid: str,
              **extra: object) -> None:
    """Write the board's Rapidomize configuration (``twintap run``'s own provisioning) plus
    the bench's options (``ssr_per_s``, ``event_qos``, ...) into ``flash/config.json``."""
    user, token = accounts.add(app, cid)
    provision_virtual_board(flash, accounts.dir, url, app, cid, user, token)
    path = flash / "config.json"
    cfg = json.loads(path.read_text())
    cfg["rpz"].update(extra)
    path.write_text(json.dumps(cfg, indent=1))


class PlatformProcess:
    """``twintap platform serve`` on the bench broker, in a child process."""

    def __init__(self, broker_dir: Path, directory: Path) -> None:
        self.dir = Path(directory)
        self.proc = LineProcess([sys.executable, "-m", "twintap", "platform", "serve",
                                 "--broker-dir", str(broker_dir), "--dir", str(directory)],
                                keep=50, ready=r"^READY platform ", timeout=30)

    @property
    def db(self) -> Path:
        """The platform's SQLite store."""
        return self.dir / "platform.db"

    def registered(self, app: str) -> int:
        """How many instances of ``app`` the platform has a registration of."""
        import sqlite3

        try:
            db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        except sqlite3.Error:
            return 0
        try:
            row = db.execute("SELECT COUNT(*) FROM instances WHERE app = ? AND "
                             "registered IS NOT NULL", (app,)).fetchone()
        except sqlite3.Error:
            return 0
        finally:
            db.close()
        return int(row[0])

    def stop(self) -> None:
        """Stop the platform (SIGINT by its id)."""
        self.proc.stop()


def shipped_nodelay() -> bool:
    """Whether ``twintap broker run``'s mosquitto.conf sets ``set_tcp_nodelay``."""
    return "set_tcp_nodelay" in Broker(Path("/nonexistent-twintap-bench"), 1).config_text()


class BenchBroker(Broker):
    """The bench broker (``twintap broker``'s configuration) with ``set_tcp_nodelay true``.

    Without it mosquitto's Nagle delay meets the clients' delayed ACKs and every MQTT round
    trip costs about 40 ms, whoever answers: the board's own cost would not show. The bench
    measures the shipped configuration's round trip separately (see the SSR section).
    """

    def config_text(self) -> str:
        """``twintap broker``'s mosquitto.conf, plus ``set_tcp_nodelay true``."""
        text = super().config_text()
        if "set_tcp_nodelay" not in text:
            text += "set_tcp_nodelay true\n"
        return text
