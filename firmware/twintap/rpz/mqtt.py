# MQTT 3.1.1 session for the Rapidomize client: umqtt.simple builds every packet and parses
# every PUBLISH, but it talks to a Pipe (an in-memory socket); this module moves the bytes
# over an asyncio TCP/TLS stream. umqtt.simple would block in connect(), subscribe() and a
# QoS 1 publish() waiting for the answer: the Pipe raises NeedData there instead, and the
# answer (CONNACK, SUBACK, PUBACK) is awaited here without blocking the loop, so the Tap
# links never wait for the cloud. We send PINGREQ ourselves and declare the link dead when
# nothing arrives for 1.5 keepalive periods. Works with umqtt.simple 1.3.x and 1.6+.
import asyncio

from .. import log
from ..ticks import ticks_diff, ticks_ms


class NeedData(Exception):
    # umqtt.simple asked for bytes that have not arrived: we take over from here
    pass


class MqttError(Exception):
    pass


class Pipe:
    # The socket umqtt.simple sees: writes go to tx, reads come from rx (one whole packet)
    def __init__(self):
        self.rx = b""
        self.tx = bytearray()
        self.trap = 0  # see _pid_write_bug

    def connect(self, addr):
        pass

    def settimeout(self, t):
        pass

    def setblocking(self, flag):
        pass

    def close(self):
        pass

    def write(self, buf, n=None):
        if isinstance(buf, str):
            buf = buf.encode()
        explicit = n is not None
        if n is None:
            n = len(buf)
        self.tx += bytes(buf[:n])
        if self.trap and explicit:
            self.trap -= 1
            if not self.trap:
                raise OSError(0)  # written; swallowed by umqtt's own except clause
        return n

    def read(self, n):
        if len(self.rx) < n:
            raise NeedData
        d = self.rx[:n]
        self.rx = self.rx[n:]
        return d


class _SocketShim:
    # stands in for the `socket` module inside umqtt.simple during connect()
    pipe = None

    @staticmethod
    def socket(*args):
        return _SocketShim.pipe

    @staticmethod
    def getaddrinfo(*args):
        return [(0, 0, 0, "", ("0.0.0.0", 0))]


_bug = None


def _pid_write_bug(simple):
    # umqtt.simple 1.7.0 wraps the packet-id write of a QoS 1 publish() in try/except/else
    # with a bare `raise` in the else branch: every successful write then raises RuntimeError
    # before the payload is written. Find out once, with a Pipe, whether this one does that.
    # If so, the Pipe raises OSError(0) right after storing the packet id (the second write
    # with an explicit length in publish()), which that except clause swallows: the packet
    # goes out whole and publish() carries on as intended.
    global _bug
    if _bug is None:
        c = simple.MQTTClient("probe", "localhost", 1883)
        c.sock = Pipe()
        try:
            c.publish(b"t", b"m", False, 1)
            _bug = False
        except NeedData:
            _bug = False
        except RuntimeError:
            _bug = True
    return _bug


def _packet_length(buf):
    # -> total length of the first MQTT packet in buf, or 0 if its header is incomplete
    mult = 1
    n = 0
    i = 1
    while i < len(buf) and i <= 4:
        b = buf[i]
        n += (b & 0x7F) * mult
        if not b & 0x80:
            return 1 + i + n
        mult *= 128
        i += 1
    if i > 4:
        raise MqttError("bad remaining length")
    return 0


