"""twintap host companion: flash, deploy, provision, talk Tap, play the Rapidomize platform,
and run the firmware on the MicroPython unix port as a virtual board."""

import sys
import threading

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


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """For ``preexec_fn``: on Linux the child gets SIGTERM when the thread that started it
    dies, so that a killed supervisor leaves no board or broker behind."""
    import contextlib
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
