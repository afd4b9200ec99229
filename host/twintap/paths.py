"""Where the project's trees are: the firmware and board files ship with the repository."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(os.environ.get("TWINTAP_REPO", Path(__file__).resolve().parents[2]))
FIRMWARE = REPO / "firmware"
BOARDS = REPO / "boards"
CACHE = REPO / ".cache"
MPY_LIB = CACHE / "mpylib"  # device-side libraries for the unix port (umqtt.simple)


def board_file(name: str) -> Path:
    """Path of the board file for board ``name``; raises TwintapError if there is none."""
    from twintap import TwintapError

    p = BOARDS / (name + ".json")
    if not p.is_file():
        known = ", ".join(sorted(x.stem for x in BOARDS.glob("*.json")))
        raise TwintapError(f"no board file for {name!r} (known boards: {known})")
    return p
