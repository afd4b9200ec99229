# Rapidomize device client (spec rapidomize.md): registration when the declaration changed,
# start-up read of the values the platform holds, events with a persisted monotonically
# increasing seq through a QoS 1 outbox, and SSR handling with acks on /ack/{refId}.
# Runs as one task on the app's loop; every wait has a timeout; reconnects with backoff.
# Heap: this module holds only the steady-state work (events, the connection loop, routing
# what comes in). Work done once per connection (CONNECT and SUBSCRIBEs: rpz/connect.py;
# declaration, registration, start-up read: rpz/declare.py) or once per server-sent request
# (rpz/ssr.py) is in modules imported for it and forgotten right after, so that their code
# goes back to the heap. Options stay in cfg (read where used); nothing of a declaration or a
# request is kept once it is answered.
import asyncio
import json
import os

from .. import forget, log
from ..proto import rpzcodes as rc
from ..twin import Prop, R
from .mqtt import MqttError, Session
from .outbox import Outbox
from .topics import Topics

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_DROPPED_ID = const(240)  # Tap variable id of the "events_dropped" counter
_QUIET = ("platform", "system")  # changes that make no event
_WINDOW = const(4)  # QoS 1 events in flight at once


def parse_broker(url):
    # "mqtts://host:8883" -> (host, port, tls?)
    if url.startswith("mqtts://"):
        rest, tls, port = url[8:], True, 8883
    elif url.startswith("mqtt://"):
        rest, tls, port = url[7:], False, 1883
    else:
        raise ValueError("broker URL must start with mqtt:// or mqtts://")
    rest = rest.rstrip("/")
    if ":" in rest:
        host, p = rest.rsplit(":", 1)
        port = int(p)
    else:
        host = rest
    if not host:
        raise ValueError("broker URL has no host")
    return host, port, tls


