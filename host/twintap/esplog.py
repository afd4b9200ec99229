"""esptool's logger, replaced for twintap (esptool 5 routes every message and progress bar
through one replaceable logger object: ``EspLog.set_logger``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from esp_pylib.logger import EspLog, EspLogBase


class QuietLogger(EspLogBase):
    """esptool's logger for twintap: its messages kept (shown with ``verbose``), its
    progress bars drawn by ``progress``."""

    def __init__(self, progress: Callable[[int, int, str], None] | None = None,
                 verbose: bool = False) -> None:
        self.progress_fn = progress
        self.verbose = verbose
        self.lines: list[str] = []
        self.label = "Writing"

    def _keep(self, *args: Any) -> None:
        text = " ".join(str(a) for a in args).strip()
        if text:
            self.lines.append(text)
            if self.verbose:
                print(f"  esptool: {text}", flush=True)
            if text.startswith(("Erasing", "Writing", "Verifying", "Reading")):
                self.label = text.split()[0]

    def print(self, *args: Any, **kwargs: Any) -> None:
        self._keep(*args)

    def note(self, *args: Any) -> None:
        self._keep("Note:", *args)

    def hint(self, *args: Any) -> None:
        self._keep("Hint:", *args)

    def warn(self, *args: Any, suggestion: str | None = None) -> None:
        self._keep("Warning:", *args)

    def err(self, *args: Any, suggestion: str | None = None) -> None:
        self._keep("Error:", *args)

    def debug(self, *args: Any) -> None:
        pass

    def set_verbosity(self, mode: int | str) -> None:
        pass

    def progress_bar(self, cur_iter: int, total_iters: int, prefix: str = "",
                     suffix: str = "", bar_length: int = 30) -> None:
        if self.progress_fn:
            self.progress_fn(cur_iter, total_iters, self.label)


class esptool_logger:  # noqa: N801 - used as a context manager, like contextlib helpers
    """Install ``logger`` as esptool's logger for a ``with`` block."""

    def __init__(self, logger: EspLogBase) -> None:
        self.logger = logger
        self.saved: EspLogBase | None = None

    def __enter__(self) -> EspLogBase:
        import esptool  # noqa: F401 - installs esptool's own logger first

        self.saved = EspLog.instance
        EspLog.set_logger(self.logger)
        return self.logger

    def __exit__(self, *exc: object) -> None:
        EspLog.instance = self.saved
