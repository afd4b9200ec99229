"""Processes the bench starts, and what they cost.

Every child is started here and stopped by its own process id (SIGINT, then SIGKILL after a
grace period). Readiness is a line the child prints (``READY ...``), never a sleep. CPU time
comes from ``/proc/<pid>/stat`` and ``/proc/stat`` (no psutil on the bench machine).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from twintap import TwintapError

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


class LineProcess:
    """A child process whose output (stdout and stderr) is read line by line.

    The last ``keep`` lines are kept, and every line that starts with ``READY`` or ``DONE``
    (what children print once they serve, or when they end), however much else follows.
    With ``ready``, the constructor waits for a line matching it and stops the child (by its
    id) if none comes.
    """

    MARKS = ("READY", "DONE")

    def __init__(self, args: Sequence[str], cwd: Path | None = None,
                 env: dict[str, str] | None = None, keep: int = 200,
                 ready: str | None = None, timeout: float = 20.0) -> None:
        self.args = [str(a) for a in args]
        self.keep = keep
        self.lines: list[str] = []
        self.marks: list[str] = []
        self._cv = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(
            self.args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True,
        )
        threading.Thread(target=self._read, name=f"out-{self.proc.pid}", daemon=True).start()
        if ready is not None:
            try:
                self.wait_for(ready, timeout)
            except BaseException:
                self.stop(timeout=3)
                raise

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._cv:
                self.lines.append(line)
                if line.startswith(self.MARKS):
                    self.marks.append(line)
                if len(self.lines) > self.keep:
                    del self.lines[: len(self.lines) - self.keep]
                self._cv.notify_all()
        with self._cv:
            self._eof = True
            self._cv.notify_all()

    def wait_for(self, pattern: str | re.Pattern, timeout: float = 20.0) -> re.Match:
        """The first output line matching ``pattern`` (among the kept lines and the
        READY/DONE lines); TwintapError when the child exits or after ``timeout``."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for line in self.marks + self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    why = "exited" if self._eof else f"printed nothing like it in {timeout:g} s"
                    tail = " | ".join(self.lines[-5:])
                    raise TwintapError(
                        f"{os.path.basename(self.args[0])} (pid {self.pid}) {why} before "
                        f"{rx.pattern!r}: {tail}"
                    )
                self._cv.wait(min(left, 0.5))

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int | None:
        """Signal the child by its id and wait for it; SIGKILL (by id) if it lingers."""
        return stop_process(self.proc, sig, timeout)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGINT,
                 timeout: float = 10.0) -> int | None:
    """Stop one child by its process id: ``sig``, then SIGKILL after ``timeout``."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
    return proc.returncode


# -- CPU accounting ---------------------------------------------------------------------------
def process_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (0 when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def host_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole host since boot, from ``/proc/stat``."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)  # idle + iowait
    total = sum(parts[:8])  # guest time is already counted in user
    return total - idle, total


@dataclass
class CpuUse:
    """CPU used during a window, in percent of one core (host: of all cores)."""

    seconds: float
    groups: dict[str, float]
    host: float


class CpuMeter:
    """CPU used by named groups of processes and by the host between :meth:`start` and
    :meth:`stop`. A group is a function returning its process ids at the time it is asked,
    so that processes started inside the window count from their start."""

    def __init__(self, groups: dict[str, Callable[[], Iterable[int]]]) -> None:
        self.groups = groups
        self._t0 = 0.0
        self._ticks: dict[int, int] = {}
        self._host = (0, 0)

    def start(self) -> CpuMeter:
        """Begin the window."""
        self._t0 = time.monotonic()
        self._ticks = {p: process_ticks(p) for pids in self.groups.values() for p in pids()}
        self._host = host_ticks()
        return self

    def stop(self) -> CpuUse:
        """End the window; percentages of one core per group, of all cores for the host."""
        dt = max(1e-6, time.monotonic() - self._t0)
        busy, total = host_ticks()
        groups = {}
        for name, pids in self.groups.items():
            ticks = sum(max(0, process_ticks(p) - self._ticks.get(p, 0)) for p in pids() if p)
            groups[name] = 100.0 * ticks / CLOCK_TICKS / dt
        d_total = total - self._host[1]
        host = 100.0 * (busy - self._host[0]) / d_total if d_total > 0 else 0.0
        return CpuUse(dt, groups, host)


def until(fn: Callable[[], T], timeout: float, what: str, step: float = 0.02) -> T:
    """Poll the condition ``fn`` (acks arrived, rows in the platform's store) every ``step``
    seconds; return its first truthy value, TwintapError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TwintapError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)
