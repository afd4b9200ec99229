# MQTT 3.1.1 session for the Rapidomize client: umqtt.simple builds every packet and parses
# every PUBLISH, but the socket it talks to is the Session itself, an in-memory one; this
# module moves the bytes over a TCP/TLS socket driven by asyncio. umqtt.simple would block in
# connect(), subscribe() and a QoS 1 publish() waiting for the answer: the in-memory socket
# raises NeedData there instead, and the answer (PUBACK here; CONNACK and SUBACK in
# rpz/connect.py, the code run once per connection) is awaited without blocking the loop, so
# the Tap links never wait for the cloud. We send PINGREQ ourselves and declare the link dead
# when nothing arrives for 1.5 keepalive periods. Works with umqtt.simple 1.3.x and 1.6+.
# The socket is used without asyncio's Stream: the reader waits on the TCP socket under the
# TLS socket, never on the TLS socket itself (on the unix port an object that is not a file
# descriptor in the event loop's poller makes every wake-up of every task, the Tap links'
# too, 1-3 ms late: make bench, Tap latency); only a write that cannot go at once (the TLS
# handshake, a full send buffer) waits on the TLS socket, whose poll knows what mbedTLS needs.
import asyncio

from .. import log
from ..ticks import ticks_diff, ticks_ms

try:
    from asyncio import core
except ImportError:  # CPython
    core = None

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_CHUNK = const(128)  # bytes asked of the socket at once; the size of the pieces queued


class MqttError(Exception):
    pass


# umqtt.simple asked for bytes that have not arrived: we take over from here. The same class
# as MqttError (one class less in the heap): umqtt.simple itself never raises it.
NeedData = MqttError


_bug = None  # umqtt.simple 1.7.0's publish() bug: see connect._pid_write_bug


def _packet_length(buf, i=0):
    # -> total length of the MQTT packet at buf[i:], or 0 if its header is incomplete
    mult = 1
    n = 0
    for k in range(1, 5):
        if i + k >= len(buf):
            return 0
        b = buf[i + k]
        n += (b & 0x7F) * mult
        if not b & 0x80:
            return 1 + k + n
        mult *= 128
    raise MqttError("bad remaining length")


def _recv(s, n):
    # Up to n bytes from session s's socket, b"" at its end: a plain generator, which
    # MicroPython's asyncio awaits. The socket is read without blocking until it has nothing
    # (TLS: what mbedTLS holds decrypted comes first); only then does the task wait, on the
    # TCP socket.
    while True:
        b = s.sock.read(n)
        if b is not None:
            return b
        yield core._io_queue.queue_read(s.raw)


