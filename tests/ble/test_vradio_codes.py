"""The emulated radio repeats the socket protocol's codes as const() (the board does not load
proto/vble.py, to save its heap): they must stay the ones the host side speaks."""

from __future__ import annotations

import re

from twintap.paths import FIRMWARE
from twintap.proto import vble


def test_vradio_codes_match_the_protocol():
    src = (FIRMWARE / "twintap" / "platform" / "vradio.py").read_text()
    found = dict(re.findall(r"^_([A-Z][A-Z0-9_]*) = const\((0x[0-9A-Fa-f]+|\d+)\)", src, re.M))
    shared = {name: int(v, 0) for name, v in found.items() if hasattr(vble, name)}
    assert len(shared) >= 15, sorted(found)
    for name, value in shared.items():
        assert getattr(vble, name) == value, name
