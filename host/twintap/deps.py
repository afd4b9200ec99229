"""Device-side dependencies for the virtual board.

``umqtt.simple`` is frozen into the official ESP32 firmware. For the unix port it comes from
the package registry by name (``micropython-umqtt.simple``): an upip-format sdist that pip
cannot install, so it is fetched through the registry's JSON API, checked against a pinned
SHA-256 and unpacked into ``.cache/mpylib``, which the virtual board puts on its module path.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tarfile
import urllib.request
from pathlib import Path

from twintap import TwintapError
from twintap.paths import MPY_LIB

UMQTT_PACKAGE = "micropython-umqtt.simple"
UMQTT_VERSION = "1.3.4"
UMQTT_SHA256 = "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f"


def _json_api() -> str:
    override = os.environ.get("TWINTAP_PYPI_JSON")
    if override:
        return override.rstrip("/")
    from pip._internal.models.index import PyPI  # the index pip itself uses

    return PyPI.pypi_url


def fetch_umqtt(dest: Path = MPY_LIB, timeout: float = 60.0) -> Path:
    """Install ``umqtt/simple.py`` into ``dest`` (idempotent); returns the module's path."""
    target = dest / "umqtt" / "simple.py"
    stamp = dest / "umqtt" / ".version"
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == UMQTT_VERSION:
        return target
    url = f"{_json_api()}/{UMQTT_PACKAGE}/json"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            meta = json.load(r)
        files = meta["releases"][UMQTT_VERSION]
        sdist = next(f for f in files if f["packagetype"] == "sdist")
        with urllib.request.urlopen(sdist["url"], timeout=timeout) as r:
            blob = r.read()
    except (OSError, KeyError, StopIteration, ValueError) as e:
        raise TwintapError(
            f"cannot fetch {UMQTT_PACKAGE} {UMQTT_VERSION} from the package registry: {e}"
        ) from e
    digest = hashlib.sha256(blob).hexdigest()
    if digest != UMQTT_SHA256:
        raise TwintapError(f"{UMQTT_PACKAGE} {UMQTT_VERSION}: SHA-256 mismatch ({digest})")
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("umqtt/simple.py"))
        source = tar.extractfile(member).read()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(source)
    tmp.replace(target)
    stamp.write_text(UMQTT_VERSION + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m twintap.deps", description=__doc__)
    p.add_argument("--dest", type=Path, default=MPY_LIB)
    args = p.parse_args(argv)
    try:
        path = fetch_umqtt(args.dest)
    except TwintapError as e:
        print(f"twintap: {e}")
        return 2
    print(f"umqtt.simple {UMQTT_VERSION}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
