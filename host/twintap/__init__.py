"""twintap host companion: flash, deploy, provision, talk Tap, play the Rapidomize platform,
and run the firmware on the MicroPython unix port as a virtual board."""

import signal
import sys
import threading
import time

__version__ = "0.1.0"
_SAY_LOCK = threading.Lock()


class TwintapError(Exception):
    """An error the CLI reports as ``twintap: <message>`` with a non-zero exit status."""


def say(line: str) -> None:
    """Print one line to stdout at once: threads relaying child output (mosquitto, a board)
    and the main thread's READY lines never interleave within a line."""
    with _SAY_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class StopSignals:
    """SIGINT and SIGTERM as a flag the main thread polls: the ``run``/``serve`` commands serve
    until one arrives. The handler only stores the signal number; setting a
    ``threading.Event`` (or taking any lock) from a signal handler deadlocks when the signal
    lands while the main thread holds that lock, e.g. inside ``Event.wait(timeout)``."""

    def __init__(self) -> None:
        self.signum: int | None = None
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:  # noqa: ARG002
        self.signum = signum

    def wait(self, timeout: float | None = None, poll: float = 0.1) -> bool:
        """True once a signal has arrived; False when ``timeout`` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.signum is None:
            left = poll if deadline is None else min(poll, deadline - time.monotonic())
            if left <= 0:
                return False
            time.sleep(left)
        return True


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """For ``preexec_fn``: on Linux the child gets SIGTERM when the thread that started it
    dies, so that a killed supervisor leaves no board or broker behind."""
    import contextlib
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def table(rows: list, header: list | tuple | None = None) -> list[str]:
    """Rows of cells as left-aligned columns two spaces apart (the CLI's tables)."""
    allrows = ([header] if header else []) + [list(r) for r in rows]
    if not allrows:
        return []
    widths = [max(len(str(r[i])) for r in allrows) for i in range(len(allrows[0]))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in allrows]

