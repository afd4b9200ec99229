"""The floors the board is measured against: plain MicroPython scripts, run with the same
``micropython`` executable as the virtual board, that answer the board's own response bytes
over the same links, and a bare umqtt.simple publish loop over the same TLS broker.

- ``tap_echo.py``: a blocking TCP server on a free port, or a loop on the board end of a
  pty bridge (the same :class:`~twintap.ptylink.PtyBridge` the virtual board's UART is),
  reading one request APDU (``5 + Lc`` bytes) and writing the response recorded for it.
- ``ble_echo.py``: the virtual board's emulated radio (``twintap.platform.vradio``) with only
  the large-frame Tap service, notifying the recorded response from the write IRQ itself.
- ``async_echo.py``: the TCP echo as an asyncio server, alone or while another task waits on
  a ThreadSafeFlag or a TLS stream (what the BLE and cloud links make the board's loop do).
- ``umqtt_loop.py``: umqtt.simple 1.3 (the device library of the virtual board) connecting
  over TLS with a device account and publishing one payload in a loop at QoS 0 or 1.

Each prints ``READY`` once it serves and is stopped by its process id.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from twintap.benchlib.procs import LineProcess
from twintap.paths import MPY_LIB
from twintap.ptylink import PtyBridge
from twintap.vboard import compile_firmware, free_port, micropython_path

TAP_ECHO = r"""
import sys, socket
TABLE = {}
for pair in sys.argv[3:]:
    req, resp = pair.split(':')
    TABLE[bytes.fromhex(req)] = bytes.fromhex(resp)
OTHER = b'\x80\x90\x00'

def answers(buf, out):
    while len(buf) >= 5 and len(buf) >= 5 + buf[4]:
        n = 5 + buf[4]
        out(TABLE.get(bytes(buf[:n]), OTHER))
        buf = buf[n:]
    return buf

if sys.argv[1] == 'tcp':
    port = int(sys.argv[2])
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(socket.getaddrinfo('127.0.0.1', port)[0][-1])
    s.listen(2)
    print('READY tcp=%d' % port)
    while True:
        c, _ = s.accept()
        buf = b''
        while True:
            d = c.recv(512)
            if not d:
                break
            buf = answers(buf + d, c.write)
        c.close()
else:
    f = open(sys.argv[2], 'r+b')
    print('READY uart=%s' % sys.argv[2])
    while True:
        head = f.read(5)
        body = f.read(head[4]) if head[4] else b''
        f.write(TABLE.get(head + body, OTHER))
"""

BLE_ECHO = r"""
import sys, asyncio
from twintap.platform.vradio import Radio, UUID
FAST_SERVICE = '7c7b16c2-2a5b-8c9f-cf42-d31425470e7b'
FAST_CHAR = 'dc5c5491-b3be-9287-cb42-f7a6a29a50d5'
TABLE = {}
for pair in sys.argv[2:]:
    req, resp = pair.split(':')
    TABLE[bytes.fromhex(req)] = bytes.fromhex(resp)
OTHER = b'\x80\x90\x00'
ADV = b'\x02\x01\x06\x05\x09echo'

async def main():
    r = Radio(sys.argv[1])
    r.active(True)
    r.config(gap_name='echo', mtu=263)
    ((h,),) = r.gatts_register_services(((UUID(FAST_SERVICE), ((UUID(FAST_CHAR), 0x001C),)),))
    r.gatts_set_buffer(h, 263)

    def irq(event, data):
        if event == 3:
            r.gatts_notify(data[0], h, TABLE.get(bytes(r.gatts_read(h)), OTHER))
        elif event == 2:
            r.gap_advertise(100000, ADV)

    r.irq(irq)
    r.gap_advertise(100000, ADV)
    print('READY ble=%s' % sys.argv[1])
    while True:
        await asyncio.sleep(3600)

asyncio.run(main())
"""

UMQTT_LOOP = r"""
import sys, ssl, time, json

