# What a new MQTT connection does once (imported for it by the client, forgotten right
# after, so that this code is not in the heap while connected): the TCP/TLS connection
# opened, then umqtt.simple's CONNECT and SUBSCRIBEs on the in-memory socket (the Session),
# and their answers (CONNACK, SUBACK) awaited without blocking the loop; umqtt.simple would
# block.
import asyncio

from ..ticks import ticks_ms
from . import mqtt
from .mqtt import MqttError, NeedData


def _pid_write_bug(simple, sock):
    # umqtt.simple 1.7.0 wraps the packet-id write of a QoS 1 publish() in try/except/else
    # with a bare `raise` in the else branch: every successful write then raises RuntimeError
    # before the payload is written. Find out once, on `sock` (a Session), whether this one
    # does that (-> mqtt._bug). If so, the Session raises OSError(0) right after storing the
    # packet id (the second write with an explicit length in publish()), which that except
    # clause swallows: the packet goes out whole and publish() carries on as intended.
    if mqtt._bug is None:
        c = simple.MQTTClient("probe", "localhost", 1883)
        c.sock = sock
        try:
            c.publish(b"t", b"m", False, 1)
            mqtt._bug = False
        except NeedData:
            mqtt._bug = False
        except RuntimeError:
            mqtt._bug = True
        sock.tx = bytearray()
    return mqtt._bug


class _Net:
    # umqtt.simple's `socket` module during its connect(): the socket it makes is the session
    # (whose connect() is a no-op: the socket is open already)
    def __init__(self, s):
        self.socket = s.socket

    def getaddrinfo(self, *args):
        return [(0, 0, 0, "", ("0.0.0.0", 0))]


def dial(s, host, port, ctx=None):
    # Open session s's TCP connection, in TLS with SSLContext `ctx` (s.sock: the socket used,
    # s.raw: the TCP one, which the reader waits on: see rpz/mqtt.py): a generator that
    # MicroPython's asyncio awaits, as asyncio.open_connection (which keeps no hold of the TCP
    # socket). The TLS handshake runs with the first writes and reads; the lookup blocks.
    import errno
    import socket
    from asyncio import core

    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    raw = socket.socket(ai[0], ai[1], ai[2])
    raw.setblocking(False)
    s.sock = s.raw = raw
    try:
        raw.connect(ai[-1])
    except OSError as e:
        if e.errno != errno.EINPROGRESS:
            raise
    if ctx is not None:
        s.sock = ctx.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)
        s.sock.setblocking(False)
    yield core._io_queue.queue_write(raw)  # connected (or refused: the first I/O says)


async def start(s, timeout_ms, topics):
    # Session `s` (its socket open, its `client` still umqtt's arguments): CONNECT, then a
    # QoS 1 subscription to each of `topics`.
    a = s.client
    s._last_rx = s._last_tx = ticks_ms()
    from umqtt import simple  # (loaded already: see client._session)

    _pid_write_bug(simple, s)
    c = s.client = simple.MQTTClient(*a[:6])
    c.sock = s
    c.set_callback(a[6])
    a = None
    saved = simple.socket
    simple.socket = _Net(s)
    try:
        c.connect(clean_session=True)
    except NeedData:  # CONNECT queued, waiting for the CONNACK: as it should be
        pass
    else:
        raise MqttError("CONNACK taken from nowhere")
    finally:
        simple.socket = saved
    s._tasks = [asyncio.create_task(s._reader())]
    rc = await _answer(s, -1, timeout_ms, "CONNACK")
    if rc != 0:
        await s.close()
        # 4 = bad user name or password, 5 = not authorised (MQTT 3.1.1 table 3.1)
        raise MqttError("connection refused, code %d" % rc)
    s.connected = True
    s._tasks.append(asyncio.create_task(s._keepalive()))
    for t in topics:
        try:
            c.subscribe(t, 1)
        except NeedData:
            pass
        if await _answer(s, c.pid, timeout_ms, "SUBACK", t) == 0x80:
            raise MqttError("subscription refused: " + t)


async def _answer(s, want, timeout_ms, what, topic=None):
    # flush what was queued, then wait for its answer (CONNACK, or the SUBACK of `topic`)
    # -> its return code
    w = s._wait = [want, None, asyncio.Event()]
    await s.flush()
    try:
        await asyncio.wait_for_ms(w[2].wait(), timeout_ms)
    except asyncio.TimeoutError:
        if topic is None:
            await s.close()
            raise MqttError("no " + what)
        raise MqttError("no %s for %s" % (what, topic))
    finally:
        s._wait = None
    if w[1] is None:
        raise MqttError("link lost before " + what)
    return w[1]
