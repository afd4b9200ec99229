"""``twintap deploy``: put the firmware on a board that runs MicroPython.

Reads what the board runs (``sys.implementation._mpy``: bytecode version and native arch)
and the SHA-256 of the files it has, compiles ``firmware/twintap`` with mpy-cross for that
bytecode (``-b``) and arch (``-march``), copies only the files whose hash differs (each one
atomically), installs the board file as ``board.json`` and ``main.py``, removes firmware
files that are no longer part of it (never configuration or data), prints a summary and
resets the board. The same on a real board's USB serial and on a virtual board's REPL pty.

``--romfs`` puts the compiled package into the board's ROMFS partition instead (MicroPython
1.25+ built with one): one image, written with mpremote's ``romfs deploy``; the board imports
from ``/rom/lib`` without copying bytecode into its heap, and ``lib/twintap`` on the
filesystem is removed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from twintap import TwintapError, ports
from twintap.paths import BOARDS, CACHE, FIRMWARE, board_file
from twintap.repl import BoardRepl
from twintap.vboard import mpy_cross_path

LIB = "lib/twintap"
#: MP_NATIVE_ARCH_* (py/persistentcode.h) -> mpy-cross -march
ARCHES = {1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em",
          7: "armv7emsp", 8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc",
          12: "rv64imc"}

#: one exec: what the board runs and the hash of every firmware file it has
FACTS_CODE = r"""
import sys, os, json, hashlib, binascii
def _tt_sha(p):
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        while True:
            b = f.read(512)
            if not b:
                break
            h.update(b)
    return binascii.hexlify(h.digest()).decode()
def _tt_walk(d, out):
    try:
        it = os.ilistdir(d)
    except OSError:
        return
    for e in it:
        p = d + '/' + e[0]
        if e[1] == 0x4000:
            _tt_walk(p, out)
        else:
            out[p] = _tt_sha(p)
def _tt_facts():
    files = {}
    _tt_walk('lib/twintap', files)
    for p in ('main.py', 'board.json'):
        try:
            files[p] = _tt_sha(p)
        except OSError:
            pass
    board = None
    try:
        with open('board.json') as f:
            board = json.load(f)
    except (OSError, ValueError):
        pass
    rom = None
    try:
        import vfs
        if hasattr(vfs, 'rom_ioctl') and vfs.rom_ioctl(1) > 0:
            dev = vfs.rom_ioctl(2, 0)
            rom = dev.ioctl(4, 0) * dev.ioctl(5, 0) if hasattr(dev, 'ioctl') else len(dev)
    except Exception:
        pass
    impl = sys.implementation
    tw = None
    m = sys.modules.get('twintap')
    if m is not None:
        tw = getattr(m, 'VERSION', None)
    print(json.dumps({'platform': sys.platform, 'mpy': getattr(impl, '_mpy', None),
        'version': '.'.join(str(v) for v in impl.version[:3]),
        'machine': getattr(impl, '_machine', ''), 'files': files,
        'board': board.get('name') if isinstance(board, dict) else None,
        'board_chip': board.get('chip') if isinstance(board, dict) else None,
        'twintap': tw, 'romfs': rom}))
