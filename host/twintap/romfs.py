"""ROMFS images: the firmware as a read-only filesystem that MicroPython runs in place.

MicroPython 1.25+ mounts a ROMFS partition at ``/rom`` and imports ``.mpy`` files from it
without copying their bytecode into the heap (only the names they use are interned there):
the flash is memory-mapped. That is
how a board with a small heap runs a large firmware. An image holds ``lib/twintap/...`` (and,
for the virtual board, the libraries the official ESP32 firmware has frozen in, such as
``umqtt.simple``). ``twintap deploy --romfs`` writes one to a board's partition with mpremote;
the virtual board maps one into its address space (``python -m twintap.romfs run IMAGE``).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import subprocess
import sys
from pathlib import Path

from mpremote.romfs import VfsRomWriter

from twintap import TwintapError
from twintap.paths import CACHE, MPY_LIB

ENV = "TWINTAP_ROMFS"  # "address:length" of the mapped image, read by firmware/main.py
VBOARD_IMAGE = CACHE / "romfs" / "vboard.img"


def image(files: dict[str, bytes]) -> bytes:
    """A ROMFS image holding ``files`` (paths relative to the partition root, with ``/``)."""
    tree: dict = {}
    for path, data in files.items():
        *dirs, name = path.strip("/").split("/")
        node = tree
        for d in dirs:
            node = node.setdefault(d, {})
            if not isinstance(node, dict):
                raise TwintapError(f"romfs: {path} is below a file")
        node[name] = data
    w = VfsRomWriter()

    def add(node: dict) -> None:
        for name in sorted(node):
            if isinstance(node[name], dict):
                w.opendir(name)
                add(node[name])
                w.closedir()
            else:
                w.mkfile(name, node[name])

    add(tree)
    return w.finalise()


def _compiled_libs(out: Path = CACHE / "romfs" / "lib") -> dict[str, bytes]:
    """The libraries the official firmware freezes (umqtt.simple), compiled with mpy-cross."""
    from twintap.vboard import mpy_cross_path

    files = {}
    for src in sorted(MPY_LIB.rglob("*.py")):
        rel = src.relative_to(MPY_LIB)
        dst = (out / rel).with_suffix(".mpy")
        if not dst.is_file() or dst.stat().st_mtime < src.stat().st_mtime:
            dst.parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run([mpy_cross_path(), "-o", str(dst), "-s", str(rel), str(src)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise TwintapError(f"mpy-cross failed on {rel}: {r.stderr.strip()}")
        files["lib/" + rel.with_suffix(".mpy").as_posix()] = dst.read_bytes()
    return files


def firmware_files(package: Path, with_libs: bool) -> dict[str, bytes]:
    """``lib/twintap/...`` from a compiled package directory, plus the frozen libraries."""
    files = {
        "lib/twintap/" + p.relative_to(package).as_posix(): p.read_bytes()
        for p in sorted(package.rglob("*.mpy"))
    }
    if with_libs:
        files.update(_compiled_libs())
    return files


def vboard_image(path: Path = VBOARD_IMAGE) -> Path:
    """The virtual board's ROMFS image (the compiled firmware and umqtt.simple), rebuilt
    when what goes into it changed."""
    from twintap.vboard import compile_firmware

    data = image(firmware_files(compile_firmware(), with_libs=True))
    if not path.is_file() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def map_image(path: Path) -> tuple[int, int]:
    """Map ``path`` read-only into this process (as a board maps its flash); returns
    (address, length). The mapping lives as long as the process."""
    size = path.stat().st_size
    if size == 0:
        raise TwintapError(f"{path}: empty ROMFS image")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_PRIVATE, fd, 0)
    finally:
        os.close(fd)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        raise TwintapError(f"{path}: mmap failed: {os.strerror(ctypes.get_errno())}")
    return addr, size


def run(image_path: str, argv: list[str]) -> int:
    """Run the MicroPython unix port in this process with ``image_path`` mapped as its
    ROMFS partition; ``argv`` are micropython's own arguments."""
    addr, size = map_image(Path(image_path))
    os.environ[ENV] = f"{addr}:{size}"
    from micropython_run import run_main  # the unix port, as the `micropython` script runs it

    return run_main(["micropython", *argv])


if __name__ == "__main__":  # python -m twintap.romfs run IMAGE [micropython arguments]
    if len(sys.argv) < 3 or sys.argv[1] != "run":
        sys.exit("usage: python -m twintap.romfs run IMAGE [micropython arguments]")
    sys.exit(run(sys.argv[2], sys.argv[3:]))
