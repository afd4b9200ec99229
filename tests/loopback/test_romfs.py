"""The firmware run from a ROMFS partition: the image the host builds is what MicroPython's
VfsRom reads, and a virtual board started with it serves Tap with no firmware in its flash."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from twintap.proto import frame, tapcodes
from twintap.romfs import image
from twintap.vboard import VirtualBoard

FILES = {
    "lib/pkg/__init__.py": b"",
    "lib/pkg/mod.py": b"VALUE = 42\n",
    "data/blob.bin": bytes(range(256)) * 3,
    "top.txt": b"top",
}

LISTER = """
import os, sys, vfs, uctypes
a, n = os.getenv("TWINTAP_ROMFS").split(":")
vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(a), int(n))), "/rom")
def walk(d):
    for name, kind, *_ in os.ilistdir(d):
        p = d + "/" + name
        if kind == 0x4000:
            walk(p)
        else:
            with open(p, "rb") as f:
                print(p[5:], f.read().hex())
walk("/rom")
sys.path.insert(0, "/rom/lib")
import pkg.mod
print("import", pkg.mod.VALUE)
"""


def test_image_reads_back_under_micropython(tmp_path: Path) -> None:
    img = tmp_path / "t.img"
    img.write_bytes(image(FILES))
    script = tmp_path / "lister.py"
    script.write_text(LISTER)
    r = subprocess.run([sys.executable, "-m", "twintap.romfs", "run", str(img), str(script)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    got = dict(line.split(" ", 1) for line in lines if line and not line.startswith("import"))
    assert got == {k: v.hex() for k, v in FILES.items()}
    assert "import 42" in lines


def test_board_runs_from_romfs(tmp_path: Path) -> None:
    flash = tmp_path / "flash"
    vb = VirtualBoard(flash, tcp_port=0, romfs=True, heap="256K", echo=lambda line: None)
    vb.start(30)
    try:
        assert not (flash / "lib" / "twintap").exists()  # the firmware is not in its flash
        with socket.create_connection(("127.0.0.1", vb.tcp_port), timeout=5) as s:
            s.sendall(frame.encode_request(frame.GET, 3, None, 2))
            status, data = frame.decode_response(s.recv(512))
        assert status == tapcodes.CONTENT and data.startswith(b"TT")
    finally:
        assert vb.stop() == 0
