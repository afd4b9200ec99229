"""Byte links to a Tap: TCP (raw APDUs) and serial ports (pyserial, any ``serial_for_url``).

Both carry one request APDU per write. A response APDU has no length field, so a response
is what arrives until the bytes end with ``90 00`` and the line then stays idle for a short
window (``idle``: 10 ms on TCP, 20 ms on serial ports): a chunk that happens to end with
``90 00`` inside the data is followed by more bytes within that window and reading goes on.
One request is in flight per link (a lock); input left over from an earlier request (a late
answer) is discarded first.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

from twintap.proto import frame
from twintap.tap.errors import TapError, TapTimeout

DEFAULT_BAUD = 115200
IDLE = 0.015  # seconds of silence after "90 00" that end a response
TCP_IDLE = 0.01  # the segments of one write arrive back to back
SERIAL_IDLE = 0.02  # USB-serial bridges deliver in bursts (an FTDI's latency timer is 16 ms)


class Link:
    """A byte link that exchanges whole APDUs. Subclasses implement the raw I/O."""

    def __init__(self, url: str, idle: float = IDLE) -> None:
        self.url = url
        self.idle = idle
        self.lock = threading.Lock()

    # -- raw I/O (subclasses) ---------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _read(self, timeout: float) -> bytes:
        """Bytes that arrive within ``timeout`` (b"" when none); TapError on a closed link."""
        raise NotImplementedError

    def _discard(self) -> None:
        """Drop whatever input is waiting."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- exchanges --------------------------------------------------------------------------
    def transact(self, apdu: bytes, timeout: float) -> bytes:
        """Write one request APDU and return the whole response APDU (raw bytes)."""
        with self.lock:
            self._discard()
            self._write(apdu)
            return self.read_response(timeout)

    def read_response(self, timeout: float) -> bytes:
        """Read one response: until it ends with 90 00 and the line is idle; TapTimeout."""
        deadline = time.monotonic() + timeout
        buf = bytearray()
        while True:
            if len(buf) >= 3 and buf.endswith(frame.SW_OK):
                more = self._read(self.idle)
                if not more:
                    return bytes(buf)
                buf += more
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                got = f" (got {len(buf)} bytes: {bytes(buf).hex(' ')})" if buf else ""
                raise TapTimeout(f"no response from {self.url} within {timeout:g} s{got}")
            buf += self._read(left)

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


class TcpLink(Link):
    """``tcp://host:port``: raw APDUs on a TCP socket (a Tap's Wi-Fi port, 2000)."""

    def __init__(
        self, host: str, port: int, timeout: float = 2.0, idle: float = TCP_IDLE
    ) -> None:
        super().__init__(f"tcp://{host}:{port}", idle)
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise TapError(f"cannot connect to {self.url}: {e.strerror or e}") from e
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(None)

    def _write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise TapError(f"link {self.url} failed: {e.strerror or e}") from e

    def _read(self, timeout: float) -> bytes:
        try:
            ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
            if not ready:
                return b""
            data = self.sock.recv(4096)
        except OSError as e:
            raise TapError(f"link {self.url} failed: {e.strerror or e}") from e
        if not data:
            raise TapError(f"link {self.url} closed by the Tap")
        return data

    def _discard(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.sock], [], [], 0)
                if not ready or not self.sock.recv(4096):
                    return
            except OSError:
                return

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class SerialLink(Link):
    """A serial port (device or pty path) or any pyserial URL (``socket://``, ``rfc2217://``).

    DTR and RTS stay inactive on device paths, so that opening the port does not reset an
    ESP32 through its auto-reset circuit.
    """

    def __init__(
        self, port: str, baud: int = DEFAULT_BAUD, url: str | None = None,
        idle: float = SERIAL_IDLE,
    ) -> None:
        import serial  # pyserial: imported here so that TCP-only users do not need it

        super().__init__(url or port, idle)
        try:
            self.port = serial.serial_for_url(port, baudrate=baud, do_not_open=True)
            self.port.timeout = idle  # reads poll at the idle window, see _read
            self.port.write_timeout = 2.0
            if "://" not in port:
                self.port.dtr = False
                self.port.rts = False
            self.port.open()
        except (OSError, ValueError, serial.SerialException) as e:
            raise TapError(f"cannot open {self.url}: {e}") from e
        self._serial_error = serial.SerialException

    def _write(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except (OSError, self._serial_error) as e:
            raise TapError(f"link {self.url} failed: {e}") from e

    def _read(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        try:
            while True:
                data = self.port.read(max(1, self.port.in_waiting))
                if data or time.monotonic() >= deadline:
                    return data
        except (OSError, self._serial_error) as e:
            raise TapError(f"link {self.url} failed: {e}") from e

    def _discard(self) -> None:
        try:
            self.port.reset_input_buffer()
        except (OSError, self._serial_error):
            pass

    def close(self) -> None:
        try:
            self.port.close()
        except (OSError, self._serial_error):
            pass


def open_link(url: str, timeout: float = 2.0) -> Link:
    """Open a link from a URL.

    ``tcp://host:port`` -> :class:`TcpLink`; ``serial:///dev/ttyUSB0?baud=115200`` or a bare
    device/pty path -> :class:`SerialLink`; any other URL goes to pyserial's
    ``serial_for_url`` (``socket://host:port``, ``rfc2217://host:port``, ``loop://``).
    ``ble://NAME-or-ADDRESS`` and ``vble://SOCKET`` -> :mod:`twintap.tap.ble`.
    """
    if "://" not in url:
        return SerialLink(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "tcp":
        try:
            host, port = parts.hostname, parts.port
        except ValueError as e:
            raise TapError(f"bad link {url!r}: {e}") from e
        if not host or port is None:
            raise TapError(f"bad link {url!r}: expected tcp://HOST:PORT")
        return TcpLink(host, port, timeout=timeout)
    if scheme in ("ble", "vble"):
        from twintap.tap.ble import open_ble_link

        return open_ble_link(url, timeout=timeout)
    if scheme == "serial":
        path = parts.netloc + parts.path
        if not path:
            raise TapError(f"bad link {url!r}: expected serial:///dev/ttyUSB0?baud=115200")
        query = parse_qs(parts.query)
        try:
            baud = int(query.get("baud", query.get("baudrate", [DEFAULT_BAUD]))[0])
        except ValueError as e:
            raise TapError(f"bad link {url!r}: baud must be a number") from e
        return SerialLink(path, baud, url=url)
    return SerialLink(url)
