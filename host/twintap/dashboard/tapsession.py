"""The dashboard's Tap panel, server side: one blocking :class:`twintap.tap.Tap` client shared
by every page, used from worker threads under one lock, and a monitor thread that polls the
chosen variables as the official data layer does (one read per variable per period; errors
are reported and polling goes on) and publishes their values.

Passwords go to the Tap only: they are never stored, published or logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from twintap.tap import Tap, TapError, TapTimeout

Publish = Callable[[dict], None]

MIN_PERIOD_MS = 100
MAX_MONITORED = 16


def jsonable(v: Any) -> Any:
    """A decoded Tap value as JSON can carry it (bytes as hex)."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex(" ")
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


class TapSession:
    """The shared Tap connection of the dashboard. Every method blocks: call it from a thread.

    ``publish(message)`` receives the state (``{"type": "tap", ...}``) after each change and
    the monitored values (``{"type": "tap_values", ...}``).
    """

    def __init__(self, publish: Publish, echo: Callable[[str], None] | None = None,
                 timeout: float = 2.0) -> None:
        self.publish = publish
        self.echo = echo or (lambda line: None)
        self.timeout = timeout
        self.lock = threading.RLock()
        self.tap: Tap | None = None
        self.url: str | None = None
        self.user: str | None = None
        self.info: dict = {}
        self.vars: list[dict] = []
        self.monitored: list[int] = []
        self.period_ms = 500
        self._mon_stop = threading.Event()
        self._mon_lock = threading.Lock()
        self._mon_thread: threading.Thread | None = None

    # -- state ---------------------------------------------------------------------------
    def state(self) -> dict:
        """What the page shows of the session (no secret in it)."""
        return {
            "type": "tap", "connected": self.tap is not None, "url": self.url,
            "user": self.user, "info": self.info, "variables": self.vars,
            "monitor": {"ids": self.monitored, "period_ms": self.period_ms},
        }

    def _changed(self) -> dict:
        st = self.state()
        self.publish(st)
        return st

    def _need(self) -> Tap:
        if self.tap is None:
            raise TapError("not connected to a Tap: connect first")
        return self.tap

    # -- connection ----------------------------------------------------------------------
    def connect(self, url: str) -> dict:
        """Open ``url`` (``tcp://``, ``serial://``, a pty path, ``vble://``...), read the
        board's identity and its variables; replaces any previous connection."""
        url = url.strip()
        if not url:
            raise TapError("give a link URL, e.g. tcp://127.0.0.1:2000")
        self.disconnect(quiet=True)
        with self.lock:
            tap = Tap.connect(url, timeout=self.timeout)
            try:
                info = {
                    "serial": tap.device.serial_number(),
                    "model": tap.device.model(),
                    "firmware": tap.device.firmware_version(),
                }
                self.tap, self.url, self.user, self.info = tap, url, None, info
                self.vars = self._describe()
            except Exception:
                tap.close()
                self.tap = None
                raise
        self.echo(f"[I][dashboard] Tap connected: {url} ({info['serial']})")
        return self._changed()

    def disconnect(self, quiet: bool = False) -> dict:
        """Stop monitoring and close the link."""
        self._stop_monitor()
        with self.lock:
            if self.tap is not None:
                try:
                    self.tap.close()
                except (OSError, TapError):
                    pass
                if not quiet:
                    self.echo(f"[I][dashboard] Tap disconnected: {self.url}")
            self.tap, self.url, self.user, self.info, self.vars = None, None, None, {}, []
            self.monitored = []
        return self._changed()

    def _describe(self) -> list[dict]:
        tap = self._need()
        tap.variable.forget()
        return [{k: jsonable(v) for k, v in d.items()} for d in tap.variables()]

    # -- security ------------------------------------------------------------------------
    def login(self, user: str, password: str) -> dict:
        """Log in (basic, hashed or SCRAM, as the Tap says); the variables are read again
        with the new rights."""
        with self.lock:
            tap = self._need()
            method = tap.auth.login(user, password)
            self.user = user
            self.vars = self._describe()
        self.echo(f"[I][dashboard] Tap login as {user!r} ({method})")
        return self._changed()

    def logout(self) -> dict:
        """Log out: back to the anonymous profile."""
        with self.lock:
            tap = self._need()
            tap.auth.logout()
            self.user = None
            self.vars = self._describe()
        return self._changed()

    # -- values --------------------------------------------------------------------------
    def variables(self) -> dict:
        """Read the declarations and values again."""
        with self.lock:
            self.vars = self._describe()
        return self._changed()

    def _set_value(self, vid: int, value: Any) -> None:
        for d in self.vars:
            if d["id"] == vid:
                d["value"] = value

    def read(self, vid: int) -> Any:
        """One variable's value, decoded for its type."""
        with self.lock:
            v = jsonable(self._need().variable.read(vid))
            self._set_value(vid, v)
        self.publish({"type": "tap_values", "t": time.time(), "values": {str(vid): v},
                      "errors": {}})
        return v

    def write(self, vid: int, value: Any) -> Any:
        """Write a value (text is parsed per the variable's type) and return it read back."""
        with self.lock:
            tap = self._need()
            tap.variable.write(vid, value)
            v = jsonable(tap.variable.read(vid))
            self._set_value(vid, v)
        self.echo(f"[I][dashboard] Tap write variable {vid} = {v!r}")
        self.publish({"type": "tap_values", "t": time.time(), "values": {str(vid): v},
                      "errors": {}})
        return v

    # -- monitor -------------------------------------------------------------------------
    def monitor(self, ids: list[int], period_ms: int) -> dict:
        """Poll ``ids`` every ``period_ms`` (an empty list stops monitoring)."""
        ids = list(dict.fromkeys(int(i) for i in ids))[:MAX_MONITORED]
        with self._mon_lock:  # one change at a time: the last call wins
            self._stop_monitor()
            with self.lock:
                if ids:
                    self._need()
                self.monitored = ids
                self.period_ms = max(MIN_PERIOD_MS, int(period_ms))
            if ids:
                self._mon_stop.clear()
                self._mon_thread = threading.Thread(
                    target=self._monitor_loop, name="dashboard-tap-monitor", daemon=True
                )
                self._mon_thread.start()
            return self._changed()

    def _stop_monitor(self) -> None:
        self._mon_stop.set()
        t = self._mon_thread
        if t is not None and t is not threading.current_thread():
            t.join(self.timeout * (MAX_MONITORED + 1))
        self._mon_thread = None

    def _monitor_loop(self) -> None:
        while not self._mon_stop.is_set():
            start = time.monotonic()
            values: dict[str, Any] = {}
            errors: dict[str, str] = {}
            with self.lock:
                tap = self.tap
                if tap is None:
                    break
                for vid in self.monitored:
                    if self._mon_stop.is_set():
                        break
                    try:
                        values[str(vid)] = jsonable(tap.variable.read(vid))
                        self._set_value(vid, values[str(vid)])
                    except TapTimeout as e:
                        errors[str(vid)] = f"timeout: {e}"
                    except TapError as e:
                        errors[str(vid)] = str(e)
            if values or errors:
                self.publish({"type": "tap_values", "t": time.time(), "values": values,
                              "errors": errors})
            left = self.period_ms / 1000 - (time.monotonic() - start)
            self._mon_stop.wait(max(0.01, left))

    def close(self) -> None:
        """Stop monitoring and close the link (the dashboard is stopping)."""
        self._stop_monitor()
        with self.lock:
            if self.tap is not None:
                try:
                    self.tap.close()
                except (OSError, TapError):
                    pass
                self.tap = None
