"""``twintap flash``: write a MicroPython firmware image to an ESP32 with esptool's API.

The chip is detected and checked against the board file's ``"chip"`` (and against the
image's own chip id) before anything is written, the image goes to the board file's
``"flash_offset"`` through esptool's stub flasher, esptool verifies what it wrote (MD5 of the
flash region), and the chip's MAC address is printed at the end. esptool's progress reaches
a bar through a replaceable logger; esptool's failures become ``twintap: ...`` messages that
say what to do (boot mode, cable, port permissions).
"""

from __future__ import annotations

import contextlib
import json
import re
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from twintap import TwintapError, ports
from twintap.paths import board_file

ROM_BAUD = 115200
DEFAULT_BAUD = 460800
IMAGE_MAGIC = 0xE9
#: image header chip ids (esp_image_header_t.chip_id) -> board-file chip names
IMAGE_CHIPS = {0: "esp32", 2: "esp32s2", 5: "esp32c3", 9: "esp32s3", 12: "esp32c2",
               13: "esp32c6", 16: "esp32h2"}


def chip_key(name: str) -> str:
    """esptool's chip name ("ESP32-S3") as board files spell it ("esp32s3")."""
    return name.lower().replace("-", "").replace("_", "")


# -- progress --------------------------------------------------------------------------------
class Bar:
    """A one-line progress bar on a terminal; plain percentage lines otherwise."""

    def __init__(self, stream=None, width: int = 30) -> None:
        self.stream = stream or sys.stdout
        self.width = width
        self.tty = self.stream.isatty()
        self.last = -1

    def __call__(self, done: int, total: int, label: str = "Writing") -> None:
        pct = 100 * done // total if total else 100
        if self.tty:
            fill = self.width * done // total if total else self.width
            bar = "#" * fill + "-" * (self.width - fill)
            self.stream.write(f"\r{label} [{bar}] {pct:3d}% ")
            if done >= total:
                self.stream.write("\n")
            self.stream.flush()
        elif pct // 25 != self.last // 25 or done >= total and self.last != 100:
            self.stream.write(f"{label} {pct}%\n")
            self.stream.flush()
        self.last = pct


# -- errors ----------------------------------------------------------------------------------
_HINTS = [
    (re.compile(r"Wrong boot mode detected \((0x[0-9a-f]+)\)", re.I),
     "the chip booted its firmware instead of the download mode (boot mode {0}): hold BOOT "
     "(IO0), press and release RESET (EN), release BOOT, then run the command again"),
    (re.compile(r"No serial data received", re.I),
     "no answer from the chip on {port}: use a data cable (not a charge-only one), hold BOOT "
     "while pressing RESET to enter the download mode, or try --baud 115200"),
    (re.compile(r"Timed out waiting for packet (header|content)", re.I),
     "the serial link dropped data: try a lower --baud (e.g. 115200) or another cable/port"),
    (re.compile(r"MD5 of file does not match|Write failed|region is empty", re.I),
     "verification failed: the flash does not hold what was written. Retry with --erase and "
     "a lower --baud"),
    (re.compile(r"Permission denied", re.I),
     "permission denied on {port}: add yourself to the dialout group "
     "(`sudo usermod -aG dialout $USER`, then log in again)"),
    (re.compile(r"busy|exclusively lock|Resource temporarily unavailable", re.I),
     "{port} is busy: close the program that has it open (serial monitor, mpremote, IDE)"),
    (re.compile(r"Failed to connect to", re.I),
     "cannot talk to the chip's bootloader on {port}: hold BOOT, press RESET, release BOOT "
     "and retry; check the cable and that this is the board's port"),
]


def explain_esptool(port: str, e: BaseException) -> TwintapError:
    """An esptool or serial failure as a ``twintap:`` message with what to do."""
    text = str(e).strip()
    for rx, hint in _HINTS:
        m = rx.search(text)
        if m:
            return TwintapError(hint.format(*m.groups(), port=port)
                                + f" (esptool: {text.splitlines()[0]})")
    return TwintapError(f"flashing over {port} failed: {text.splitlines()[0] if text else e}")


# -- the work --------------------------------------------------------------------------------
@dataclass
class FlashResult:
    """What ``flash`` did."""

    port: str
    chip: str
    mac: str
    offset: int
    size: int
    seconds: float
    verified: bool


def load_board(name: str) -> dict:
    """The board file ``boards/NAME.json``."""
    return json.loads(board_file(name).read_text())


def image_chip(data: bytes) -> str | None:
    """The chip an ESP32 application/merged image is built for (its header's chip id)."""
    if len(data) < 24 or data[0] != IMAGE_MAGIC:
        return None
    (chip_id,) = struct.unpack_from("<H", data, 12)
    return IMAGE_CHIPS.get(chip_id, f"chip id {chip_id}")


def check_image(data: bytes, expected_chip: str, name: str) -> None:
    """Refuse what is not an ESP image for this chip, before touching the board."""
    if not data:
        raise TwintapError(f"{name} is empty")
    if data[0] != IMAGE_MAGIC:
        raise TwintapError(
            f"{name} is not an ESP32 firmware image (it does not start with 0xE9): download "
            "the .bin for your board from micropython.org/download"
        )
    found = image_chip(data)
    if found and chip_key(found) != expected_chip:
        raise TwintapError(
            f"{name} is built for {found}, but the board file says {expected_chip}: download "
            f"the {expected_chip} build or pick the right --board"
        )


def mac_text(mac: bytes | tuple | list) -> str:
    """``aa:bb:cc:dd:ee:ff``"""
    return ":".join(f"{b:02x}" for b in mac)


