"""Serial ports: which one is the board (shared by flash, deploy, provision, doctor, monitor).

Without ``--port``, the USB serial ports whose VID:PID is a known ESP32 bridge are the
candidates (ESP Web Tools and mpremote's ``auto`` filter the same way): exactly one is used,
several or none is an error that says what to pass. ``--port`` takes a device path, a
virtual board's REPL pty, or any pyserial URL (``socket://``, ``rfc2217://``).

Opening a port turns operating-system errors into messages that say what to do (permission
denied -> the dialout group, busy -> another program has it open).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import serial
import serial.tools.list_ports

from twintap import TwintapError

#: USB VID:PID of the serial bridges on ESP32 boards (PID None = any of the vendor's)
KNOWN_IDS: dict[tuple[int, int | None], str] = {
    (0x303A, None): "Espressif native USB",
    (0x10C4, 0xEA60): "Silicon Labs CP210x",
    (0x1A86, 0x7523): "WCH CH340",
    (0x1A86, 0x55D4): "WCH CH9102",
    (0x0403, 0x6001): "FTDI FT232R",
    (0x0403, 0x6015): "FTDI FT231X",
}


@dataclass
class PortInfo:
    """One serial port as the host sees it."""

    device: str
    vid: int | None
    pid: int | None
    description: str
    serial_number: str | None = None

    @property
    def usb_id(self) -> str:
        """``303A:1001`` or ``-`` for a port without a USB id."""
        return f"{self.vid:04X}:{self.pid:04X}" if self.vid is not None else "-"

    @property
    def bridge(self) -> str | None:
        """The known ESP32 bridge this port is, if any."""
        return bridge_name(self.vid, self.pid)


def bridge_name(vid: int | None, pid: int | None) -> str | None:
    """Name of the ESP32 serial bridge with this VID:PID, or None."""
    if vid is None:
        return None
    return KNOWN_IDS.get((vid, pid)) or KNOWN_IDS.get((vid, None))


def list_ports() -> list[PortInfo]:
    """Every serial port pyserial sees, with its USB ids (sorted by device)."""
    out = []
    for p in serial.tools.list_ports.comports():
        out.append(PortInfo(p.device, p.vid, p.pid, p.description or "", p.serial_number))
    return sorted(out, key=lambda p: p.device)


def candidates(ports: list[PortInfo] | None = None) -> list[PortInfo]:
    """The ports that look like an ESP32 board."""
    return [p for p in (list_ports() if ports is None else ports) if p.bridge]


def is_pty(device: str) -> bool:
    """True for a pseudo-terminal (a virtual board's REPL or UART link)."""
    try:
        st = os.stat(device)
    except OSError:
        return False
    if not stat.S_ISCHR(st.st_mode):
        return False
    major = os.major(st.st_rdev)
    return major == 5 or 136 <= major <= 143  # /dev/ptmx, /dev/pts/*


def is_real_serial(device: str) -> bool:
    """A local serial device that esptool can reset (not a pty, not a URL)."""
    return "://" not in device and Path(device).exists() and not is_pty(device)


def resolve(port: str | None, ports: list[PortInfo] | None = None) -> str:
    """``port`` as given, or the one ESP32 board attached; TwintapError otherwise."""
    if port:
        if "://" not in port and not Path(port).exists():
            raise TwintapError(
                f"{port}: no such port. Plug the board in, or list ports with `twintap doctor`"
            )
        return port
    found = candidates(ports)
    if len(found) == 1:
        return found[0].device
    if not found:
        raise TwintapError(
            "no ESP32 board found on USB (looked for "
            + ", ".join(sorted(set(KNOWN_IDS.values())))
            + "). Plug one in with a data cable, or pass --port (a device, a virtual board's "
            "REPL pty, or a pyserial URL)"
        )
    listing = "; ".join(f"{p.device} ({p.usb_id} {p.bridge})" for p in found)
    raise TwintapError(f"several boards found: {listing}. Pick one with --port")


def explain(port: str, e: BaseException) -> TwintapError:
    """An OS or pyserial error on ``port`` as a message that says what to do."""
    code = getattr(e, "errno", None)
    text = str(e)
    if code == errno.EACCES or "Permission denied" in text:
        return TwintapError(
            f"permission denied on {port}: add yourself to the port's group "
            "(`sudo usermod -aG dialout $USER`, then log in again) or check the udev rules"
        )
    if code == errno.EBUSY or "busy" in text.lower() or "exclusively lock" in text:
        return TwintapError(
            f"{port} is busy: another program has it open (a serial monitor, mpremote, an "
            "IDE, another twintap). Close it and retry"
        )
    if code == errno.ENOENT or "No such file" in text:
        return TwintapError(f"{port} disappeared: is the board still plugged in?")
    return TwintapError(f"cannot use {port}: {text}")


def open_port(port: str, baud: int = 115200, timeout: float = 0.2,
              no_reset: bool = True) -> serial.SerialBase:
    """Open ``port`` (device, pty or URL) without resetting the board: DTR and RTS are left
    low, as idf.py monitor does (high RTS holds an ESP32 in reset on most bridges)."""
    try:
        s = serial.serial_for_url(port, baudrate=baud, timeout=timeout, do_not_open=True,
                                  exclusive=True)
        if no_reset:
            s.dtr = False
            s.rts = False
        s.open()
        return s
    except (OSError, serial.SerialException) as e:
        raise explain(port, e) from e
