"""Drive headless Chromium from Python: ``driver.js`` (playwright-core, Debian's chromium)
runs as a child process and takes one JSON command per line (see its header)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def missing() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if not Path(CHROMIUM).is_file():
        return f"no {CHROMIUM} (make setup installs Debian's chromium)"
    if shutil.which("node") is None:
        return "no node"
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        return "no tests/dashboard/node_modules (make setup runs npm ci there)"
    return None


class BrowserError(AssertionError):
    """A driver command failed (the page did not do what the test expected)."""


class Browser:
    """One headless Chromium page. ``call(cmd, **args)`` returns the command's value."""

    def __init__(self, timeout: float = 30.0, width: int = 1400, height: int = 1000) -> None:
        env = {**os.environ, "CHROMIUM": CHROMIUM, "WIDTH": str(width), "HEIGHT": str(height)}
        self.proc = subprocess.Popen(
            ["node", str(HERE / "driver.js")], cwd=HERE, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1, env=env,
            start_new_session=True,
        )
        self._q: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        assert self._answer(timeout) == "ready"

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self._q.put(line)
        self._q.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def _answer(self, timeout: float) -> object:
        try:
            line = self._q.get(timeout=timeout)
        except queue.Empty:
            raise BrowserError(f"the browser driver said nothing within {timeout} s") from None
        if line is None:
            raise BrowserError(f"the browser driver exited: {self.stderr[-20:]}")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise BrowserError(answer.get("error"))
        return answer.get("value")

    def call(self, cmd: str, deadline: float = 30.0, **args: object) -> object:
        """Run one driver command and return its value (BrowserError when it fails, or
        when no answer comes within ``deadline`` seconds)."""
        assert self.proc.stdin
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        return self._answer(deadline)

    def wait(self, sel: str, text: str | None = None, timeout: float = 10.0) -> str:
        """Wait until an element matching ``sel`` (whose text matches the regular expression
        ``text``) is on the page; returns its text."""
        args: dict = {"sel": sel, "timeout": int(timeout * 1000)}
        if text is not None:
            args["text"] = text
        try:
            return str(self.call("wait", deadline=timeout + 5, **args))
        except BrowserError as e:
            raise BrowserError(f"waiting for {sel} ~ {text!r}: {e}") from None

    def text(self, sel: str) -> str:
        """The text of the first element matching ``sel``."""
        return str(self.call("text", sel=sel))

    def close(self) -> None:
        """Quit the driver (it closes Chromium), by its process id if it does not."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