def _connect(port: str, baud: int = ROM_BAUD):
    """esptool's loader for the chip on ``port`` (a seam the tests replace)."""
    from esptool.cmds import detect_chip

    return detect_chip(port, baud=baud, connect_mode="default-reset", connect_attempts=3)


def connect_checked(port: str, expected_chip: str | None):
    """Connect, detect the chip and compare it with the board file."""
    esp = _connect(port)
    chip = chip_key(esp.CHIP_NAME)
    if expected_chip and chip != expected_chip:
        with contextlib.suppress(Exception):
            esp._port.close()
        raise TwintapError(
            f"the board on {port} is an {esp.CHIP_NAME}, but the board file is for "
            f"{expected_chip}: pick the right --board (see `ls boards/`)"
        )
    return esp


def flash(port: str | None, board: str, firmware: Path, erase: bool = False,
          baud: int = DEFAULT_BAUD, progress: Callable[[int, int, str], None] | None = None,
          say: Callable[[str], None] = print, verbose: bool = False,
          no_stub: bool = False) -> FlashResult:
    """Write ``firmware`` at the board file's offset of a chip checked against it."""
    from esptool import cmds
    from esptool.util import FatalError

    from twintap.esplog import QuietLogger, esptool_logger

    spec = load_board(board)
    expected = spec.get("chip")
    if not expected:
        raise TwintapError(
            f"board {board!r} is a virtual board: there is nothing to flash (use "
            "`twintap deploy --port REPL`)"
        )
    offset = int(str(spec.get("flash_offset") or "0"), 0)
    try:
        data = Path(firmware).read_bytes()
    except OSError as e:
        raise TwintapError(f"cannot read {firmware}: {e.strerror or e}") from e
    check_image(data, expected, Path(firmware).name)
    port = ports.resolve(port)
    if ports.is_pty(port):
        raise TwintapError(f"{port} is a pty (a virtual board?): only a real chip can be flashed")
    t0 = time.monotonic()
    log = QuietLogger(progress, verbose)
    with esptool_logger(log):
        esp = None
        try:
            say(f"Connecting to {port}...")
            esp = connect_checked(port, expected)
            say(f"Chip: {esp.get_chip_description()}")
            if not no_stub:
                esp = cmds.run_stub(esp)
            if baud and baud != ROM_BAUD:
                esp.change_baud(baud)
            cmds.attach_flash(esp)
            if erase:
                say("Erasing the whole flash...")
                cmds.erase_flash(esp)
            say(f"Writing {len(data)} bytes at {offset:#x}...")
            cmds.write_flash(esp, [(offset, data)])
            verified = any("Hash of data verified" in line for line in log.lines)
            mac = mac_text(esp.read_mac("BASE_MAC") or esp.read_mac())
            cmds.reset_chip(esp, "hard-reset")
            chip = esp.CHIP_NAME
        except FatalError as e:
            raise explain_esptool(port, e) from e
        except OSError as e:
            raise ports.explain(port, e) from e
        finally:
            if esp is not None:
                with contextlib.suppress(Exception):
                    esp._port.close()
    return FlashResult(port, chip, mac, offset, len(data), time.monotonic() - t0, verified)


def chip_info(port: str) -> dict:
    """Chip, features, MAC and flash size of the board on ``port`` (for doctor); the board
    is reset into its bootloader for this, and hard-reset afterwards."""
    from esptool import cmds
    from esptool.util import FatalError

    from twintap.esplog import QuietLogger, esptool_logger

    with esptool_logger(QuietLogger()):
        esp = None
        try:
            esp = _connect(port)
            info = {
                "chip": esp.get_chip_description(),
                "features": ", ".join(esp.get_chip_features()),
                "crystal": f"{esp.get_crystal_freq()} MHz",
                "mac": mac_text(esp.read_mac("BASE_MAC") or esp.read_mac()),
            }
            esp = cmds.run_stub(esp)
            cmds.attach_flash(esp)
            info["flash"] = cmds.detect_flash_size(esp) or "unknown"
            cmds.reset_chip(esp, "hard-reset")
            return info
        except FatalError as e:
            raise explain_esptool(port, e) from e
        except OSError as e:
            raise ports.explain(port, e) from e
        finally:
            if esp is not None:
                with contextlib.suppress(Exception):
                    esp._port.close()


def run(args) -> int:
    """``twintap flash``"""
    bar = Bar()
    res = flash(args.port, args.board, Path(args.firmware), erase=args.erase, baud=args.baud,
                progress=bar, verbose=args.verbose, no_stub=args.no_stub)
    print(
        f"Flashed {res.size} bytes at {res.offset:#x} on the {res.chip} in {res.seconds:.1f} s"
        f"{', verified' if res.verified else ''}. MAC {res.mac}"
    )
    print(f"Next: twintap deploy --port {res.port} --board {args.board}")
    return 0


def add_parser(sub) -> None:
    """Register ``twintap flash``."""
    p = sub.add_parser("flash", help="write a MicroPython firmware image with esptool")
    p.add_argument("firmware", metavar="FIRMWARE.bin", help="MicroPython image for the board")
    p.add_argument("--port", "-p", help="serial port (default: the one ESP32 board on USB)")
    p.add_argument("--board", "-b", required=True,
                   help="board file name: chip and flash offset come from it")
    p.add_argument("--erase", action="store_true", help="erase the whole flash first")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help=f"baud rate while writing (default {DEFAULT_BAUD})")
    p.add_argument("--no-stub", action="store_true",
                   help="talk to the ROM bootloader only (slower; for odd chips)")
    p.add_argument("--verbose", "-v", action="store_true", help="show esptool's messages")
    p.set_defaults(func=run)
