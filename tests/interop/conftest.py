"""Fixtures for the interop tests: the official IoTize JS client (npm `@iotize/tap` 2.7.0, run
by node through `driver.js`) and `twintap relay` processes.

Every process is started with subprocess and stopped by its own id; readiness is a READY line
or the process's completion, never a sleep.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import LineProcess

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DRIVER = HERE / "driver.js"
TAP_PACKAGE = HERE / "node_modules" / "@iotize" / "tap" / "package.json"
TAP_VERSION = "2.7.0"
RELAY_READY_RE = re.compile(r"^READY listen=tcp://127\.0\.0\.1:(?P<port>\d+) to=(?P<to>\S+)")

# twintap board-file types -> the library's VariableType.Data names
DATA_TYPES = {
    "bool": "BOOLEAN",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "float32": "FLOAT32",
    "ascii": "ASCII",
}


def board_file(name: str = "unix") -> dict:
    return json.loads((REPO / "boards" / f"{name}.json").read_text())


def data_config(board: dict) -> dict:
    """The board's bundles and their variables as the library's data-manager configuration
    (properties outside any bundle, such as actions, have no place in the data layer)."""
    bundles = {b["id"]: {"name": b["name"], "variables": {}} for b in board["bundles"]}
    for p in board["properties"]:
        if p.get("bundle") not in bundles:
            continue
        bundles[p["bundle"]]["variables"][p["name"]] = {
            "id": p["id"],
            "dataType": DATA_TYPES[p["type"]],
            "length": p.get("count", 1),
        }
    return {b["name"]: {"id": bid, "variables": b["variables"]} for bid, b in bundles.items()}


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
    """Stop a process this suite started, by its id (and its own session on a hang)."""
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # started with start_new_session=True
            proc.wait()
    return proc.returncode


@pytest.fixture(scope="session")
def node() -> str:
    """The node executable, with the pinned @iotize/tap installed next to driver.js."""
    exe = shutil.which("node")
    if exe is None:
        pytest.fail("node is not installed: run `make setup` (it installs nodejs and npm)")
    if not TAP_PACKAGE.is_file():
        pytest.fail(f"{TAP_PACKAGE.parent} is missing: run `make setup` (npm ci in {HERE})")
    version = json.loads(TAP_PACKAGE.read_text())["version"]
    if version != TAP_VERSION:
        pytest.fail(f"@iotize/tap {version} installed, {TAP_VERSION} expected: run `make setup`")
    return exe


@pytest.fixture
def iotize(node):
    """``iotize(port, ops)`` runs driver.js against tcp://127.0.0.1:port and returns its JSON."""

    def run(port: int, ops: list, timeout: float = 60.0, request_timeout_ms: int = 5000) -> dict:
        args = [node, str(DRIVER), "--host", "127.0.0.1", "--port", str(port),
                "--timeout", str(request_timeout_ms)]
        proc = subprocess.Popen(
            args, cwd=HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        try:
            out, err = proc.communicate(json.dumps(ops), timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(proc, signal.SIGTERM, 5.0)
            out, err = proc.communicate()
            raise AssertionError(f"driver.js hung for {timeout}s; stderr: {err}") from None
        assert proc.returncode == 0, f"driver.js exited {proc.returncode}: {out}{err}"
        doc = json.loads(out)
        assert doc["connected"] is True, doc
        assert len(doc["results"]) == len(ops), doc
        return doc

    return run


@pytest.fixture
def start_relay():
    """Factory: ``start_relay(listen_port, to_link)`` -> a READY `twintap relay` process."""
    started: list[LineProcess] = []

    def start(port: int, to: str) -> LineProcess:
        p = LineProcess([sys.executable, "-m", "twintap", "relay",
                         "--listen", f"tcp://127.0.0.1:{port}", "--to", to], cwd=REPO)
        started.append(p)
        p.ready = p.wait_for(RELAY_READY_RE)
        return p

    yield start
    for p in started:
        p.stop()
