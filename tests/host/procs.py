"""Subprocesses that print a READY line (``twintap relay``): started on free ports, waited for
by their READY line (never a sleep), stopped by their own pid."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time


class ReadyProcess:
    """``python -m twintap ARGS``, its output collected line by line; waits for READY."""

    def __init__(self, *args: str, ready: str = r"^READY ", timeout: float = 20.0) -> None:
        self.args = [sys.executable, "-m", "twintap", *args]
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.wait_for(ready, timeout)

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            self._q.put(line)
        self._q.put(None)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r}; output: {self.lines}")
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"exited before {pattern!r}; output: {self.lines}")
            m = rx.search(line)
            if m:
                return m

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode
