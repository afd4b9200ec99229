"""``fakeesp://NAME``: a pyserial port with an emulated ESP32 ROM bootloader behind it.

Enough of the serial download protocol (SLIP framing, SYNC, READ_REG/WRITE_REG with the SPI
"user command" registers, security info, RAM upload of the stub and its "OHAI", plain and
compressed flash writes, MD5, erase, baud change) for esptool's own detect_chip, run_stub,
attach_flash, write_flash, read_mac and reset_chip to run unchanged against it. Each NAME is
one chip, created with :func:`make` and inspected through :data:`CHIPS`.
"""

from __future__ import annotations

import errno
import hashlib
import struct
import threading
import time
import zlib

import serial

CHIPS: dict[str, FakeChip] = {}


class FakeChip:
    """One emulated chip: its registers, its flash, and what it was asked to do."""

    def __init__(self, chip: str = "esp32", flash_size: int = 4 << 20,
                 mac: bytes = bytes.fromhex("246f28a1b2c3"), silent: bool = False,
                 boot_mode: str | None = None) -> None:
        from esptool.targets import CHIP_DEFS

        self.cls = CHIP_DEFS[chip]
        self.chip = chip
        self.flash = bytearray(b"\xff" * flash_size)
        self.regs: dict[int, int] = {}
        self.silent = silent  # never answer (a board not in download mode, or no cable)
        self.boot_mode = boot_mode  # e.g. "0x13": print a firmware boot log, never sync
        self.stub = False
        self.log: list[str] = []
        self.baud = 115200
        self.resets = 0
        base = self.cls.SPI_REG_BASE
        self.spi_cmd = base
        self.spi_usr2 = base + self.cls.SPI_USR2_OFFS
        self.spi_w0 = base + self.cls.SPI_W0_OFFS
        if self.cls.USES_MAGIC_VALUE:
            self.regs[0x40001000] = self.cls.MAGIC_VALUE
        if chip == "esp32":  # BASE_MAC in eFuse words 1 and 2 (with a CRC byte)
            self.regs[self.cls.EFUSE_RD_REG_BASE + 4] = struct.unpack(">I", mac[2:6])[0]
            self.regs[self.cls.EFUSE_RD_REG_BASE + 8] = struct.unpack(">H", mac[0:2])[0]
        self._begin = None
        self._dec = None

    # -- commands ------------------------------------------------------------------------
    def command(self, op: int, data: bytes) -> list[bytes]:
        name = {v: k for k, v in self.cls.ESP_CMDS.items()}.get(op, hex(op))
        self.log.append(name)
        ok = b"\x00\x00" if self.stub else b"\x00\x00\x00\x00"
        if op == 0x08:  # SYNC: the ROM answers eight times
            return [self._resp(op, 0x20120707, ok) for _ in range(8)]
        if op == 0x0A:  # READ_REG
            (addr,) = struct.unpack_from("<I", data)
            return [self._resp(op, self.regs.get(addr, 0), ok)]
        if op == 0x09:  # WRITE_REG
            addr, value = struct.unpack_from("<II", data)
            self.regs[addr] = value
            if addr == self.spi_cmd and value & (1 << 18):
                self._spi_command(self.regs.get(self.spi_usr2, 0) & 0xFF)
            return [self._resp(op, 0, ok)]
        if op == 0x14:  # GET_SECURITY_INFO
            if self.cls.USES_MAGIC_VALUE:  # the ESP32 ROM does not know it
                return [self._invalid()]
            info = struct.pack("<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0,
                               self.cls.IMAGE_CHIP_ID, 0)
            return [self._resp(op, 0, info + ok)]
        if op in (0x05, 0x07):  # MEM_BEGIN, MEM_DATA
            return [self._resp(op, 0, ok)]
        if op == 0x06:  # MEM_END: the stub starts and says hello
            entry = struct.unpack_from("<II", data)[1]
            out = [self._resp(op, 0, ok)]
            if entry:
                self.stub = True
                out.append(b"OHAI")
            return out
        if op in (0x02, 0x10):  # FLASH_BEGIN, FLASH_DEFL_BEGIN
            size, _blocks, _bs, offset = struct.unpack_from("<IIII", data)
            self._begin = [offset, 0]
            self._dec = zlib.decompressobj() if op == 0x10 else None
            return [self._resp(op, 0, ok)]
        if op in (0x03, 0x11):  # FLASH_DATA, FLASH_DEFL_DATA
            n = struct.unpack_from("<I", data)[0]
            block = data[16:16 + n]
            if self._dec is not None:
                block = self._dec.decompress(block)
            off = self._begin[0] + self._begin[1]
            self.flash[off:off + len(block)] = block
            self._begin[1] += len(block)
            return [self._resp(op, 0, ok)]
        if op in (0x04, 0x12):  # FLASH_END, FLASH_DEFL_END
            return [self._resp(op, 0, ok)]
        if op == 0x13:  # SPI_FLASH_MD5
            addr, size = struct.unpack_from("<II", data)
            md5 = hashlib.md5(bytes(self.flash[addr:addr + size]))
            body = md5.digest() if self.stub else md5.hexdigest().encode()
            return [self._resp(op, 0, body + ok)]
        if op == 0xD0:  # ERASE_FLASH
            self.flash[:] = b"\xff" * len(self.flash)
            return [self._resp(op, 0, ok)]
        if op == 0xD1:  # ERASE_REGION
            offset, size = struct.unpack_from("<II", data)
            self.flash[offset:offset + size] = b"\xff" * size
            return [self._resp(op, 0, ok)]
        if op == 0x0F:  # CHANGE_BAUDRATE
            self.baud = struct.unpack_from("<I", data)[0]
            return [self._resp(op, 0, ok)]
        if op in (0x0B, 0x0D):  # SPI_SET_PARAMS, SPI_ATTACH
            return [self._resp(op, 0, ok)]
        return [self._invalid()]

    def _invalid(self) -> bytes:
        # what a ROM answers to a command it does not know (status 1, reason 5)
        return self._resp(0, 0, b"\x01\x05\x00\x00")

    def _spi_command(self, cmd: int) -> None:
        size_id = {1 << 20: 0x14, 2 << 20: 0x15, 4 << 20: 0x16, 8 << 20: 0x17,
                   16 << 20: 0x18}.get(len(self.flash), 0x16)
        result = {0x9F: 0xEF | 0x40 << 8 | size_id << 16, 0x5A: 0x50444653}.get(cmd, 0)
        self.regs[self.spi_w0] = result
        self.regs[self.spi_cmd] = 0

    @staticmethod
    def _resp(op: int, value: int, data: bytes) -> bytes:
        return struct.pack("<BBHI", 1, op, len(data), value) + data