class _ussl:
    # umqtt.simple 1.3 imports `ussl`, which MicroPython 1.29 no longer has: the same TLS
    # the firmware uses (certificate and host name checked)
    @staticmethod
    def wrap_socket(sock, server_hostname=None, cadata=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cadata=cadata)
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx.wrap_socket(sock, server_hostname=server_hostname)

sys.modules['ussl'] = _ussl
from umqtt.simple import MQTTClient

with open(sys.argv[1]) as f:
    cfg = json.load(f)
with open(cfg['ca'], 'rb') as f:
    der = f.read()
c = MQTTClient(cfg['client_id'], cfg['host'], cfg['port'], cfg['user'], cfg['token'],
               keepalive=60, ssl=True, ssl_params={'server_hostname': cfg['host'], 'cadata': der})
c.connect()
topic = cfg['topic'].encode()
payload = cfg['payload'].encode()
qos = cfg['qos']
print('READY')
n = 0
t0 = time.ticks_ms()
limit = cfg['seconds'] * 1000
while n < cfg['max'] and time.ticks_diff(time.ticks_ms(), t0) < limit:
    c.publish(topic, payload, False, qos)
    n += 1
el = time.ticks_diff(time.ticks_ms(), t0)
c.disconnect()
print('DONE %d %d' % (n, el))
"""


ASYNC_ECHO = r"""
import sys, asyncio, socket, ssl
from asyncio import core
RESP = bytes.fromhex(sys.argv[3])

async def client(r, w):
    while True:
        head = await r.readexactly(5)
        if head[4]:
            await r.readexactly(head[4])
        w.write(RESP)
        await w.drain()

async def flag():
    # what the BLE link's task does between writes
    f = asyncio.ThreadSafeFlag()
    while True:
        await f.wait()

def context(ca):
    with open(ca, 'rb') as f:
        der = f.read()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=der)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx

async def tls(port, ca, up):
    # wait on a TLS stream (asyncio's Stream polls the TLS socket itself)
    r, w = await asyncio.open_connection('127.0.0.1', port, ssl=context(ca))
    up.set()
    await r.read(1)

def readable(sock):
    yield core._io_queue.queue_read(sock)

async def tlsfd(port, ca, up):
    # what the cloud link does between MQTT packets: read the TLS socket without blocking
    # until it has nothing, then wait on the TCP socket under it (a file descriptor)
    raw = socket.socket()
    raw.setblocking(False)
    try:
        raw.connect(socket.getaddrinfo('127.0.0.1', port)[0][-1])
    except OSError:
        pass  # in progress
    s = context(ca).wrap_socket(raw, server_hostname='127.0.0.1',
                                do_handshake_on_connect=False)
    s.setblocking(False)
    up.set()
    while True:
        b = s.read(1)
        if b is None:
            await readable(raw)
        elif not b:
            return

async def main():
    await asyncio.start_server(client, '127.0.0.1', int(sys.argv[1]))
    if sys.argv[2] == 'flag':
        asyncio.create_task(flag())
    elif sys.argv[2] in ('tls', 'tlsfd'):
        up = asyncio.Event()
        fn = tls if sys.argv[2] == 'tls' else tlsfd
        asyncio.create_task(fn(int(sys.argv[4]), sys.argv[5], up))
        await up.wait()
    print('READY tcp=%s' % sys.argv[1])
    while True:
        await asyncio.sleep(3600)

asyncio.run(main())
"""


def write_script(work: Path, name: str, text: str) -> Path:
    """Write one of the scripts above into the bench's work directory."""
    path = work / name
    path.write_text(text.lstrip("\n"))
    return path


def table_args(table: dict[bytes, bytes]) -> list[str]:
    """``REQHEX:RESPHEX`` arguments for the echo scripts."""
    return [f"{req.hex()}:{resp.hex()}" for req, resp in table.items()]


