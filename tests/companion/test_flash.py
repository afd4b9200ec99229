"""``twintap flash`` through esptool's own API, with the serial port replaced at the pyserial
level: ``fakeesp://NAME`` is an emulated ESP32 ROM bootloader (tests/companion/urlhandler),
so esptool's detect_chip, stub upload, attach_flash, write_flash (with its MD5 check),
read_mac and reset run unchanged. Also the port auto-detection shared by every command."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from esptool.bin_image import ELFSection, ESP32FirmwareImage, ESP32S3FirmwareImage

from tests.companion.urlhandler import protocol_fakeesp as fake
from twintap import TwintapError, cli, flash, ports


def image(tmp_path: Path, cls=ESP32FirmwareImage, extra: int = 60000) -> Path:
    """A valid ESP image for the chip of ``cls`` followed by compressible filler (as a
    merged MicroPython image carries partitions and the app after the bootloader)."""
    img = cls()
    img.entrypoint = 0x40080000
    img.segments = [ELFSection(b".dram0.data", 0x3FFB0000, bytes(range(256)) * 4, 0)]
    path = tmp_path / f"fw-{cls.__name__}.bin"
    img.save(str(path))
    with open(path, "ab") as f:
        f.write((b"MicroPython twintap " * 64 + os.urandom(64)) * (extra // 1344 + 1))
    return path


def run(*argv: object) -> int:
    return cli.main([str(a) for a in argv])


def test_flash_writes_at_the_board_offset_verifies_and_prints_the_mac(tmp_path, capsys):
    chip = fake.make("ok", chip="esp32")
    chip.flash[0x300000:0x300004] = b"old!"
    fw = image(tmp_path)
    data = fw.read_bytes()
    assert run("flash", "--port", "fakeesp://ok", "--board", "esp32-devkitc", fw) == 0
    out = capsys.readouterr().out
    assert bytes(chip.flash[0x1000:0x1000 + len(data)]) == data  # the board file's offset
    assert chip.flash[0x300000:0x300004] == b"old!"  # no --erase: the rest is left alone
    assert f"Flashed {len(data)} bytes at 0x1000 on the ESP32 in " in out
    assert "verified. MAC 24:6f:28:a1:b2:c3" in out
    assert "Chip: ESP32-D0WDQ6" in out and "Writing 100%" in out  # the bar (not a tty here)
    assert "MEM_END" in chip.log and "FLASH_DEFL_DATA" in chip.log  # stub, compressed
    assert "SPI_FLASH_MD5" in chip.log and chip.baud == 460800
    assert chip.resets >= 1  # hard reset at the end
    # --erase wipes what was there, --baud is esptool's
    chip2 = fake.make("ok2", chip="esp32")
    chip2.flash[0x300000:0x300004] = b"old!"
    assert run("flash", "-p", "fakeesp://ok2", "-b", "esp32-devkitc", "--erase",
               "--baud", "921600", fw) == 0
    assert chip2.flash[0x300000:0x300004] == b"\xff" * 4 and chip2.baud == 921600
    assert "ERASE_FLASH" in chip2.log


def test_offset_zero_for_s3_and_the_rom_only_path(tmp_path, capsys):
    chip = fake.make("s3", chip="esp32s3")
    fw = image(tmp_path, ESP32S3FirmwareImage, 8000)
    assert run("flash", "--port", "fakeesp://s3", "--board", "esp32-s3-devkitc-1",
               "--no-stub", fw) == 0
    data = fw.read_bytes()
    assert bytes(chip.flash[0:len(data)]) == data
    assert "MEM_END" not in chip.log and "FLASH_DATA" in chip.log  # ROM, no compression
    assert "on the ESP32-S3" in capsys.readouterr().out


def test_the_chip_must_be_the_board_files(tmp_path, capsys):
    chip = fake.make("wrong", chip="esp32s3")
    assert run("flash", "--port", "fakeesp://wrong", "--board", "esp32-devkitc",
               image(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("twintap: the board on fakeesp://wrong is an ESP32-S3, but the "
                          "board file is for esp32: pick the right --board")
    assert not any(x.startswith("FLASH") or x == "MEM_END" for x in chip.log)


def test_images_are_checked_before_the_board_is_touched(tmp_path, capsys):
    chip = fake.make("untouched", chip="esp32")
    s3 = image(tmp_path, ESP32S3FirmwareImage, 100)
    assert run("flash", "--port", "fakeesp://untouched", "--board", "esp32-devkitc", s3) == 2
    assert "is built for esp32s3, but the board file says esp32" in capsys.readouterr().err
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"PK\x03\x04 a zip file")
    assert run("flash", "--port", "fakeesp://untouched", "--board", "esp32-devkitc", junk) == 2
    assert "is not an ESP32 firmware image" in capsys.readouterr().err
    assert run("flash", "--board", "unix", junk) == 2
    assert "is a virtual board: there is nothing to flash" in capsys.readouterr().err
    assert chip.log == []


@pytest.mark.parametrize("kind, expect", [
    ("boot_mode", "the chip booted its firmware instead of the download mode (boot mode "
                  "0x13): hold BOOT (IO0), press and release RESET (EN)"),
    ("silent", "no answer from the chip on fakeesp://bad: use a data cable"),
])
def test_connection_failures_say_what_to_do(tmp_path, capsys, kind, expect):
    fake.make("bad", chip="esp32", **({"boot_mode": "0x13"} if kind == "boot_mode"
                                      else {"silent": True}))
    assert run("flash", "--port", "fakeesp://bad", "--board", "esp32-devkitc",
               image(tmp_path, extra=0)) == 2
    err = capsys.readouterr().err
    assert err.startswith("twintap: " + expect), err
    assert "Traceback" not in err


def test_progress_reaches_the_bar():
    seen = []
    from twintap.esplog import QuietLogger, esptool_logger

    with esptool_logger(QuietLogger(lambda d, t, label: seen.append((d, t, label)))) as log:
        from esp_pylib.logger import log as esp_log

        esp_log.print("Writing at 0x1000...")
        with esp_log.progress(total=1000, unit="B") as task:
            for _ in range(4):
                task.update(250)
    assert seen[-1] == (1000, 1000, "Writing") and len(seen) == 4
    assert log.lines == ["Writing at 0x1000..."]


def test_port_autodetection():
    cp = ports.PortInfo("/dev/ttyUSB0", 0x10C4, 0xEA60, "CP2102")
    s3 = ports.PortInfo("/dev/ttyACM0", 0x303A, 0x1001, "USB JTAG/serial debug unit")
    other = ports.PortInfo("/dev/ttyS0", None, None, "n/a")
    mouse = ports.PortInfo("/dev/ttyACM1", 0x046D, 0xC52B, "receiver")
    assert [p.bridge for p in (cp, s3, other, mouse)] == [
        "Silicon Labs CP210x", "Espressif native USB", None, None]
    assert ports.resolve(None, [cp, other, mouse]) == "/dev/ttyUSB0"
    with pytest.raises(TwintapError, match=r"several boards found: /dev/ttyACM0 \(303A:1001 "
                                           r"Espressif native USB\); /dev/ttyUSB0 .*--port"):
        ports.resolve(None, [s3, cp])
    with pytest.raises(TwintapError, match="no ESP32 board found on USB .* pass --port"):
        ports.resolve(None, [other, mouse])
    for vid, pid in ((0x1A86, 0x7523), (0x1A86, 0x55D4), (0x0403, 0x6001), (0x0403, 0x6015)):
        assert ports.bridge_name(vid, pid)
    assert ports.resolve("socket://127.0.0.1:1") == "socket://127.0.0.1:1"
    msg = str(ports.explain("/dev/ttyUSB0", OSError(errno.EACCES, "Permission denied")))
    assert "dialout" in msg
    msg = str(ports.explain("/dev/ttyUSB0", OSError(errno.EBUSY, "Device or resource busy")))
    assert "is busy" in msg
    master, slave = os.openpty()
    try:
        assert ports.is_pty(os.ttyname(slave)) and not ports.is_real_serial(os.ttyname(slave))
    finally:
        os.close(master)
        os.close(slave)
    assert flash.chip_key("ESP32-S3") == "esp32s3"
