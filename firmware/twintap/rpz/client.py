# Rapidomize device client (spec rapidomize.md): registration when the declaration changed,
# start-up read of the values the platform holds, events with a persisted monotonically
# increasing seq through a QoS 1 outbox, and SSR handling with acks on /ack/{refId}.
# Runs as one task on the app's loop; every wait has a timeout; reconnects with backoff.
import asyncio
import json
import os

from .. import log, store
from ..proto import rpzcodes as rc
from ..ticks import ticks_diff, ticks_ms
from ..twin import E_NOT_FOUND, E_RIGHTS, Prop, R, TwinError, W, X, rpz_dt
from .mqtt import MqttError, Session
from .outbox import Outbox
from .topics import Topics

STATE_FILE = "rpz.json"
DROPPED_ID = 240  # Tap variable id of the "events_dropped" counter
_QUIET = ("platform", "system")  # changes that make no event
_WINDOW = 4  # QoS 1 events in flight at once


class SsrError(Exception):
    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status


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


def tls_context(ca_der):
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=ca_der)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class RpzClient:
    def __init__(self, cfg, twin, attributes, actions=None, location=None):
        self.cfg = cfg
        self.twin = twin
        self.attributes = attributes
        self.actions = actions or {}
        self.location = location or cfg.get("location")
        self.app_id = cfg["app_id"]
        self.topics = Topics(self.app_id, cfg.get("client_id") or "_", cfg.get("icapp_id"))
        self.host, self.port, tls = parse_broker(cfg.get("broker", "mqtts://ics.rapidomize.com"))
        self.tls = None
        if tls:
            with open(cfg.get("ca", "ca.der"), "rb") as f:
                self.tls = tls_context(f.read())
        self.keepalive = cfg.get("keepalive", 30)
        self.qos = 1 if cfg.get("event_qos", 1) else 0
        self.ssr_max = cfg.get("ssr_max_bytes", 1024)
        self.ssr_rate = cfg.get("ssr_per_s", 20)
        self.backoff_min = cfg.get("backoff_min_ms", 1000)
        self.backoff_max = cfg.get("backoff_max_ms", 60000)
        self.timeout_ms = cfg.get("timeout_ms", 10000)
        self.outbox = Outbox(cfg.get("outbox_max", 64))
        self.live = []  # QoS 0 events waiting for a connection (bounded, oldest dropped)
        self.state = store.load(STATE_FILE, {}) or {}
        self.session = None
        self.online = False
        self.registered = False
        self.synced = False
        self.last_error = ""
        self.connects = 0
        self._mid = int.from_bytes(os.urandom(2), "big")
        self._pending = {}  # mid -> [Event, response]
        self._inflight = {}  # packet id -> seq
        self._wake = asyncio.Event()
        self._window_start = 0
        self._window_count = 0
        self.dropped = twin.add(Prop(DROPPED_ID, "events_dropped", 0x23, 1, R))
        self.dropped.value = self.outbox.dropped
        twin.subscribe(self._on_change)

    # -- the twin side -------------------------------------------------------------------------
    def _next_mid(self):
        self._mid = (self._mid + 1) & 0x7FFFFFFF
        return self._mid

    def _on_change(self, prop, origin):
        if origin in _QUIET:
            return
        seq = self.outbox.next_seq()
        msg = {"_evt": "change", "n": prop.name, "v": prop.value, "seq": seq, "src": origin}
        payload = json.dumps({"mid": self._next_mid(), "op": rc.WRITE, "msg": msg})
        if self.qos:
            before = self.outbox.dropped
            self.outbox.add(seq, payload)
            if self.outbox.dropped != before:
                self.twin.write(self.dropped, self.outbox.dropped, "system", False)
        else:
            if len(self.live) >= self.outbox.limit:
                self.live.pop(0)
            self.live.append(payload)
        self._wake.set()

    def declaration(self):
        att = [{"n": k, "v": self.attributes[k]} for k in sorted(self.attributes)]
        prop = []
        for p in sorted(self.twin.props.values(), key=lambda p: p.name):
            d = {"n": p.name, "dt": rpz_dt(p.type), "rwx": p.rwx, "v": p.value}
            if p.unit:
                d["u"] = p.unit
            prop.append(d)
        decl = {"att": att, "prop": prop}
        if self.location:
            decl["loc"] = self.location
        return decl

    def digest(self, decl):
        # what registration depends on: attributes, names, types, rights, units, location
        import hashlib

        parts = [json.dumps(decl["att"]), json.dumps(decl.get("loc"))]
        for d in decl["prop"]:
            parts.append("%s|%s|%d|%s" % (d["n"], d["dt"], d["rwx"], d.get("u", "")))
        h = hashlib.sha256("\n".join(parts).encode()).digest()
        return "".join("%02x" % b for b in h)

    # -- connection ----------------------------------------------------------------------------
    async def run(self):
        backoff = self.backoff_min
        while True:
            try:
                await self._session()
                backoff = self.backoff_min
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
            backoff = min(backoff * 2, self.backoff_max)

    async def _session(self):
        user = self.cfg.get("username") or self.app_id
        s = Session(
            self.topics.client_id, self.host, self.port, user, self.cfg.get("token", ""),
            self.keepalive, self.tls, self.host if self.tls else None, self.ssr_max + 512,
        )
        s.on_message = self._on_message
        s.on_puback = self._on_puback
        s.on_oversize = self._on_oversize
        self.session = s
        self._inflight = {}
        await s.connect(self.timeout_ms)
        for t in self.topics.subscriptions():
            await s.subscribe(t, 1, self.timeout_ms)
        self.connects += 1
        self.online = True
        self.last_error = ""
        log.info("rpz", "online as %s" % self.topics.client_id)
        decl = self.declaration()
        digest = self.digest(decl)
        if self.state.get("digest") != digest:
            await self._register(decl, digest)
        elif not self.registered:
            log.info("rpz", "declaration unchanged: not registering again")
        self.registered = True
        if not self.synced:
            await self._take_platform_values()
            self.synced = True
        await self._send_loop(s)

    async def _request(self, op, msg):
        mid = self._next_mid()
        ev = asyncio.Event()
        self._pending[mid] = [ev, None]
        body = json.dumps({"mid": mid, "op": op, "msg": msg})
        self.session.publish(self.topics.register, body, 1)
        await self.session.flush()
        try:
            await asyncio.wait_for_ms(ev.wait(), self.timeout_ms)
        finally:
            resp = self._pending.pop(mid)[1]
        if resp is None:
            raise MqttError("no answer from the platform to op %d" % op)
        return resp

    async def _register(self, decl, digest):
        resp = await self._request(rc.PATCH, decl)
        status = resp.get("op", 0)
        if rc.is_error(status) or rc.code_class(status) != 2:
            why = "%s %s" % (rc.dotted(status), resp.get("err", ""))
            raise MqttError("registration refused: " + why)
        self.state["digest"] = digest
        store.save(STATE_FILE, self.state)
        log.info("rpz", "registered %d properties" % len(decl["prop"]))

    async def _take_platform_values(self):
        resp = await self._request(rc.READ, {})
        items = resp.get("msg")
        if rc.code_class(resp.get("op", 0)) != 2 or not isinstance(items, list):
            return
        for it in items:
            try:
                p = self.twin.get(it["n"])
                if p.rwx & W and "v" in it and it["v"] is not None:
                    self.twin.write(p, it["v"], "platform")
            except (TwinError, KeyError, TypeError) as e:
                log.warn("rpz", "platform value ignored: %s" % e)

    async def _send_loop(self, s):
        while s.connected:
            while self.live:
                s.publish(self._event_topic(), self.live.pop(0), 0)
            sent = set(self._inflight.values())
            for seq, payload in self.outbox.items:
                if len(self._inflight) >= _WINDOW:
                    break
                if seq not in sent:
                    self._inflight[s.publish(self._event_topic(), payload, 1)] = seq
            await s.flush()
            self._wake.clear()
            try:
                await asyncio.wait_for_ms(self._wake.wait(), 1000)
            except asyncio.TimeoutError:
                pass
        raise MqttError(self.last_error or "link lost")

    def _event_topic(self):
        return self.topics.icapp_event or self.topics.event

    def _on_puback(self, pid):
        seq = self._inflight.pop(pid, None)
        if seq is not None:
            self.outbox.ack(seq)
            self._wake.set()

    # -- server-sent requests ------------------------------------------------------------------
    def _on_message(self, topic, raw):
        topic = topic.decode() if isinstance(topic, bytes) else topic
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeError):
            obj = None
        if isinstance(obj, dict) and not rc.is_request(obj.get("op", 0) if isinstance(
                obj.get("op"), int) else 0):
            pend = self._pending.get(obj.get("mid"))
            if pend is not None:  # the platform's answer to our register or read
                pend[1] = obj
                pend[0].set()
                return
        self._answer(topic, obj, len(raw))

    def _on_oversize(self, prefix):
        # A PUBLISH too large to hold: PUBACK it (umqtt never saw it) and answer 0x8D.
        n = 2
        while prefix[n - 1] & 0x80:
            n += 1
        tlen = (prefix[n] << 8) | prefix[n + 1]
        body = n + 2 + tlen
        if prefix[0] & 6:
            self.session.pipe.write(bytes((0x40, 2, prefix[body], prefix[body + 1])))
            body += 2
        mid = None
        text = bytes(prefix[body:])
        i = text.find(b'"mid"')
        if i >= 0:
            j = i + 5
            while j < len(text) and text[j : j + 1] in b' :':
                j += 1
            k = j
            while k < len(text) and 48 <= text[k] <= 57:
                k += 1
            if k > j:
                mid = int(text[j:k])
        self._ack(mid, None, rc.PAYLOAD_TOO_LARGE, "payload above %d bytes" % self.ssr_max)

    def _answer(self, topic, obj, size):
        mid = obj.get("mid") if isinstance(obj, dict) else None
        ref = obj.get("ref") if isinstance(obj, dict) else None
        try:
            if size > self.ssr_max:
                raise SsrError(rc.PAYLOAD_TOO_LARGE, "payload above %d bytes" % self.ssr_max)
            now = ticks_ms()
            if ticks_diff(now, self._window_start) >= 1000:
                self._window_start = now
                self._window_count = 0
            self._window_count += 1
            if self._window_count > self.ssr_rate:
                raise SsrError(rc.TOO_MANY_REQUESTS, "more than %d requests/s" % self.ssr_rate)
            if not isinstance(obj, dict) or "op" not in obj:
                raise SsrError(rc.BAD_REQUEST, "not a request object")
            if mid is None and ref is None:
                raise SsrError(rc.BAD_REQUEST, "mid missing")
            op = obj["op"]
            if not isinstance(op, int) or not rc.is_request(op):
                raise SsrError(rc.BAD_REQUEST, "op is not a request op-code")
            if topic == self.topics.ssr_all and op not in (rc.WRITE, rc.UPDATE, rc.EXEC):
                raise SsrError(rc.FORBIDDEN, "only write and exec are sent to every instance")
            result = self._execute(op, obj.get("msg"))
            self._ack(mid, ref, op, None, result)
        except SsrError as e:
            self._ack(mid, ref, e.status, str(e))
        except TwinError as e:
            status = rc.NOT_ACCEPTABLE
            if e.kind == E_NOT_FOUND:
                status = rc.NOT_FOUND
            elif e.kind == E_RIGHTS:
                status = rc.FORBIDDEN
            self._ack(mid, ref, status, str(e))
        except Exception as e:  # never let one request take the client down
            log.error("rpz", "SSR failed: %r" % e)
            self._ack(mid, ref, rc.INTERNAL_SERVER_ERROR, "internal error")

    def _ack(self, mid, ref, op, err, msg=None):
        ref_id = ref if ref is not None else (mid if mid is not None else 0)
        body = {"mid": mid, "op": op}
        if err is None:
            body["msg"] = msg
        else:
            body["err"] = err
        if self.session is not None:
            self.session.publish(self.topics.ack(ref_id), json.dumps(body), 1)

    def _names(self, msg):
        # {} -> all, {"n": x} -> [x], [x, y] or [{"n": x}, ...] -> those
        if msg is None or msg == {}:
            return None
        if isinstance(msg, dict):
            if "n" not in msg:
                raise SsrError(rc.BAD_REQUEST, "property name 'n' missing")
            return [msg["n"]]
        if isinstance(msg, list):
            return [m["n"] if isinstance(m, dict) and "n" in m else m for m in msg]
        raise SsrError(rc.BAD_REQUEST, "msg must be an object or an array")

    def _prop(self, name, right):
        if not isinstance(name, str):
            raise SsrError(rc.BAD_REQUEST, "property name must be a string")
        p = self.twin.get(name)
        if not p.rwx & right:
            raise SsrError(rc.FORBIDDEN, "%s does not allow %s" % (
                name, {R: "read", W: "write", X: "execute"}[right]))
        return p

    def _execute(self, op, msg):
        if op == rc.NOP:
            return None
        if op == rc.READ:
            names = self._names(msg)
            if names is None:
                return [{"n": p.name, "v": p.value} for p in self.twin.props.values()
                        if p.rwx & R]
            out = [{"n": n, "v": self._prop(n, R).value} for n in names]
            return out[0] if isinstance(msg, dict) else out
        if op in (rc.WRITE, rc.UPDATE):
            items = msg if isinstance(msg, list) else [msg]
            todo = []
            for it in items:
                if not isinstance(it, dict) or "n" not in it or "v" not in it:
                    raise SsrError(rc.BAD_REQUEST, "write needs {\"n\", \"v\"}")
                todo.append((self._prop(it["n"], W), it["v"]))
            for p, v in todo:  # all checked first: a bad item changes nothing
                self.twin._check(p, v)
            out = [{"n": p.name, "v": self.twin.write(p, v, "rpz")} for p, v in todo]
            return out if isinstance(msg, list) else out[0]
        if op == rc.EXEC:
            if not isinstance(msg, dict) or "n" not in msg:
                raise SsrError(rc.BAD_REQUEST, "exec needs {\"n\"}")
            p = self._prop(msg["n"], X)
            fn = self.actions.get(p.name)
            if fn is None:
                raise SsrError(rc.NOT_FOUND, "%s has nothing to execute" % p.name)
            return {"n": p.name, "v": fn(msg.get("v"))}
        if op == rc.INFO:
            return self.declaration()
        raise SsrError(rc.FORBIDDEN, "%s is not allowed on this device" % rc.name(op))