class Session:
    # One connection: umqtt.simple's client (it keeps the id, broker, credentials and
    # keepalive), the socket, a reader task and a keepalive task; and the in-memory socket
    # that client sees. on_message: fn(topic bytes, msg bytes), umqtt's callback per PUBLISH.
    def __init__(self, client_id, host, port, user=None, password=None, keepalive=30,
                 on_message=None, max_packet=4096):
        self.tx = bytearray()  # what umqtt.simple wrote, sent by flush()
        self.out = None  # or a list sent before tx: what tx held, then a long payload
        self.rx = b""  # the packet umqtt.simple reads, from offset `at`
        self.at = 0
        self.trap = 0  # see connect._pid_write_bug
        # umqtt.simple's client is made by connect.start() once the socket is open; until then
        # `client` holds its arguments
        self.client = (client_id, host, port, user, password, keepalive, on_message)
        self.max_packet = max_packet
        self.on_puback = None  # fn(pid)
        self.on_oversize = None  # fn(None, prefix bytes): a PUBLISH beyond max_packet
        self.wake = None  # an Event set at every keepalive tick (<= 1 s) and when the link ends
        self.connected = False
        self._part = b""  # the start of a packet that has not arrived whole
        self._wait = None  # what connect.start() awaits: [-1 (CONNACK) or the packet id of a
        # SUBSCRIBE, its return code, Event]
        self._last_rx = 0
        self._last_tx = 0
        self._tasks = []
        self.busy = False  # a flush() is sending
        self.sock = self.raw = None  # the socket (TLS or TCP) and the TCP one: connect.dial()

    # -- the in-memory socket umqtt.simple sees: writes go to tx, reads come from rx (one
    # whole packet). During umqtt's connect() it is also what the `socket` module makes.
    # umqtt's socket connect() is a no-op here: connect.dial() opens the socket;
    # umqtt calls the socket's close() only in disconnect(), which is never used.
    def socket(self, *args):  # and the no-ops
        return self

    connect = settimeout = setblocking = socket

    def write(self, buf, n=None):
        pieces = isinstance(buf, list)  # a payload in pieces (declare._patch)
        if n is None and (pieces or len(buf) > _CHUNK):
            # a long payload (a registration, an answer) is sent from where it is, after what
            # tx holds: no copy of it in tx
            out = self.out or []
            out.append(self.tx)
            self.tx = bytearray()
            for p in buf if pieces else (buf,):
                try:
                    out.append(memoryview(p))  # of a str too, on MicroPython: its UTF-8 bytes
                except TypeError:  # CPython
                    out.append(p.encode())
            self.out = out
            return len(buf)
        if len(self.tx) >= _CHUNK:  # a burst of packets: pieces of ~_CHUNK, not one block
            out = self.out or []
            out.append(self.tx)
            self.out = out
            self.tx = bytearray()
        try:
            self.tx += buf if n is None else buf[:n]
        except TypeError:  # CPython adds no str to a bytearray
            self.tx += buf.encode()
        if self.trap and n is not None:
            self.trap -= 1
            if not self.trap:
                raise OSError(0)  # written; swallowed by umqtt's own except clause
        return len(buf) if n is None else n

    def read(self, n):
        i = self.at
        if len(self.rx) - i < n:
            raise NeedData
        self.at = i + n
        return self.rx[i : i + n]

    def publish(self, topic, msg, qos=0):
        # Queue a PUBLISH; returns its packet id (QoS 1) or 0. Call flush() to send.
        if qos and _bug:
            self.trap = 2  # the header write, then the packet-id write
        try:
            self.client.publish(topic, msg, False, qos)
        except NeedData:
            pass
        finally:
            self.trap = 0
        return self.client.pid if qos else 0

    def flush(self):
        # Send what umqtt.simple wrote (out, then tx): a generator that MicroPython's asyncio
        # awaits. One task sends at a time; what others queue meanwhile goes with it.
        s = self.sock
        if s is None or self.busy:
            return
        self.busy = True
        try:
            while self.tx or self.out:
                out = self.out or []
                out.append(self.tx)
                self.out = None
                self.tx = bytearray()
                for b in out:
                    mv = memoryview(b)
                    while len(mv):
                        n = s.write(mv)
                        if n is None:  # not now: wait on the socket written (see above)
                            yield core._io_queue.queue_write(s)
                        else:
                            mv = mv[n:]
                self._last_tx = ticks_ms()
        finally:
            self.busy = False

    async def _reader(self):
        try:
            while True:
                # the rest of a long packet whose start is in _part, else a small chunk
                # (PUBACKs, PINGRESPs and most requests fit; no large buffer for each read)
                n = _packet_length(self._part) - len(self._part) if self._part else 0
                buf = await _recv(self, n if n > _CHUNK else _CHUNK)
                if not buf:
                    raise MqttError("broker closed the connection")
                self._last_rx = ticks_ms()
                n = self._take(buf)
                buf = None  # not held while the next read waits
                while n:
                    n = self._take(await self._skip_oversize(n))
                if self.tx or self.out:  # PUBACKs and answers of what came in
                    await self.flush()
        except (OSError, MqttError, MemoryError) as e:  # a new session starts afresh
            log.warn("mqtt", "link lost: %s" % e)
        except asyncio.CancelledError:
            return
        await self.close()

    def _take(self, buf):
        # Handle the whole packets in _part + buf and keep the rest in _part -> 0, or the
        # length of a PUBLISH too large to hold, whose start is then what _part has. Not a
        # coroutine: the packets go with this frame once handled.
        if self._part:
            buf = self._part + buf
        i = 0
        while i < len(buf):
            n = _packet_length(buf, i)
            if n > self.max_packet and buf[i] & 0xF0 == 0x30:
                self._part = buf[i:] if i else buf
                return n
            if not n or len(buf) - i < n:
                break  # the rest comes with the next read
            self._handle(buf if n == len(buf) else buf[i : i + n])
            i += n
        self._part = buf[i:] if i else buf
        return 0

    async def _skip_oversize(self, n):
        # Keep the start (topic, packet id) of a PUBLISH too large to hold, whose first bytes
        # are in _part, and drop the rest -> the bytes that follow it
        buf = self._part
        self._part = b""
        prefix = buf[:256]
        left = n - len(buf)
        while left > 0:
            buf = await _recv(self, min(_CHUNK, left))
            if not buf:
                raise MqttError("broker closed the connection")
            left -= len(buf)
        if self.on_oversize:
            self.on_oversize(None, prefix)
        return buf[len(buf) + left :] if left < 0 else b""

    def _handle(self, pkt):
        kind = pkt[0] & 0xF0
        if kind == 0x30:
            if pkt[0] & 6 == 4:  # QoS 2 is treated as QoS 1 (spec): PUBACK, once
                pkt = bytes((pkt[0] & 0xF9 | 2,)) + pkt[1:]
            self.rx = pkt
            self.at = 0
            try:
                self.client.check_msg()  # umqtt parses it, calls back, queues the PUBACK
            finally:
                self.rx = b""
        elif kind == 0x40 and len(pkt) >= 4:
            if self.on_puback:
                self.on_puback((pkt[2] << 8) | pkt[3])
        elif kind == 0x90 and len(pkt) >= 5 or kind == 0x20 and len(pkt) >= 4:
            # the SUBACK (by packet id) or the CONNACK (-1) that connect.start() awaits
            w = self._wait
            if w is not None and w[0] == (-1 if kind == 0x20 else (pkt[2] << 8) | pkt[3]):
                w[1] = pkt[3 if kind == 0x20 else 4]
                w[2].set()
        # PINGRESP (0xD0) only refreshes _last_rx

    async def _keepalive(self):
        period = self.client.keepalive * 1000
        try:
            while self.connected:
                await asyncio.sleep_ms(min(1000, period // 4 or 1000))
                if self.wake is not None:
                    self.wake.set()
                now = ticks_ms()
                if ticks_diff(now, self._last_rx) > period * 3 // 2:
                    log.warn("mqtt", "no answer from the broker for %d s" % (period * 3 // 2000))
                    break
                if ticks_diff(now, self._last_tx) >= period // 2:
                    self.client.ping()
                    await self.flush()
        except (OSError, MqttError, MemoryError) as e:
            log.warn("mqtt", "keepalive: %s" % e)
        except asyncio.CancelledError:
            return
        await self.close()

    async def close(self):
        self.connected = False
        me = asyncio.current_task()
        for t in self._tasks:
            if t is not me:
                t.cancel()
        self._tasks = []
        s = self.sock
        self.sock = self.raw = None
        if s is not None:
            try:
                s.close()  # (the TLS socket closes the TCP one)
            except OSError:
                pass
        if self._wait is not None:
            self._wait[2].set()
        if self.wake is not None:
            self.wake.set()
