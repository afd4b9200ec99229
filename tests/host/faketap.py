"""A tiny in-process Tap for host tests: a TCP server thread that decodes request APDUs with
twintap.proto and answers with bytes built by ``frame.encode_response``.

``FakeTap.handler(method, path, payload)`` returns one of: ``(status, data)``; ``bytes`` (a
raw reply, one write); a list of bytes (chunks written ``chunk_delay`` apart); ``None`` (no
reply). The default handler serves a small twin (device, interface, variables, bundles,
multi-request) from ``FakeTap.vars``; every request is recorded in ``requests``.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

from twintap.proto import frame, tapcodes, tlv, values


def var(t: int, raw: bytes, meta: str, count: int = 1, bundle: int = 1, rights: int = 3,
        unit: str | None = None) -> dict:
    return {"type": t, "count": count, "value": raw, "meta": meta, "bundle": bundle,
            "rights": rights, "unit": unit}


def default_vars() -> dict[int, dict]:
    return {
        1: var(0xC0 | values.FLOAT32, values.encode(values.FLOAT32, 21.5), "temperature:C",
               rights=1),
        3: var(0xC0 | values.UINT32, values.encode(values.UINT32, 7), "counter", rights=1),
        4: var(0x80 | values.BOOLEAN, b"\x00", "led", bundle=2),
        5: var(0x80 | values.INT16, values.encode(values.INT16, 21), "setpoint:C", bundle=2),
        6: var(0x80 | values.ASCII, b"bench", "label", count=16, bundle=2),
        7: var(0x80 | values.UINT8, b"\x01\x02\x03", "triple", count=3, bundle=2, unit="x"),
    }


class FakeTap:
    def __init__(self, serial: str = "TTFAKE000001") -> None:
        self.serial = serial
        self.vars = default_vars()
        self.app_name = b"fake app"
        self.config_version = values.encode_version("1.2.3")
        self.requests: list[tuple[str, str, bytes]] = []
        self.handler = self.serve_twin
        self.chunk_delay = 0.005
        self.fail: dict[tuple[str, str], int] = {}  # (METHOD, path) -> error status
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"tcp://127.0.0.1:{self.port}"
        self._conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    # -- server ---------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # chunks go out now
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _recv_exact(conn: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                head = self._recv_exact(conn, 5)
                apdu = head + self._recv_exact(conn, head[4])
                m, obj, inst, res, payload = frame.decode_request(apdu)
                name = frame.METHOD_NAMES[m]
                path = frame.format_path(obj, inst, res)
                self.requests.append((name, path, bytes(payload)))
                if (name, path) in self.fail:
                    reply = (self.fail[name, path], b"")
                else:
                    reply = self.handler(name, path, bytes(payload))
                if reply is None:
                    continue
                if isinstance(reply, tuple):
                    reply = frame.encode_response(*reply)
                if isinstance(reply, list):
                    for i, chunk in enumerate(reply):
                        if i:
                            time.sleep(self.chunk_delay)
                        conn.sendall(chunk)
                else:
                    conn.sendall(reply)
        except (EOFError, OSError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- the twin -------------------------------------------------------------------------------
    def serve_twin(self, method: str, path: str, payload: bytes):
        obj, inst, res = frame.parse_path(path)
        inst = None if inst == frame.NO_INSTANCE else inst
        ok = tapcodes.CONTENT if method == "GET" else tapcodes.CHANGED
        if obj == 3 and method == "GET":
            table = {0: b"fake", 1: b"fakeboard", 2: self.serial.encode(), 3: b"fw 9.9",
                     10: struct.pack(">I", 12345)}
            if res in table:
                return ok, table[res]
        if obj == 1024:
            if (method, res) == ("GET", 9):
                return ok, self.app_name
            if (method, res) == ("PUT", 9):
                self.app_name = payload
                return ok, b""
            if (method, res) == ("GET", 10):
                return ok, self.config_version
            if (method, res) == ("PUT", 10):
                self.config_version = payload
                return ok, b""
            if (method, res) == ("GET", 2) or (method, res) == ("GET", 7):
                return ok, b"\x00\x00"
            if (method, res) == ("GET", 88):
                return ok, struct.pack(">HH", 250, 252)
            if (method, res) == ("GET", 6):
                return ok, b"\x00\x18"
            if (method, res) == ("GET", 21):
                return ok, b"\x01\x60"
            if (method, res) == ("GET", 89):
                return ok, self._multi(payload)
        if obj == 1029:
            return self._variable(method, inst, res, payload, ok)
        if obj == 1028 and method == "GET" and res == 1 and inst is not None:
            items = [(vid, v["value"]) for vid, v in sorted(self.vars.items())
                     if v["bundle"] == inst]
            if items:
                return ok, tlv.encode_bundle(inst, items)
        if obj == 1028 and method == "GET" and res == 4 and inst in (1, 2):
            return ok, [b"sensors", b"controls"][inst - 1]
        if obj in (1025, 1028) and method in ("PUT", "POST"):
            return ok, b""
        return tapcodes.NOT_FOUND, b""

    def _variable(self, method, inst, res, payload, ok):
        if inst is None:
            if (method, res) == ("GET", 4):
                by_bundle: dict[int, list] = {}
                for vid, v in sorted(self.vars.items()):
                    if v["rights"] & 1:
                        by_bundle.setdefault(v["bundle"], []).append((vid, v["value"]))
                return ok, b"".join(tlv.encode_bundle(b, items)
                                    for b, items in sorted(by_bundle.items()))
            return tapcodes.NOT_FOUND, b""
        if res == 0xFFFF and method == "POST":
            self.vars[inst] = var(0xC0, b"\x00", "")
            return tapcodes.CREATED, b""
        v = self.vars.get(inst)
        if v is None:
            return tapcodes.NOT_FOUND, b""
        if method == "GET":
            table = {1: bytes((v["type"],)), 2: bytes((v["count"],)),
                     3: bytes((0x41, 0, v["rights"])), 4: v["value"],
                     6: struct.pack(">H", v["bundle"]), 8: v["meta"].encode()}
            if v["unit"] is not None:
                table[9] = v["unit"].encode()
            if res == 4 and not v["rights"] & 1:
                return tapcodes.UNAUTHORIZED, b""
            return (ok, table[res]) if res in table else (tapcodes.NOT_FOUND, b"")
        if (method, res) in (("POST", 5), ("PUT", 4)):
            if not v["rights"] & 2:
                return tapcodes.UNAUTHORIZED, b""
            v["value"] = payload
            return ok, b""
        keys = {1: "type", 2: "count", 6: "bundle", 8: "meta"}
        if method == "PUT" and res in keys:
            if res == 8:
                v["meta"] = payload.decode()
            elif res == 6:
                v["bundle"] = struct.unpack(">H", payload)[0]
            else:
                v[keys[res]] = payload[0]
            return ok, b""
        if method == "PUT" and res == 0:
            return ok, b""
        return tapcodes.METHOD_NOT_ALLOWED, b""

    def _multi(self, body: bytes) -> bytes:
        out = b""
        i = 0
        while i < len(body):
            (n,) = struct.unpack_from(">H", body, i)
            m, obj, inst, res, payload = frame.decode_frame(body[i + 2 : i + 2 + n])
            i += 2 + n + 1  # + expected status
            status, data = self.serve_twin(frame.METHOD_NAMES[m],
                                           frame.format_path(obj, inst, res), bytes(payload))
            out += struct.pack(">H", 1 + len(data)) + bytes((status,)) + data
        return out