_tt_facts()
del _tt_facts, _tt_walk, _tt_sha
"""


@dataclass
class Target:
    """What the board runs, as far as compiling for it goes."""

    platform: str
    mpy: int | None

    @property
    def bytecode(self) -> int | None:
        return self.mpy & 0xFF if self.mpy else None

    @property
    def arch(self) -> str | None:
        return ARCHES.get((self.mpy >> 10) & 0x3F) if self.mpy else None

    def flags(self) -> list[str]:
        """mpy-cross flags for this board; TwintapError when no bytecode fits."""
        out = []
        if self.bytecode is None:
            raise TwintapError("the board's MicroPython does not say its .mpy version: use "
                               "--source to install the firmware as .py files")
        if self.bytecode == 5:
            out += ["-b", "5"]
        elif self.bytecode != 6:
            raise TwintapError(
                f"the board's MicroPython loads .mpy version {self.bytecode}, mpy-cross makes "
                "5 and 6: update MicroPython (`twintap flash`) or use --source"
            )
        if self.arch:
            out.append(f"-march={self.arch}")
        return out

    def key(self) -> str:
        return f"mpy{self.bytecode}-{self.arch or 'none'}"


def facts(repl: BoardRepl) -> dict:
    """What the board runs and the hashes of its firmware files (one exec)."""
    return repl.json(FACTS_CODE, timeout=30)


def build(target: Target | None, out_root: Path = CACHE / "deploy") -> dict[str, bytes]:
    """Firmware files to install, by board path: compiled for ``target`` (None = sources)."""
    files: dict[str, bytes] = {}
    src_root = FIRMWARE / "twintap"
    sources = sorted(p for p in src_root.rglob("*.py") if "__pycache__" not in p.parts)
    if target is None:
        for src in sources:
            files[f"{LIB}/{src.relative_to(src_root).as_posix()}"] = src.read_bytes()
        return files
    flags = target.flags()
    out = out_root / target.key()
    for src in sources:
        rel = src.relative_to(FIRMWARE)
        dst = (out / rel).with_suffix(".mpy")
        if not (dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime):
            dst.parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run(
                [mpy_cross_path(), *flags, "-o", str(dst), "-s", str(rel), str(src)],
                capture_output=True, text=True,
            )
            if r.returncode != 0:
                raise TwintapError(f"mpy-cross failed on {rel}: {r.stderr.strip()}")
        files[f"{LIB}/{src.relative_to(src_root).with_suffix('.mpy').as_posix()}"] = (
            dst.read_bytes()
        )
    return files


@dataclass
class Plan:
    """What deploy will do: copy, leave, remove."""

    copy: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)


def plan(wanted: dict[str, bytes], have: dict[str, str]) -> Plan:
    """Compare the files to install with the hashes the board reported."""
    p = Plan()
    for path, data in sorted(wanted.items()):
        if have.get(path) == hashlib.sha256(data).hexdigest():
            p.same.append(path)
        else:
            p.copy.append(path)
    p.remove = sorted(x for x in have if x.startswith(LIB + "/") and x not in wanted)
    return p


def choose_board(requested: str | None, on_board: str | None) -> str:
    """The board file to install: --board, else the one the board already has."""
    name = requested or on_board
    if not name:
        known = ", ".join(sorted(p.stem for p in BOARDS.glob("*.json")))
        raise TwintapError(f"which board is this? pass --board (known: {known})")
    board_file(name)  # raises with the known names when there is no such file
    return name


def check_platform(board: dict, name: str, platform: str) -> None:
    """The board file must be for what the board runs (an ESP32 file on an ESP32...)."""
    chip = board.get("chip")
    if chip and platform != "esp32":
        raise TwintapError(f"board file {name} is for an {chip}, but this board runs "
                           f"MicroPython on {platform}: pick the right --board")
    if not chip and platform == "esp32":
        raise TwintapError(f"board file {name} is for a virtual board, but this is an ESP32: "
                           "pick its board file with --board")


@dataclass
class Result:
    """What deploy did."""

    board: str
    plan: Plan
    bytes_copied: int
    seconds: float
    target: str


def write_romfs(repl: BoardRepl, data: bytes) -> None:
    """Write a ROMFS image to the board's partition 0 (mpremote's ``romfs deploy``)."""
    import tempfile
    from argparse import Namespace

    from mpremote.commands import CommandError, _do_romfs_deploy

    class _State:  # what mpremote's command needs of its session: the raw-REPL transport
        transport = repl.t

        def ensure_raw_repl(self) -> None:
            pass

        def did_action(self) -> None:
            pass

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "twintap.romfs"
        path.write_bytes(data)
        try:
            _do_romfs_deploy(_State(), Namespace(path=str(path), partition=0, mpy=False))
        except CommandError as e:
            raise TwintapError(f"romfs deploy: {e}") from e


def deploy(port: str | None, board: str | None = None, source: bool = False,
           reset: bool = True, say: Callable[[str], None] = print,
           romfs: bool = False) -> Result:
    """Deploy the firmware to the board on ``port``; see the module's docstring."""
    if romfs and source:
        raise TwintapError("--romfs holds bytecode: it does not go with --source")
    port = ports.resolve(port)
    t0 = time.monotonic()
    with BoardRepl(port) as repl:
        f = facts(repl)
        name = choose_board(board, f.get("board"))
        board_text = board_file(name).read_text()
        check_platform(json.loads(board_text), name, f["platform"])
        target = None if source else Target(f["platform"], f.get("mpy"))
        what = "sources" if target is None else f".mpy v{target.bytecode} {target.arch or ''}"
        say(f"Board on {port}: MicroPython {f['version']} ({f['platform']}), "
            f"board file {name}; firmware as {what.strip()}")
        wanted = build(target)
        if romfs:
            from twintap.romfs import image

            size = f.get("romfs")
            if not size:
                raise TwintapError(
                    f"the MicroPython on {port} has no ROMFS partition (it needs 1.25+ built "
                    "with one, e.g. a board variant with a romfs partition table): deploy "
                    "without --romfs")
            data = image(wanted)
            if len(data) > size:
                raise TwintapError(f"the ROMFS image ({len(data)} bytes) does not fit the "
                                   f"board's partition ({size} bytes)")
            say(f"  ROMFS image: {len(wanted)} files, {len(data)} of {size} bytes")
            write_romfs(repl, data)
            what = what.strip() + " in ROMFS"
            wanted = {}  # nothing of the package stays on the filesystem
        wanted["main.py"] = (FIRMWARE / "main.py").read_bytes()
        wanted["board.json"] = board_text.encode()
        p = plan(wanted, f.get("files", {}))
        dirs = {str(Path(x).parent) for x in p.copy if "/" in x}
        parents = set()
        for d in dirs:
            parts = Path(d).parts
            for i in range(1, len(parts) + 1):
                parents.add("/".join(parts[:i]))
        repl.mkdirs(sorted(parents))
        copied = 0
        for i, path in enumerate(p.copy, 1):
            repl.write_file(path, wanted[path])
            copied += len(wanted[path])
            say(f"  [{i}/{len(p.copy)}] {path} ({len(wanted[path])} bytes)")
        repl.remove(p.remove)
        if reset:
            repl.reset()
    res = Result(name, p, copied, time.monotonic() - t0, what)
    say(f"Deployed to {port}: {len(p.copy)} copied ({copied} bytes), {len(p.same)} up to "
        f"date, {len(p.remove)} removed in {res.seconds:.1f} s"
        + ("; board reset" if reset else ""))
    return res


def run(args) -> int:
    """``twintap deploy``"""
    deploy(args.port, args.board, args.source, reset=not args.no_reset, romfs=args.romfs)
    return 0


def add_parser(sub) -> None:
    """Register ``twintap deploy``."""
    p = sub.add_parser("deploy", help="copy the firmware to a board running MicroPython")
    p.add_argument("--port", "-p",
                   help="serial port, a virtual board's REPL pty, or a pyserial URL "
                        "(default: the one ESP32 board on USB)")
    p.add_argument("--board", "-b",
                   help="board file to install as board.json (default: the board's own)")
    p.add_argument("--source", action="store_true",
                   help="install .py sources instead of .mpy bytecode")
    p.add_argument("--romfs", action="store_true",
                   help="write the bytecode to the board's ROMFS partition (MicroPython 1.25+): "
                        "it runs from flash, leaving the heap to the application")
    p.add_argument("--no-reset", action="store_true", help="do not reset the board afterwards")
    p.set_defaults(func=run)
