# MQTT 3.1.1 session for the Rapidomize client: umqtt.simple builds every packet and parses
# every PUBLISH, but the socket it talks to is the Session itself, an in-memory one; this
# module moves the bytes over an asyncio TCP/TLS stream. umqtt.simple would block in
# connect(), subscribe() and a QoS 1 publish() waiting for the answer: the in-memory socket
# raises NeedData there instead, and the answer (CONNACK, SUBACK, PUBACK) is awaited here
# without blocking the loop, so the Tap links never wait for the cloud. We send PINGREQ
# ourselves and declare the link dead when nothing arrives for 1.5 keepalive periods.
# Works with umqtt.simple 1.3.x and 1.6+.
import asyncio

from .. import log
from ..ticks import ticks_diff, ticks_ms

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_CHUNK = const(128)  # bytes asked of the stream at once


class MqttError(Exception):
    pass


# umqtt.simple asked for bytes that have not arrived: we take over from here. The same class
# as MqttError (one class less in the heap): umqtt.simple itself never raises it.
NeedData = MqttError


_bug = None


def _pid_write_bug(simple, sock):
    # umqtt.simple 1.7.0 wraps the packet-id write of a QoS 1 publish() in try/except/else
    # with a bare `raise` in the else branch: every successful write then raises RuntimeError
    # before the payload is written. Find out once, on `sock` (a Session), whether this one
    # does that. If so, the Session raises OSError(0) right after storing the packet id (the
    # second write with an explicit length in publish()), which that except clause swallows:
    # the packet goes out whole and publish() carries on as intended.
    global _bug
    if _bug is None:
        c = simple.MQTTClient("probe", "localhost", 1883)
        c.sock = sock
        try:
            c.publish(b"t", b"m", False, 1)
            _bug = False
        except NeedData:
            _bug = False
        except RuntimeError:
            _bug = True
        sock.tx = bytearray()
    return _bug


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


