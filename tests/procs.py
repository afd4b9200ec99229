"""The one way tests run a child process: output collected line by line (stdout and stderr),
readiness from a READY line (never a sleep), a stop by the process's own id."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path


class LineProcess:
    """A subprocess whose output is collected line by line; ``ready`` waits for a line."""

    def __init__(self, args: list, ready: re.Pattern | str | None = None,
                 timeout: float = 30.0, cwd: Path | None = None) -> None:
        self.args = [str(a) for a in args]
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            self.args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            bufsize=1, start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.wait_for(ready, timeout) if ready is not None else None

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            self._q.put(line)
        self._q.put(None)

    def wait_for(self, pattern: re.Pattern | str, timeout: float = 20.0) -> re.Match:
        """The next output line matching ``pattern`` (earlier lines are passed over); fails
        the test on a timeout or when the process ends first."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {rx.pattern!r} from {self.args}: "
                                     f"{self.lines}")
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self._q.put(None)
                raise AssertionError(f"{self.args} exited before {rx.pattern!r}; output: "
                                     f"{self.lines}")
            m = rx.search(line)
            if m:
                return m

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        """Signal the process by its id and wait; kill its group if it does not stop."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode
