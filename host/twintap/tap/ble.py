"""Tap over BLE from the host: ``ble://NAME-or-ADDRESS`` through bleak on real hardware and
``vble://SOCKET`` through an emulated central on a virtual board's radio socket.

Both carry APDUs on one of the Tap's GATT services (spec tap-protocol.md section 8):

- ``fast``, the large-frame service (7c7b16c2-.../dc5c5491-...): one write is the request
  APDU, one notification its response; both must fit in the ATT MTU less 3 bytes;
- ``legacy``, the LwM2M service (6c7b16c2-.../cc5c5491-...): frames of at most 254 bytes,
  chunked both ways with the board's own ``twintap.proto.blechunk``.

``?service=legacy|fast`` chooses; by default the large-frame service when the Tap has it, as
``@iotize/tap`` does. On ``vble://`` links ``?mtu=N`` is the MTU the central exchanges after
connecting (default 517, as BlueZ asks; ``mtu=23`` exchanges none, and then the default
service is the legacy one: 20-byte frames are all the large-frame service could carry); the
board answers with the smaller of that and its own (263 by default).

:class:`VbleCentral` speaks the radio socket protocol of ``twintap.proto.vble`` (connect,
MTU exchange, discovery, writes, notifications) with the ATT rules a real central's stack
applies; tests use it directly to send raw packets.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import os
import re
import select
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from twintap.proto import DecodeError, blechunk, vble
from twintap.tap.errors import TapError, TapTimeout
from twintap.tap.links import Link

LEGACY_SERVICE = "6c7b16c2-2a5b-8c9f-cf42-d31425470e7b"
LEGACY_CHAR = "cc5c5491-b3be-9287-cb42-f7a6a29a50d5"
FAST_SERVICE = "7c7b16c2-2a5b-8c9f-cf42-d31425470e7b"
FAST_CHAR = "dc5c5491-b3be-9287-cb42-f7a6a29a50d5"
LEGACY, FAST = "legacy", "fast"
SERVICES = {FAST: (FAST_SERVICE, FAST_CHAR), LEGACY: (LEGACY_SERVICE, LEGACY_CHAR)}
TAP_SERVICES = {LEGACY_SERVICE: LEGACY, FAST_SERVICE: FAST}

CONNECT_TIMEOUT = 8.0  # @iotize/tap's BLE connect timeout
VBLE_MTU = 517
WRITE_TIMEOUT = 4.0
_AD_NAMES = (0x09, 0x08)  # complete, shortened local name
_AD_UUID128 = (0x06, 0x07)
_ADDRESS = re.compile(  # a Bluetooth address, or the UUID macOS gives a device
    r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$|^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$", re.IGNORECASE
)


def _service_of(query: dict, url: str) -> str | None:
    service = query.get("service", [None])[0]
    if service not in (None, LEGACY, FAST):
        raise TapError(f"bad link {url!r}: service is legacy or fast")
    return service


def _int_of(query: dict, name: str, default: int, url: str) -> int:
    try:
        return int(query.get(name, [default])[0])
    except ValueError:
        raise TapError(f"bad link {url!r}: {name} must be a number") from None


def open_ble_link(url: str, timeout: float = 2.0) -> Link:
    """``vble://SOCKET[?service=&mtu=]`` or ``ble://NAME-or-ADDRESS[?service=]``."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    service = _service_of(query, url)
    where = parts.netloc + parts.path
    if not where:
        raise TapError(f"bad link {url!r}: expected {parts.scheme}://"
                       + ("SOCKET" if parts.scheme == "vble" else "NAME-or-ADDRESS"))
    if parts.scheme == "vble":
        mtu = _int_of(query, "mtu", VBLE_MTU, url)
        return VbleLink(where, service, mtu, url=url)
    return BleakLink(where, service, url=url)


# -- the Tap's characteristic as a link --------------------------------------------------------
class GattLink(Link):
    """APDUs on a Tap characteristic: whole frames (large-frame service) or legacy chunks.

    Subclasses write the characteristic and deliver its notifications."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.service = LEGACY
        self.mtu = vble.MIN_MTU

    def _write_char(self, data: bytes) -> None:
        raise NotImplementedError

    def _next_note(self, timeout: float) -> bytes | None:
        """The next notification of the characteristic, None after ``timeout``."""
        raise NotImplementedError

    def transact(self, apdu: bytes, timeout: float) -> bytes:
        with self.lock:
            self._discard()
            deadline = time.monotonic() + timeout
            if self.service == FAST:
                self._write_char(bytes(apdu))
                note = self._next_note(max(0.0, deadline - time.monotonic()))
                if note is None:
                    raise TapTimeout(f"no response from {self.url} within {timeout:g} s")
                return note
            try:
                packets = blechunk.split(apdu)
            except ValueError as e:
                raise TapError(f"{self.url}: {e} (the legacy service's limit)") from None
            for p in packets:
                self._write_char(p)
            asm = blechunk.Assembler()
            while True:
                note = self._next_note(max(0.0, deadline - time.monotonic()))
                if note is None:
                    got = " (part of it came)" if asm.busy() else ""
                    raise TapTimeout(f"no response from {self.url} within {timeout:g} s{got}")
                try:
                    n = asm.feed(note)
                except DecodeError as e:
                    raise TapError(f"bad response from {self.url}: {e}") from None
                if n is not None:
                    return bytes(asm.buf[:n])


# -- the emulated central ----------------------------------------------------------------------
class VbleCentral:
    """An emulated BLE central on a virtual board's radio socket (``twintap vboard run --ble``).

    ``connect()`` retries while the board is not advertising (it serves one central at a
    time), up to ``timeout``; then ``exchange_mtu``, ``discover``, ``write`` and
    ``notification``. A write longer than MTU-3 raises TapError before anything is sent, as a
    central's stack refuses it.
    """

    def __init__(self, path: str | Path, address: bytes | None = None) -> None:
        self.path = str(path)
        self.address = address or os.urandom(6)
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        self.notes: collections.deque[tuple[int, bytes]] = collections.deque()
        self.conn: int | None = None
        self.board_address = b""
        self.mtu = vble.MIN_MTU
        self.chars: dict[tuple[str, str], tuple[int, int]] = {}
        self.lost = False

    # raw records
    def _open(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(self.path)
        except OSError as e:
            self.sock.close()
            self.sock = None
            raise TapError(f"cannot reach the virtual radio {self.path}: "
                           f"{e.strerror or e}") from None

    def send(self, op: int, body: bytes = b"") -> None:
        if self.sock is None:
            raise TapError(f"vble://{self.path}: not connected")
        try:
            self.sock.sendall(vble.record(op, body))
        except OSError as e:
            self.lost = True
            raise TapError(f"vble://{self.path}: link lost ({e.strerror or e})") from None

    def _recv(self, timeout: float) -> tuple[int, bytes] | None:
        deadline = time.monotonic() + timeout
        while True:
            rec = vble.parse(self.buf)
            if rec is not None:
                op, body, used = rec
                del self.buf[:used]
                return op, body
            left = deadline - time.monotonic()
            if self.sock is None or self.lost:
                raise TapError(f"vble://{self.path}: the board ended the connection")
            ready, _, _ = select.select([self.sock], [], [], max(0.0, left))
            if not ready:
                return None
            try:
                data = self.sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                self.lost = True
                raise TapError(f"vble://{self.path}: the board ended the connection")
            self.buf += data

    def _reply(self, timeout: float, *ops: int) -> tuple[int, bytes]:
        """The next record among ``ops``; notifications meanwhile are queued."""
        deadline = time.monotonic() + timeout
        while True:
            rec = self._recv(max(0.0, deadline - time.monotonic()))
            if rec is None:
                raise TapTimeout(f"vble://{self.path}: no answer from the radio")
            op, body = rec
            if op == vble.NOTIFY:
                self.notes.append((vble.u16(body), body[2:]))
            elif op == vble.DISCONNECTED:
                self.lost = True
                raise TapError(f"vble://{self.path}: disconnected by the board")
            elif op in ops:
                return op, body
            elif op == vble.ERROR:
                raise TapError(f"vble://{self.path}: ATT error 0x{body[0]:02X} "
                               f"({body[1:].decode(errors='replace')})", code=None)

    # GAP / GATT
    def scan(self, timeout: float = 2.0) -> tuple[bytes, bytes] | None:
        """(advertising data, scan response) of the board, or None when it does not advertise."""
        self._open()
        try:
            self.send(vble.SCAN)
            _, body = self._reply(timeout, vble.ADV)
        finally:
            self.close()
        if not body:
            return None
        return body[1:1 + body[0]], body[1 + body[0]:]

    def connect(self, timeout: float = CONNECT_TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while True:
            self._open()
            self.buf.clear()
            self.lost = False
            self.send(vble.CONNECT, b"\x01" + self.address)
            try:
                op, body = self._reply(max(0.1, deadline - time.monotonic()),
                                       vble.CONNECTED, vble.REFUSED)
            except TapError:
                self.close()
                raise
            if op == vble.CONNECTED:
                self.conn = vble.u16(body)
                self.board_address = body[2:8]
                self.mtu = vble.MIN_MTU
                return self.conn
            self.close()
            if time.monotonic() >= deadline:
                raise TapError(f"vble://{self.path}: the board does not accept a connection "
                               f"({body.decode(errors='replace')})")
            time.sleep(0.02)  # it advertises again once its central is gone

    def exchange_mtu(self, mtu: int, timeout: float = 2.0) -> int:
        self.send(vble.MTU, struct.pack(">H", mtu))
        _, body = self._reply(timeout, vble.MTU_EXCHANGED)
        self.mtu = vble.u16(body)
        return self.mtu

    def discover(self, timeout: float = 2.0) -> dict[tuple[str, str], tuple[int, int]]:
        """{(service UUID, characteristic UUID): (value handle, flags)}"""
        self.send(vble.DISCOVER)
        _, body = self._reply(timeout, vble.SERVICES)
        self.chars = {}
        for i in range(0, len(body) - 35, 36):
            e = body[i:i + 36]
            key = (vble.uuid_text(e[:16]), vble.uuid_text(e[16:32]))
            self.chars[key] = (vble.u16(e, 32), vble.u16(e, 34))
        return self.chars

    def handle(self, service: str) -> int:
        """Value handle of the Tap characteristic of ``service`` ("legacy" or "fast")."""
        found = self.chars.get(SERVICES[service])
        if found is None:
            raise TapError(f"vble://{self.path}: no {service} Tap service")
        return found[0]

    def write(self, handle: int, data: bytes, response: bool = True,
              timeout: float = WRITE_TIMEOUT) -> None:
        if len(data) > self.mtu - 3:
            raise TapError(f"vble://{self.path}: a write of {len(data)} bytes does not fit "
                           f"the MTU ({self.mtu}: at most {self.mtu - 3})")
        self.send(vble.WRITE, struct.pack(">BH", 1 if response else 0, handle) + bytes(data))
        if response:
            self._reply(timeout, vble.WRITTEN)

    def notification(self, timeout: float, handle: int | None = None) -> bytes | None:
        """The next notification (of ``handle``), or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            while self.notes:
                h, data = self.notes.popleft()
                if handle is None or h == handle:
                    return data
            rec = self._recv(max(0.0, deadline - time.monotonic()))
            if rec is None:
                return None
            op, body = rec
            if op == vble.NOTIFY:
                self.notes.append((vble.u16(body), body[2:]))
            elif op == vble.DISCONNECTED:
                self.lost = True
                raise TapError(f"vble://{self.path}: disconnected by the board")

    def discard(self) -> None:
        """Drop notifications that came before (a late answer)."""
        while self.sock is not None and not self.lost:
            try:
                rec = self._recv(0)
            except TapError:
                break
            if rec is None:
                break
            if rec[0] == vble.DISCONNECTED:
                self.lost = True
        self.notes.clear()

    def disconnect(self) -> None:
        if self.sock is not None and not self.lost:
            try:
                self.sock.sendall(vble.record(vble.DISCONNECT))
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.conn = None

    def __enter__(self) -> VbleCentral:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()


class VbleLink(GattLink):
    """``vble://SOCKET``: a virtual board through :class:`VbleCentral`."""

    def __init__(self, path: str, service: str | None = None, mtu: int = VBLE_MTU,
                 url: str | None = None, timeout: float = CONNECT_TIMEOUT) -> None:
        super().__init__(url or f"vble://{path}")
        self.central = VbleCentral(path)
        self.central.connect(timeout)
        try:
            if mtu != vble.MIN_MTU:
                self.central.exchange_mtu(mtu)
            self.mtu = self.central.mtu
            chars = self.central.discover()
            fast = SERVICES[FAST] in chars and self.mtu > vble.MIN_MTU
            self.service = service or (FAST if fast else LEGACY)
            self.char = self.central.handle(self.service)
        except BaseException:
            self.central.disconnect()
            raise

    def _write_char(self, data: bytes) -> None:
        self.central.write(self.char, data)

    def _next_note(self, timeout: float) -> bytes | None:
        return self.central.notification(timeout, self.char)

    def _discard(self) -> None:
        self.central.discard()

    def close(self) -> None:
        self.central.disconnect()


def _ad_info(adv: bytes, resp: bytes) -> tuple[str | None, list[str]]:
    name = None
    services = []
    for t, v in vble.ad_fields(adv) + vble.ad_fields(resp):
        if t in _AD_NAMES and (name is None or t == 0x09):
            name = v.decode(errors="replace")
        elif t in _AD_UUID128:
            for i in range(0, len(v) - 15, 16):
                u = vble.uuid_text(v[i:i + 16][::-1])
                if u in TAP_SERVICES and TAP_SERVICES[u] not in services:
                    services.append(TAP_SERVICES[u])
    return name, services