class Session:
    def __init__(self, client_id, host, port, user=None, password=None, keepalive=30,
                 tls=None, server_hostname=None, max_packet=4096):
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.tls = tls
        self.server_hostname = server_hostname
        self.max_packet = max_packet
        self.on_message = None  # fn(topic bytes, msg bytes)
        self.on_puback = None  # fn(pid)
        self.on_oversize = None  # fn(topic bytes, prefix bytes): a PUBLISH beyond max_packet
        self.stream = None
        self.pipe = None
        self.client = None
        self.connected = False
        self._rx = bytearray()
        self._waiters = {}  # ("sub", pid) or "connack" -> Event, with result in _results
        self._results = {}
        self._last_rx = 0
        self._last_tx = 0
        self._tasks = []
        self.down = asyncio.Event()

    async def connect(self, timeout_ms=10000):
        from umqtt import simple

        self.pipe = Pipe()
        c = simple.MQTTClient(
            self.client_id, self.host, self.port, self.user, self.password, self.keepalive
        )
        c.sock = self.pipe
        c.set_callback(self._deliver)
        self.client = c
        reader, _ = await asyncio.wait_for_ms(
            asyncio.open_connection(
                self.host, self.port, ssl=self.tls, server_hostname=self.server_hostname
            ),
            timeout_ms,
        )
        self.stream = reader
        self._rx = bytearray()
        self._last_rx = self._last_tx = ticks_ms()
        saved = simple.socket
        _SocketShim.pipe = self.pipe
        simple.socket = _SocketShim
        try:
            c.connect(clean_session=True)
            raise MqttError("CONNACK taken from nowhere")
        except NeedData:
            pass
        finally:
            simple.socket = saved
            _SocketShim.pipe = None
        c.sock = self.pipe
        ev = self._expect("connack")
        await self.flush()
        self._tasks = [asyncio.create_task(self._reader())]
        try:
            await asyncio.wait_for_ms(ev.wait(), timeout_ms)
        except asyncio.TimeoutError:
            await self.close()
            raise MqttError("no CONNACK")
        rc = self._results.pop("connack", None)
        if rc is None:
            raise MqttError("link lost before CONNACK")
        if rc != 0:
            await self.close()
            # 4 = bad user name or password, 5 = not authorised (MQTT 3.1.1 table 3.1)
            raise MqttError("connection refused, code %d" % rc)
        self.connected = True
        self._tasks.append(asyncio.create_task(self._keepalive()))

    def _deliver(self, topic, msg):
        if self.on_message:
            self.on_message(topic, msg)

    def _expect(self, key):
        ev = asyncio.Event()
        self._waiters[key] = ev
        return ev

    async def subscribe(self, topic, qos=1, timeout_ms=10000):
        try:
            self.client.subscribe(topic, qos)
        except NeedData:
            pass
        key = ("sub", self.client.pid)
        ev = self._expect(key)
        await self.flush()
        try:
            await asyncio.wait_for_ms(ev.wait(), timeout_ms)
        except asyncio.TimeoutError:
            raise MqttError("no SUBACK for " + topic)
        rc = self._results.pop(key, None)
        if rc is None:
            raise MqttError("link lost before SUBACK")
        if rc == 0x80:
            raise MqttError("subscription refused: " + topic)

    def publish(self, topic, msg, qos=0):
        # Queue a PUBLISH; returns its packet id (QoS 1) or 0. Call flush() to send.
        from umqtt import simple

        if qos and _pid_write_bug(simple):
            self.pipe.trap = 2  # the header write, then the packet-id write
        try:
            self.client.publish(topic, msg, False, qos)
        except NeedData:
            pass
        finally:
            self.pipe.trap = 0
        return self.client.pid if qos else 0

    async def flush(self):
        if self.pipe.tx and self.stream is not None:
            data = bytes(self.pipe.tx)
            self.pipe.tx = bytearray()
            self.stream.write(data)
            await self.stream.drain()
            self._last_tx = ticks_ms()

    async def _reader(self):
        try:
            while True:
                chunk = await self.stream.read(512)
                if not chunk:
                    raise MqttError("broker closed the connection")
                self._last_rx = ticks_ms()
                self._rx += chunk
                while self._rx:
                    n = _packet_length(self._rx)
                    if n and n > self.max_packet and self._rx[0] & 0xF0 == 0x30:
                        await self._skip_oversize(n)
                        continue
                    if not n or len(self._rx) < n:
                        break
                    pkt = bytes(self._rx[:n])
                    self._rx = self._rx[n:]
                    self._handle(pkt)
                await self.flush()
        except (OSError, MqttError) as e:
            log.warn("mqtt", "link lost: %s" % e)
        except asyncio.CancelledError:
            return
        await self._down()

    async def _skip_oversize(self, n):
        # Keep the start (topic, packet id) of a PUBLISH too large to hold, drop the rest.
        prefix = bytes(self._rx[:256])
        left = n - len(self._rx)
        self._rx = bytearray()
        while left > 0:
            chunk = await self.stream.read(min(512, left))
            if not chunk:
                raise MqttError("broker closed the connection")
            left -= len(chunk)
            if left < 0:
                self._rx += chunk[len(chunk) + left :]
        if self.on_oversize:
            self.on_oversize(prefix)

    def _handle(self, pkt):
        kind = pkt[0] & 0xF0
        if kind == 0x30:
            if pkt[0] & 6 == 4:  # QoS 2 is treated as QoS 1 (spec): PUBACK, once
                pkt = bytes((pkt[0] & 0xF9 | 2,)) + pkt[1:]
            self.pipe.rx = pkt
            try:
                self.client.check_msg()  # umqtt parses it, calls back, queues the PUBACK
            finally:
                self.pipe.rx = b""
        elif kind == 0x40 and len(pkt) >= 4:
            if self.on_puback:
                self.on_puback((pkt[2] << 8) | pkt[3])
        elif kind == 0x90 and len(pkt) >= 5:
            self._done(("sub", (pkt[2] << 8) | pkt[3]), pkt[4])
        elif kind == 0x20 and len(pkt) >= 4:
            self._done("connack", pkt[3])
        # PINGRESP (0xD0) only refreshes _last_rx

    def _done(self, key, result):
        ev = self._waiters.pop(key, None)
        if ev is not None:
            self._results[key] = result
            ev.set()

    async def _keepalive(self):
        period = self.keepalive * 1000
        try:
            while self.connected:
                await asyncio.sleep_ms(min(1000, period // 4 or 1000))
                now = ticks_ms()
                if ticks_diff(now, self._last_rx) > period * 3 // 2:
                    log.warn("mqtt", "no answer from the broker for %d s" % (period * 3 // 2000))
                    break
                if ticks_diff(now, self._last_tx) >= period // 2:
                    self.client.ping()
                    await self.flush()
        except (OSError, MqttError) as e:
            log.warn("mqtt", "keepalive: %s" % e)
        except asyncio.CancelledError:
            return
        await self._down()

    async def _down(self):
        if self.connected or self.stream is not None:
            self.connected = False
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
        for ev in self._waiters.values():
            ev.set()
        self._waiters = {}
        self.down.set()
