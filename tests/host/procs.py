"""Subprocesses that print a READY line (``twintap relay``): started on free ports, waited for
by their READY line (never a sleep), stopped by their own pid."""

from __future__ import annotations

import sys

from tests.procs import LineProcess


class ReadyProcess(LineProcess):
    """``python -m twintap ARGS``, its output collected line by line; waits for READY."""

    def __init__(self, *args: str, ready: str = r"^READY ", timeout: float = 20.0) -> None:
        super().__init__([sys.executable, "-m", "twintap", *args], ready, timeout)