def scan_vble(path: str | Path, timeout: float = 2.0) -> list[dict]:
    """The virtual board on ``path`` as a scan result (empty while a central is connected)."""
    found = VbleCentral(path).scan(timeout)
    if found is None:
        return []
    name, services = _ad_info(*found)
    return [{"name": name, "address": f"vble://{path}", "rssi": None, "services": services,
             "link": f"vble://{path}"}]


# -- real hardware (bleak) ---------------------------------------------------------------------
def _bleak():
    try:
        import bleak
        from bleak.exc import BleakError
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise TapError(f"BLE needs bleak: {e}") from None
    return bleak, BleakError


class _Loop:
    """An asyncio loop in a daemon thread: bleak's API is async, the Tap client's is not."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ble", daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float):
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TapTimeout(f"BLE operation did not finish within {timeout:g} s") from None

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(2)
        if not self.thread.is_alive():
            self.loop.close()


def _errors(BleakError) -> tuple:  # noqa: N803
    return (BleakError, OSError, asyncio.TimeoutError, EOFError)


def _why(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, (FileNotFoundError, ConnectionRefusedError)) or "dbus" in text.lower():
        text += " (no Bluetooth adapter, or no BlueZ/D-Bus system bus, on this machine?)"
    return text


def scan_ble(timeout: float = 5.0) -> list[dict]:
    """Tap boards in range (bleak scan filtered by the Tap service UUIDs)."""
    bleak, BleakError = _bleak()  # noqa: N806

    async def go():
        return await bleak.BleakScanner.discover(
            timeout, return_adv=True, service_uuids=[LEGACY_SERVICE, FAST_SERVICE])

    loop = _Loop()
    try:
        found = loop.run(go(), timeout + 10)
    except _errors(BleakError) as e:
        raise TapError(f"BLE scan failed: {_why(e)}") from None
    finally:
        loop.close()
    out = []
    for dev, adv in found.values():
        services = [TAP_SERVICES[u] for u in (s.lower() for s in adv.service_uuids)
                    if u in TAP_SERVICES]
        if not services:
            continue
        out.append({"name": adv.local_name or dev.name, "address": dev.address,
                    "rssi": adv.rssi, "services": services, "link": f"ble://{dev.address}"})
    out.sort(key=lambda d: -(d["rssi"] if d["rssi"] is not None else -999))
    return out


class BleakLink(GattLink):
    """``ble://NAME-or-ADDRESS``: a board in range, through bleak (BlueZ, CoreBluetooth, WinRT).

    The board is found by its address (or macOS UUID) or by its advertised name, then the
    large-frame characteristic is used when present (``service`` forces one), with
    notifications on; writes are write requests, as @iotize/tap makes them.
    """

    def __init__(self, target: str, service: str | None = None, url: str | None = None,
                 timeout: float = CONNECT_TIMEOUT) -> None:
        super().__init__(url or f"ble://{target}")
        self._bleak, self._BleakError = _bleak()
        self._notes: collections.deque[bytes | None] = collections.deque()
        self._cv = threading.Condition()
        self.client = None
        self._loop = _Loop()
        try:
            self._loop.run(self._connect(target, service, timeout), timeout * 2 + 5)
        except _errors(self._BleakError) as e:
            self.close()
            raise TapError(f"cannot connect to {self.url}: {_why(e)}") from None
        except BaseException:
            self.close()
            raise

    async def _connect(self, target: str, service: str | None, timeout: float) -> None:
        scanner = self._bleak.BleakScanner
        if _ADDRESS.match(target):
            device = await scanner.find_device_by_address(target, timeout=timeout)
        else:
            device = await scanner.find_device_by_filter(
                lambda d, ad: target in (ad.local_name, d.name), timeout=timeout)
        if device is None:
            raise TapError(f"{self.url}: no BLE device {target!r} seen within {timeout:g} s")
        self.client = self._bleak.BleakClient(device, disconnected_callback=self._gone,
                                              timeout=timeout)
        await self.client.connect()
        chars = {s: self.client.services.get_characteristic(c)
                 for s, (_, c) in SERVICES.items()}
        chosen = service or (FAST if chars[FAST] is not None else LEGACY)
        if chars[chosen] is None:
            raise TapError(f"{self.url}: no {chosen} Tap service on {target}")
        self.service = chosen
        self.char = chars[chosen]
        self.mtu = self.client.mtu_size
        await self.client.start_notify(self.char, self._on_note)

    def _on_note(self, _char, data: bytearray) -> None:
        with self._cv:
            self._notes.append(bytes(data))
            self._cv.notify()

    def _gone(self, _client) -> None:
        with self._cv:
            self._notes.append(None)
            self._cv.notify()

    def _write_char(self, data: bytes) -> None:
        try:
            self._loop.run(self.client.write_gatt_char(self.char, data, response=True),
                           WRITE_TIMEOUT)
        except _errors(self._BleakError) as e:
            raise TapError(f"link {self.url} failed: {_why(e)}") from None

    def _next_note(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        with self._cv:
            while not self._notes:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(left)
            note = self._notes.popleft()
        if note is None:
            raise TapError(f"link {self.url} lost: the board disconnected")
        return note

    def _discard(self) -> None:
        with self._cv:
            lost = None in self._notes
            self._notes.clear()
        if lost:
            raise TapError(f"link {self.url} lost: the board disconnected")

    def close(self) -> None:
        if self.client is not None:
            try:
                self._loop.run(self.client.disconnect(), 5)
            except (TapError, *_errors(self._BleakError)):
                pass
            self.client = None
        self._loop.close()


def adapter_present() -> bool:
    """Whether this machine has a Bluetooth adapter bleak can use (hw tests skip otherwise)."""
    if sys.platform.startswith("linux"):
        return os.path.isdir("/sys/class/bluetooth") and bool(os.listdir("/sys/class/bluetooth"))
    try:
        scan_ble(1.0)
    except TapError:
        return False
    return True