class TcpEcho:
    """``tap_echo.py tcp``: answers the recorded responses on ``127.0.0.1:port``."""

    def __init__(self, work: Path, table: dict[bytes, bytes]) -> None:
        self.port = free_port()
        script = write_script(work, "tap_echo.py", TAP_ECHO)
        self.proc = LineProcess([micropython_path(), script, "tcp", str(self.port),
                                 *table_args(table)], cwd=work, ready=r"^READY tcp=")

    def stop(self) -> None:
        """Stop the script (SIGINT by its process id)."""
        self.proc.stop(timeout=3)


class PtyEcho:
    """``tap_echo.py pty``: answers on the board end of a pty bridge; clients open
    :attr:`path` (the user end), as they open a virtual board's UART."""

    def __init__(self, work: Path, table: dict[bytes, bytes]) -> None:
        self.bridge = PtyBridge(work / "echo.uart")
        self.path = self.bridge.user_path
        script = write_script(work, "tap_echo.py", TAP_ECHO)
        try:
            self.proc = LineProcess([micropython_path(), script, "pty", self.bridge.board.path,
                                     *table_args(table)], cwd=work, ready=r"^READY uart=")
        except BaseException:
            self.bridge.close()
            raise

    def stop(self) -> None:
        """Stop the script (SIGINT by its process id)."""
        self.proc.stop(timeout=3)
        self.bridge.close()


class BleEcho:
    """``ble_echo.py``: the emulated radio on the unix socket :attr:`path`."""

    def __init__(self, work: Path, table: dict[bytes, bytes]) -> None:
        self.path = work / "echo.ble"
        script = write_script(work, "ble_echo.py", BLE_ECHO)
        lib = str(compile_firmware().parent)
        env = dict(os.environ, MICROPYPATH=os.pathsep.join([".frozen", lib]))
        self.proc = LineProcess([micropython_path(), script, str(self.path),
                                 *table_args(table)], cwd=work, env=env,
                                ready=r"^READY ble=")

    def stop(self) -> None:
        """Stop the script (SIGINT by its process id)."""
        self.proc.stop(timeout=3)
        self.path.unlink(missing_ok=True)


class UmqttLoop:
    """``umqtt_loop.py``: a bare publish loop; :meth:`result` -> (published, seconds)."""

    def __init__(self, work: Path, cfg: dict) -> None:
        conf = work / "umqtt_loop.json"
        conf.write_text(json.dumps(cfg))
        script = write_script(work, "umqtt_loop.py", UMQTT_LOOP)
        env = dict(os.environ, MICROPYPATH=os.pathsep.join([".frozen", str(MPY_LIB)]))
        self.proc = LineProcess([micropython_path(), script, conf], cwd=work, env=env,
                                ready=r"^READY$")

    def result(self, timeout: float) -> tuple[int, float]:
        """Wait for the loop to end: (messages published, seconds it took)."""
        m = self.proc.wait_for(r"^DONE (\d+) (\d+)$", timeout)
        self.proc.proc.wait(10)
        return int(m[1]), int(m[2]) / 1000.0

    def stop(self) -> None:
        """Stop the script (SIGINT by its process id)."""
        self.proc.stop(timeout=3)


class AsyncEcho:
    """``async_echo.py``: the TCP echo as an asyncio server (as the firmware serves Tap),
    alone (``mode`` "plain"), with a task waiting on a ThreadSafeFlag ("flag"), on an open
    TLS stream to ``tls`` = (port, CA in DER) ("tls"), or on the TCP socket under such a
    stream ("tlsfd", as the cloud link waits)."""

    def __init__(self, work: Path, resp: bytes, mode: str = "plain",
                 tls: tuple[int, Path] | None = None) -> None:
        self.port = free_port()
        script = write_script(work, "async_echo.py", ASYNC_ECHO)
        extra = [str(tls[0]), str(tls[1])] if tls else []
        self.proc = LineProcess([micropython_path(), script, str(self.port), mode, resp.hex(),
                                 *extra], cwd=work, ready=r"^READY tcp=")

    def stop(self) -> None:
        """Stop the script (SIGINT by its process id)."""
        self.proc.stop(timeout=3)