class Session:
    # One connection: umqtt.simple's client (it keeps the id, broker, credentials and
    # keepalive), the stream, a reader task and a keepalive task; and the in-memory socket
    # that client sees. on_message: fn(topic bytes, msg bytes), umqtt's callback per PUBLISH.
    def __init__(self, client_id, host, port, user=None, password=None, keepalive=30,
                 on_message=None, max_packet=4096):
        from umqtt import simple

        self.tx = bytearray()  # what umqtt.simple wrote, sent by flush()
        self.rx = b""  # the packet umqtt.simple reads, from offset `at`
        self.at = 0
        self.trap = 0  # see _pid_write_bug
        _pid_write_bug(simple, self)
        c = self.client = simple.MQTTClient(client_id, host, port, user, password, keepalive)
        c.sock = self
        c.set_callback(on_message)
        self.max_packet = max_packet
        self.on_puback = None  # fn(pid)
        self.on_oversize = None  # fn(prefix bytes): a PUBLISH beyond max_packet
        self.wake = None  # an Event set at every keepalive tick (<= 1 s) and when the link ends
        self.stream = None
        self.connected = False
        self._part = b""  # the start of a packet that has not arrived whole
        self._wait = None  # what open() or subscribe() awaits: [-1 (CONNACK) or a packet id,
        # its return code, Event]
        self._last_rx = 0
        self._last_tx = 0
        self._tasks = []

    # -- the in-memory socket umqtt.simple sees: writes go to tx, reads come from rx (one
    # whole packet). During umqtt's connect() the session also stands in for the `socket`
    # module. umqtt's socket connect() is a no-op here: the session's own is open(); umqtt
    # calls the socket's close() only in disconnect(), which is never used.
    def socket(self, *args):  # and the no-ops
        return self

    connect = settimeout = setblocking = socket

    def getaddrinfo(self, *args):
        return [(0, 0, 0, "", ("0.0.0.0", 0))]

    def write(self, buf, n=None):
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

    # -- the connection ---------------------------------------------------------------------
    async def open(self, tls=None, timeout_ms=10000):
        # tls: an SSLContext, or None for plain TCP
        c = self.client
        self.stream = (await asyncio.wait_for_ms(
            asyncio.open_connection(c.server, c.port, ssl=tls,
                                    server_hostname=c.server if tls else None),
            timeout_ms,
        ))[0]
        self._last_rx = self._last_tx = ticks_ms()
        from umqtt import simple

        saved = simple.socket
        simple.socket = self  # socket.socket() and getaddrinfo() come from the session
        try:
            c.connect(clean_session=True)
        except NeedData:  # CONNECT queued, waiting for the CONNACK: as it should be
            pass
        else:
            raise MqttError("CONNACK taken from nowhere")
        finally:
            simple.socket = saved
        self._tasks = [asyncio.create_task(self._reader())]
        rc = await self._answer(-1, timeout_ms, "CONNACK")
        if rc != 0:
            await self.close()
            # 4 = bad user name or password, 5 = not authorised (MQTT 3.1.1 table 3.1)
            raise MqttError("connection refused, code %d" % rc)
        self.connected = True
        self._tasks.append(asyncio.create_task(self._keepalive()))

    async def _answer(self, want, timeout_ms, what, topic=None):
        # flush what was queued, then wait for its answer (CONNACK, or the SUBACK of `topic`)
        # -> its return code
        w = self._wait = [want, None, asyncio.Event()]
        await self.flush()
        try:
            await asyncio.wait_for_ms(w[2].wait(), timeout_ms)
        except asyncio.TimeoutError:
            if topic is None:
                await self.close()
                raise MqttError("no " + what)
            raise MqttError("no %s for %s" % (what, topic))
        finally:
            self._wait = None
        if w[1] is None:
            raise MqttError("link lost before " + what)
        return w[1]

    async def subscribe(self, topic, qos=1, timeout_ms=10000):
        try:
            self.client.subscribe(topic, qos)
        except NeedData:
            pass
        if await self._answer(self.client.pid, timeout_ms, "SUBACK", topic) == 0x80:
            raise MqttError("subscription refused: " + topic)

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

    async def flush(self):
        if self.tx and self.stream is not None:
            self.stream.write(self.tx)
            self.tx = bytearray()
            await self.stream.drain()
            self._last_tx = ticks_ms()

    async def _reader(self):
        try:
            while True:
                # the rest of a long packet whose start is in _part, else a small chunk
                # (PUBACKs, PINGRESPs and most requests fit; no large buffer for each read)
                n = _packet_length(self._part) - len(self._part) if self._part else 0
                buf = await self.stream.read(n if n > _CHUNK else _CHUNK)
                if not buf:
                    raise MqttError("broker closed the connection")
                self._last_rx = ticks_ms()
                if self._part:
                    buf = self._part + buf
                    self._part = b""
                i = 0
                while i < len(buf):
                    n = _packet_length(buf, i)
                    if n > self.max_packet and buf[i] & 0xF0 == 0x30:
                        buf = await self._skip_oversize(buf, i, n)
                        i = 0
                        continue
                    if not n or len(buf) - i < n:
                        self._part = buf[i:] if i else buf  # the rest comes with the next read
                        break
                    self._handle(buf if n == len(buf) else buf[i : i + n])
                    i += n
                if self.tx:  # PUBACKs of what came in
                    await self.flush()
        except (OSError, MqttError, MemoryError) as e:  # a new session starts afresh
            log.warn("mqtt", "link lost: %s" % e)
        except asyncio.CancelledError:
            return
        await self.close()

    async def _skip_oversize(self, buf, i, n):
        # Keep the start (topic, packet id) of a PUBLISH too large to hold, drop the rest;
        # -> the bytes that follow it
        prefix = buf[i : i + 256]
        left = n - (len(buf) - i)
        while left > 0:
            buf = await self.stream.read(min(_CHUNK, left))
            if not buf:
                raise MqttError("broker closed the connection")
            left -= len(buf)
        if self.on_oversize:
            self.on_oversize(prefix)
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
            # the SUBACK (by packet id) or the CONNACK (-1) that open() or subscribe() awaits
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
        s = self.stream
        self.stream = None
        if s is not None:
            try:
                s.close()
                await s.wait_closed()
            except OSError:
                pass
        if self._wait is not None:
            self._wait[2].set()
        if self.wake is not None:
            self.wake.set()
