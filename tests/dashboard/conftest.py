"""Fixtures for the dashboard's end-to-end tests: ``twintap dashboard`` as a subprocess on a
free port against the module's bench broker and platform (``bench``, ``platform`` from
tests/rpz/fixtures.py), ready at its ``READY dashboard URL`` line and stopped by its process
id; and a headless Chromium page (Debian's chromium through playwright-core, ``driver.js``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dashboard.browser import Browser, missing
from tests.rpz.fixtures import LineProcess, twintap_cmd
from twintap.vboard import free_port

DASHBOARD_READY = re.compile(r"^READY dashboard (?P<url>http://127\.0\.0\.1:\d+)$")


@dataclass
class DashboardProcess:
    """A running ``twintap dashboard``: its URL, bench directory and output."""

    url: str
    bench_dir: Path
    proc: LineProcess

    @property
    def lines(self) -> list[str]:
        return self.proc.lines


@pytest.fixture(scope="module")
def dashboard(bench, platform, tmp_path_factory) -> DashboardProcess:
    """``twintap dashboard`` on a free port, for the module's broker and platform."""
    bench_dir = tmp_path_factory.mktemp("benchreport")
    proc = LineProcess(
        twintap_cmd("dashboard", "--platform-dir", platform.dir, "--broker-dir", bench.dir,
                    "--port", free_port(), "--bench-dir", bench_dir),
        DASHBOARD_READY,
    )
    yield DashboardProcess(proc.ready["url"], bench_dir, proc)
    assert proc.stop() == 0, proc.lines


@pytest.fixture
def browser() -> Browser:
    """A fresh headless Chromium page (its own profile), closed after the test."""
    why = missing()
    if why is not None:
        pytest.fail(f"the dashboard tests need a browser: {why}")
    b = Browser()
    yield b
    b.close()