class RpzClient:
    def __init__(self, cfg, twin, attributes, actions=None, location=None):
        self.cfg = cfg
        self.twin = twin
        self.attributes = attributes
        self.actions = actions or {}
        if location:
            cfg["location"] = location
        self.topics = Topics(cfg["app_id"], cfg.get("client_id") or "_", cfg.get("icapp_id"))
        self.host, self.port, secure = parse_broker(cfg.get("broker", "mqtts://ics.rapidomize.com"))
        self.tls = None
        if secure:
            try:  # the C module: `ssl` is a Python wrapper of it that costs 1 KB of heap more
                import tls
            except ImportError:  # MicroPython before 1.23
                import ssl as tls

            ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            with open(cfg.get("ca", "ca.der"), "rb") as f:
                ctx.load_verify_locations(f.read())  # DER; the C method takes no keywords
            ctx.verify_mode = tls.CERT_REQUIRED
            self.tls = ctx
        self.outbox = Outbox(cfg.get("outbox_max", 64))
        self.live = []  # QoS 0 events waiting for a connection (bounded, oldest dropped)
        self.session = None
        self.online = False
        self.registered = False
        self.synced = False
        self.last_error = ""
        self.connects = 0
        self._mid = int.from_bytes(os.urandom(2), "big")
        self._pending = None  # [mid, Event, response] of our request awaiting its answer
        self._inflight = {}  # packet id -> seq
        self._wake = asyncio.Event()
        self._window = [0, 0]  # SSR rate limit: start of the 1 s window, requests in it
        self.dropped = twin.add(Prop(_DROPPED_ID, "events_dropped", 0x23, 1, R))
        self.dropped.value = self.outbox.dropped
        twin.subscribe(self._on_change)

    # -- the twin side -------------------------------------------------------------------------
    def _on_change(self, prop, origin):
        if origin in _QUIET:
            return
        ob = self.outbox
        seq = ob.next_seq()
        before = ob.dropped
        try:
            self._mid = mid = (self._mid + 1) & 0x7FFFFFFF  # the last mid used (declare.py too)
            payload = json.dumps({"mid": mid, "op": rc.WRITE, "msg": {
                "_evt": "change", "n": prop.name, "v": prop.value, "seq": seq, "src": origin}})
            if self.cfg.get("event_qos", 1):
                ob.add(seq, payload)
            else:
                if len(self.live) >= ob.limit:
                    self.live.pop(0)
                self.live.append(payload)
        except MemoryError:
            # a full heap: the write stands, its event is dropped and counted (its seq is
            # missing at the platform); the twin's writer and the sampling task carry on
            ob.dropped += 1
            log.error("rpz", "out of memory: an event dropped")
        if ob.dropped != before:
            try:
                self.twin.write(self.dropped, ob.dropped, "system", False)
            except MemoryError:
                pass  # (the count is in the outbox; the next drop shows it)
        self._wake.set()

    # -- connection ----------------------------------------------------------------------------
    async def run(self):
        cfg = self.cfg
        backoff = cfg.get("backoff_min_ms", 1000)
        while True:
            try:
                await self._session()
                backoff = cfg.get("backoff_min_ms", 1000)
            except (OSError, MqttError, asyncio.TimeoutError, ValueError) as e:
                # one line: mbedTLS messages come wrapped in newlines
                self.last_error = " ".join(str(e).split()) or e.__class__.__name__
                log.warn("rpz", "broker %s:%d: %s" % (self.host, self.port, self.last_error))
            except Exception as e:  # a bug must not end the cloud link for good
                self.last_error = repr(e)
                log.error("rpz", "session failed: %r" % e)
            self.online = False
            if self.session is not None:
                await self.session.close()
                self.session = None
            jitter = int.from_bytes(os.urandom(2), "big") % (backoff // 2 + 1)
            await asyncio.sleep_ms(backoff // 2 + jitter)
            backoff = min(backoff * 2, cfg.get("backoff_max_ms", 60000))

    async def _session(self):
        cfg = self.cfg
        timeout = cfg.get("timeout_ms", 10000)
        s = Session(
            self.topics.client_id, self.host, self.port, cfg.get("username") or cfg["app_id"],
            cfg.get("token", ""), cfg.get("keepalive", 30), self._on_message,
            cfg.get("ssr_max_bytes", 1024) + 512,
        )
        s.on_puback = self._on_puback
        s.on_oversize = self._on_message
        s.wake = self._wake
        self.session = s
        self._inflight = {}
        # umqtt.simple (it stays once loaded) before the code of the connection (it goes): what
        # stays then lies below what goes, and forgetting connect.py leaves no holes among it
        import umqtt.simple  # noqa: F401

        from . import connect

        try:
            await asyncio.wait_for_ms(connect.dial(s, self.host, self.port, self.tls), timeout)
            await connect.start(s, timeout, self.topics.subscriptions())
        finally:
            forget("rpz.connect")
        connect = None
        self.connects += 1
        self.online = True
        self.last_error = ""
        log.info("rpz", "online as %s" % self.topics.client_id)
        from . import declare

        try:
            await declare.start(self)  # registration, start-up read
        finally:
            forget("rpz.declare")
        declare = None  # this frame lives as long as the session: let the module go
        await self._send_loop(s)

    async def _send_loop(self, s):
        topic = self.topics.icapp_event or self.topics.event
        inflight = self._inflight
        while s.connected:
            self._wake.clear()
            if self.live:
                while self.live:
                    s.publish(topic, self.live.pop(0), 0)
                self.live = []  # not the list grown while offline: its room goes back too
            ob = self.outbox
            items = ob.items
            if len(inflight) < _WINDOW and len(items) > len(inflight):
                sent = inflight.values()
                for seq, at in items:
                    if len(inflight) >= _WINDOW:
                        break
                    if seq not in sent:
                        inflight[s.publish(topic, ob.payload(at), 1)] = seq
            if s.tx or s.out:
                await s.flush()
            # set by a change, a PUBACK, the session's keepalive ticks (<= 1 s) and its end
            await self._wake.wait()
        raise MqttError(self.last_error or "link lost")

    def _on_puback(self, pid):
        seq = self._inflight.pop(pid, None)
        if seq is not None:
            self.outbox.ack(seq)
            self._wake.set()

    # -- what the platform sends -----------------------------------------------------------------
    def _on_message(self, topic, raw):
        # topic: bytes, as umqtt.simple gives it, or None for a PUBLISH too large to hold (raw:
        # its start), which is PUBACKed and answered 0x8D. A status with the mid of our own
        # request (register, read) answers it; anything else is a server-sent request.
        if topic is not None:
            try:
                obj = json.loads(raw)
            except (ValueError, UnicodeError):
                obj = None
            p = self._pending
            if p is not None and isinstance(obj, dict) and obj.get("mid") == p[0]:
                op = obj.get("op")
                if not rc.is_request(op if isinstance(op, int) else 0):
                    p[2] = obj
                    p[1].set()
                    return
        from . import ssr

        try:  # the topic for every instance is the only one without "/cid/"
            if topic is None:
                ssr.too_large(self, raw)
            else:
                ssr.answer(self, b"/cid/" not in topic, obj, len(raw))
        finally:
            forget("rpz.ssr")