def make(name: str, **kw) -> FakeChip:
    """A fresh emulated chip reachable as ``fakeesp://NAME``."""
    CHIPS[name] = FakeChip(**kw)
    return CHIPS[name]


def _slip(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class Serial(serial.SerialBase):
    """pyserial's port API over a :class:`FakeChip` (selected by the URL's host part)."""

    def open(self) -> None:
        name = self.portstr.split("://", 1)[1].strip("/")
        if name not in CHIPS:
            raise serial.SerialException(f"could not open port {self.portstr}: no such chip")
        self.chip = CHIPS[name]
        self._rx = bytearray()  # towards the host
        self._frame: bytearray | None = None
        self._esc = False
        self._lock = threading.Lock()
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def _reconfigure_port(self, force_update: bool = False) -> None:
        pass

    def _update_rts_state(self) -> None:
        # RTS drives EN (active low): its falling edge releases the chip from reset
        was, self._rts_was = getattr(self, "_rts_was", False), self._rts_state
        if not (self.is_open and was and not self._rts_state):
            return
        self.chip.resets += 1
        if self.chip.boot_mode:  # what a board that boots its firmware prints after a reset
            with self._lock:
                self._rx += (f"rst:0x1 (POWERON_RESET),boot:{self.chip.boot_mode} "
                             "(SPI_FAST_FLASH_BOOT)\r\n").encode()

    def _update_dtr_state(self) -> None:
        pass

    def fileno(self) -> int:  # no ioctl for DTR/RTS here: esptool falls back
        raise OSError(errno.ENOTTY, "not a tty")

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    def reset_input_buffer(self) -> None:
        with self._lock:
            self._rx.clear()

    def reset_output_buffer(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def read(self, size: int = 1) -> bytes:
        deadline = time.monotonic() + (self.timeout or 0)
        while True:
            with self._lock:
                if self._rx:
                    out = bytes(self._rx[:size])
                    del self._rx[:size]
                    return out
            if time.monotonic() >= deadline:
                return b""
            time.sleep(0.001)

    def write(self, data: bytes) -> int:
        for b in data:
            if b == 0xC0:
                if self._frame:
                    self._packet(bytes(self._frame))
                    self._frame = None
                else:
                    self._frame = bytearray()
                continue
            if self._frame is None:
                continue
            if self._esc:
                self._frame.append({0xDC: 0xC0, 0xDD: 0xDB}[b])
                self._esc = False
            elif b == 0xDB:
                self._esc = True
            else:
                self._frame.append(b)
        return len(data)

    def _packet(self, pkt: bytes) -> None:
        if len(pkt) < 8 or pkt[0] != 0 or self.chip.silent or self.chip.boot_mode:
            return
        op, size = pkt[1], struct.unpack_from("<H", pkt, 2)[0]
        for resp in self.chip.command(op, pkt[8:8 + size]):
            with self._lock:
                self._rx += _slip(resp)
