"""``twintap relay --listen tcp://HOST:PORT --to URL``: a TCP front for one Tap link.

What IoTize's relay library does (ComRelay): TCP clients speak raw APDUs, one request per
write; each request goes unchanged to the board link (serial port, pty or TCP, see
:func:`twintap.tap.open_link`) and the response goes back in one write. Several clients may
be connected; their requests are serialised onto the single board link. Requests are
delimited by ``5 + Lc`` when they start with CLA A2 (so coalesced writes still work); other
bytes, or a request cut short for ``IDLE`` seconds, go to the board as they came, and the
board answers them (BAD_REQUEST), as it would on its own link.
"""

from __future__ import annotations

import select
import signal
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from twintap import TwintapError, say
from twintap.proto import frame
from twintap.tap import Link, TapError, TapTimeout, open_link

IDLE = 0.5  # seconds: a partial request is forwarded as it is after this much silence


def parse_listen(url: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` (or ``HOST:PORT``) -> (host, port)."""
    parts = urlsplit(url if "://" in url else "tcp://" + url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise TwintapError(f"bad --listen {url!r}: {e}") from None
    if parts.scheme != "tcp" or port is None:
        raise TwintapError(f"bad --listen {url!r}: expected tcp://HOST:PORT")
    return host or "0.0.0.0", port


def request_length(buf: bytes | bytearray) -> int | None:
    """Bytes of ``buf`` that make the next message, or None while a request is incomplete."""
    if buf[0] != frame.CLA:
        return len(buf)  # not a Tap request: forward as it came, the board answers it
    if len(buf) < frame.APDU_HEADER_SIZE:
        return None
    n = frame.apdu_length(buf)
    return n if len(buf) >= n else None


class Relay:
    """Listens on ``host:port`` and forwards every client request to the link ``to``."""

    def __init__(
        self, host: str, port: int, to: str, timeout: float = 2.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.host, self.port, self.to = host, port, to
        self.timeout = timeout
        self.log = log or say
        self.link: Link | None = None
        self.sock: socket.socket | None = None
        self.stop_event = threading.Event()
        self._link_lock = threading.Lock()
        self._clients: dict[socket.socket, threading.Thread] = {}
        self._clients_lock = threading.Lock()

    @property
    def ready_line(self) -> str:
        return f"READY listen=tcp://{self.host}:{self.port} to={self.to}"

    def start(self) -> str:
        """Open the board link and the listening socket; returns the READY line."""
        self.link = open_link(self.to, timeout=self.timeout)
        try:
            self.sock = socket.create_server((self.host, self.port), reuse_port=False)
        except OSError as e:
            self.link.close()
            raise TwintapError(f"cannot listen on {self.host}:{self.port}: {e.strerror}") from e
        self.port = self.sock.getsockname()[1]
        return self.ready_line

    def serve(self) -> None:
        """Accept clients until :meth:`stop` (or a signal handler) sets ``stop_event``."""
        assert self.sock is not None
        while not self.stop_event.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.2)
            if not ready:
                continue
            try:
                conn, addr = self.sock.accept()
            except OSError:
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = f"{addr[0]}:{addr[1]}"
            t = threading.Thread(target=self._serve_client, args=(conn, peer), daemon=True)
            with self._clients_lock:
                self._clients[conn] = t
            t.start()
        self._shutdown()

    def stop(self) -> None:
        self.stop_event.set()

    def _shutdown(self) -> None:
        if self.sock:
            self.sock.close()
        with self._clients_lock:
            clients = list(self._clients.items())
        for conn, _ in clients:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _, t in clients:
            t.join(timeout=self.timeout + 1)
        if self.link:
            self.link.close()

    # -- one client -----------------------------------------------------------------------------
    def _serve_client(self, conn: socket.socket, peer: str) -> None:
        self.log(f"[I][relay] client {peer} connected")
        pending = bytearray()
        count = 0
        try:
            while not self.stop_event.is_set():
                ready, _, _ = select.select([conn], [], [], IDLE if pending else 0.2)
                if ready:
                    data = conn.recv(4096)
                    if not data:
                        break
                    pending += data
                elif pending:  # a request cut short: let the board judge it
                    self._forward(conn, peer, bytes(pending))
                    count += 1
                    pending.clear()
                while pending:
                    n = request_length(pending)
                    if n is None:
                        break
                    msg = bytes(pending[:n])
                    del pending[:n]
                    self._forward(conn, peer, msg)
                    count += 1
        except OSError:
            pass
        finally:
            with self._clients_lock:
                self._clients.pop(conn, None)
            conn.close()
            self.log(f"[I][relay] client {peer} disconnected ({count} requests)")

    def _forward(self, conn: socket.socket, peer: str, msg: bytes) -> None:
        with self._link_lock:
            try:
                if self.link is None:
                    self.link = open_link(self.to, timeout=self.timeout)
                resp = self.link.transact(msg, self.timeout)
            except TapTimeout as e:
                self.log(f"[W][relay] {peer}: {e}")
                return
            except TapError as e:
                self.log(f"[E][relay] {peer}: {e}; reopening {self.to} on the next request")
                if self.link:
                    self.link.close()
                self.link = None
                return
        conn.sendall(resp)


def run(args) -> int:
    """``twintap relay``: serve until SIGINT/SIGTERM, then exit 0."""
    host, port = parse_listen(args.listen)
    relay = Relay(host, port, args.to, timeout=args.timeout)

    def on_signal(signum, frame):  # noqa: ARG001
        relay.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    say(relay.start())
    relay.serve()
    say("[I][relay] stopped")
    return 0


def add_parser(sub) -> None:
    """Register ``twintap relay``."""
    p = sub.add_parser("relay", help="serve a board's Tap link to TCP clients")
    p.add_argument("--listen", required=True, help="tcp://HOST:PORT to accept clients on")
    p.add_argument("--to", required=True,
                   help="the board link: tcp://HOST:PORT, a serial/pty path, serial://...")
    p.add_argument("--timeout", type=float, default=2.0,
                   help="seconds to wait for the board's answer (default: 2)")
    p.set_defaults(func=run)
