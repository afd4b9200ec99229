# Rapidomize device client (spec rapidomize.md): registration when the declaration changed,
# start-up read of the values the platform holds, events with a persisted monotonically
# increasing seq through a QoS 1 outbox, and SSR handling with acks on /ack/{refId}.
# Runs as one task on the app's loop; every wait has a timeout; reconnects with backoff.
# Heap: options stay in cfg (read where used), the declaration is built when needed and
# dropped, and SSR errors are TwinErrors that carry their Rapidomize status.
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

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_STATE = "rpz.json"  # {"digest": what the platform last accepted}
_DROPPED_ID = const(240)  # Tap variable id of the "events_dropped" counter
_QUIET = ("platform", "system")  # changes that make no event
_WINDOW = const(4)  # QoS 1 events in flight at once
_STATUS = const(0x20)  # a TwinError kind from here up is a Rapidomize status (SSR errors)


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


def _plain_ref(ref):
    # a ref names the ack topic's last level: a number, or 1-64 characters that are not
    # MQTT level separators or wildcards
    if _number(ref):
        return True
    return (isinstance(ref, str) and 0 < len(ref) <= 64 and "/" not in ref and "+" not in ref
            and "#" not in ref and "\x00" not in ref)


def _number(x):
    # an integer from JSON (true and false are not numbers here)
    return isinstance(x, int) and not isinstance(x, bool)


class RpzClient:
    def __init__(self, cfg, twin, attributes, actions=None, location=None):
        self.cfg = cfg
        self.twin = twin
        self.attributes = attributes
        self.actions = actions or {}
        self.location = location or cfg.get("location")
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
        self.ssr_max = cfg.get("ssr_max_bytes", 1024)
        self.outbox = Outbox(cfg.get("outbox_max", 64))
        self.live = []  # QoS 0 events waiting for a connection (bounded, oldest dropped)
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
        self.dropped = twin.add(Prop(_DROPPED_ID, "events_dropped", 0x23, 1, R))
        self.dropped.value = self.outbox.dropped
        twin.subscribe(self._on_change)

    # -- the twin side -------------------------------------------------------------------------
    def _next_mid(self):
        self._mid = (self._mid + 1) & 0x7FFFFFFF
        return self._mid

    def _on_change(self, prop, origin):
        if origin in _QUIET:
            return
        ob = self.outbox
        seq = ob.next_seq()
        payload = json.dumps({"mid": self._next_mid(), "op": rc.WRITE, "msg": {
            "_evt": "change", "n": prop.name, "v": prop.value, "seq": seq, "src": origin}})
        if self.cfg.get("event_qos", 1):
            before = ob.dropped
            ob.add(seq, payload)
            if ob.dropped != before:
                self.twin.write(self.dropped, ob.dropped, "system", False)
        else:
            if len(self.live) >= ob.limit:
                self.live.pop(0)
            self.live.append(payload)
        self._wake.set()

    def declaration(self):
        att = [{"n": k, "v": self.attributes[k]} for k in sorted(self.attributes)]
        prop = []
        by_name = self.twin.by_name
        for n in sorted(by_name):
            p = by_name[n]
            d = {"n": n, "dt": rpz_dt(p.type), "rwx": p.rwx, "v": p.value}
            if p.unit:
                d["u"] = p.unit
            prop.append(d)
        decl = {"att": att, "prop": prop}
        if self.location:
            decl["loc"] = self.location
        return decl

    def digest(self, decl):
        # what registration depends on: attributes, names, types, rights, units, location;
        # sha256 of those lines joined by "\n", fed line by line (no joined copy)
        import binascii
        import hashlib

        h = hashlib.sha256(json.dumps(decl["att"]).encode())
        h.update(b"\n")
        h.update(json.dumps(decl.get("loc")).encode())
        for d in decl["prop"]:
            h.update(("\n%s|%s|%d|%s" % (d["n"], d["dt"], d["rwx"], d.get("u", ""))).encode())
        return binascii.hexlify(h.digest()).decode()

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
            cfg.get("token", ""), cfg.get("keepalive", 30), self.tls,
            self.ssr_max + 512,
        )
        s.on_message = self._on_message
        s.on_puback = self._on_puback
        s.on_oversize = self._on_oversize
        s.wake = self._wake
        self.session = s
        self._inflight = {}
        await s.connect(timeout)
        for t in self.topics.subscriptions():
            await s.subscribe(t, 1, timeout)
        self.connects += 1
        self.online = True
        self.last_error = ""
        log.info("rpz", "online as %s" % self.topics.client_id)
        await self._declare()
        if not self.synced:
            await self._take_platform_values()
            self.synced = True
        await self._send_loop(s)

    async def _declare(self):
        # Register when the declaration differs from the one the platform last accepted.
        # It goes out as JSON text and is not kept: only its digest is.
        decl = self.declaration()
        digest = self.digest(decl)
        state = store.load(_STATE, {}) or {}
        if state.get("digest") == digest:
            if not self.registered:
                log.info("rpz", "declaration unchanged: not registering again")
            self.registered = True
            return
        n = len(decl["prop"])
        mid = self._next_mid()
        body = json.dumps({"mid": mid, "op": rc.PATCH, "msg": decl})
        decl = None  # as text now: the dicts go before the packet is made
        self.session.publish(self.topics.register, body, 1)
        body = None
        resp = await self._reply(mid, rc.PATCH)
        status = resp.get("op", 0)
        if rc.is_error(status) or rc.code_class(status) != 2:
            why = "%s %s" % (rc.dotted(status), resp.get("err", ""))
            raise MqttError("registration refused: " + why)
        state["digest"] = digest
        store.save(_STATE, state)
        log.info("rpz", "registered %d properties" % n)
        self.registered = True

    async def _reply(self, mid, op):
        # send our request `mid` (register, read), queued, and wait for the platform's answer
        ev = asyncio.Event()
        self._pending[mid] = [ev, None]
        try:
            await self.session.flush()
            await asyncio.wait_for_ms(ev.wait(), self.cfg.get("timeout_ms", 10000))
        finally:
            resp = self._pending.pop(mid)[1]
        if resp is None:
            raise MqttError("no answer from the platform to op %d" % op)
        return resp

    async def _take_platform_values(self):
        mid = self._next_mid()
        body = json.dumps({"mid": mid, "op": rc.READ, "msg": {}})
        self.session.publish(self.topics.register, body, 1)
        resp = await self._reply(mid, rc.READ)
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
        topic = self.topics.icapp_event or self.topics.event
        inflight = self._inflight
        while s.connected:
            self._wake.clear()
            while self.live:
                s.publish(topic, self.live.pop(0), 0)
            items = self.outbox.items
            if len(inflight) < _WINDOW and len(items) > len(inflight):
                sent = inflight.values()
                for seq, payload in items:
                    if len(inflight) >= _WINDOW:
                        break
                    if seq not in sent:
                        inflight[s.publish(topic, payload, 1)] = seq
            if s.pipe.tx:
                await s.flush()
            # set by a change, a PUBACK, the session's keepalive ticks (<= 1 s) and its end
            await self._wake.wait()
        raise MqttError(self.last_error or "link lost")

    def _on_puback(self, pid):
        seq = self._inflight.pop(pid, None)
        if seq is not None:
            self.outbox.ack(seq)
            self._wake.set()

    # -- server-sent requests ------------------------------------------------------------------
    def _on_message(self, topic, raw):
        # topic: bytes, as umqtt.simple gives it
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
        # the topic for every instance is the only one without "/cid/"
        self._answer(b"/cid/" not in topic, obj, len(raw))

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
        text = prefix[body:]
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

    def _answer(self, every, obj, size):
        # every: the request came on the topic for every instance of the app
        mid = obj.get("mid") if isinstance(obj, dict) else None
        ref = obj.get("ref") if isinstance(obj, dict) else None
        try:
            if size > self.ssr_max:
                raise TwinError(rc.PAYLOAD_TOO_LARGE, "payload above %d bytes" % self.ssr_max)
            self._count_request()
            if not isinstance(obj, dict) or "op" not in obj:
                raise TwinError(rc.BAD_REQUEST, "not a request object")
            if ref is not None and not _plain_ref(ref):
                ref = None  # it would not make a topic: the ack goes to the mid
                raise TwinError(rc.BAD_REQUEST, "ref must be a number or a plain string")
            if not (mid is None and ref is not None or _number(mid)):
                raise TwinError(rc.BAD_REQUEST, "mid must be a number")
            op = obj["op"]
            if not _number(op) or not rc.NOP <= op <= rc.INFO:
                raise TwinError(rc.BAD_REQUEST, "op is not a request op-code")
            if every and op not in (rc.WRITE, rc.UPDATE, rc.EXEC):
                raise TwinError(rc.FORBIDDEN, "only write and exec are sent to every instance")
            result = self._execute(op, obj.get("msg"))
            self._ack(mid, ref, op, None, result)
        except TwinError as e:
            status = e.kind
            if status < _STATUS:  # the twin's own errors
                status = rc.NOT_ACCEPTABLE
                if e.kind == E_NOT_FOUND:
                    status = rc.NOT_FOUND
                elif e.kind == E_RIGHTS:
                    status = rc.FORBIDDEN
            self._ack(mid, ref, status, str(e))
        except Exception as e:  # never let one request take the client down
            log.error("rpz", "SSR failed: %r" % e)
            self._ack(mid, ref, rc.INTERNAL_SERVER_ERROR, "internal error")

    def _count_request(self):
        # at most ssr_per_s requests in each 1 s window
        now = ticks_ms()
        if ticks_diff(now, self._window_start) >= 1000:
            self._window_start = now
            self._window_count = 0
        self._window_count += 1
        rate = self.cfg.get("ssr_per_s", 20)
        if self._window_count > rate:
            raise TwinError(rc.TOO_MANY_REQUESTS, "more than %d requests/s" % rate)

    def _ack(self, mid, ref, op, err, msg=None):
        ref_id = ref if ref is not None else (mid if _number(mid) else 0)
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
                raise TwinError(rc.BAD_REQUEST, "property name 'n' missing")
            return [msg["n"]]
        if isinstance(msg, list):
            return [m["n"] if isinstance(m, dict) and "n" in m else m for m in msg]
        raise TwinError(rc.BAD_REQUEST, "msg must be an object or an array")

    def _prop(self, name, right):
        if not isinstance(name, str):
            raise TwinError(rc.BAD_REQUEST, "property name must be a string")
        p = self.twin.get(name)
        if not p.rwx & right:
            raise TwinError(rc.FORBIDDEN, "%s does not allow %s" % (
                name, "read" if right == R else "write" if right == W else "execute"))
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
        if op == rc.WRITE or op == rc.UPDATE:
            items = msg if isinstance(msg, list) else [msg]
            todo = []
            for it in items:
                if not isinstance(it, dict) or "n" not in it or "v" not in it:
                    raise TwinError(rc.BAD_REQUEST, "write needs {\"n\", \"v\"}")
                todo.append((self._prop(it["n"], W), it["v"]))
            for p, v in todo:  # all checked first: a bad item changes nothing
                self.twin._check(p, v)
            out = [{"n": p.name, "v": self.twin.write(p, v, "rpz")} for p, v in todo]
            return out if isinstance(msg, list) else out[0]
        if op == rc.EXEC:
            if not isinstance(msg, dict) or "n" not in msg:
                raise TwinError(rc.BAD_REQUEST, "exec needs {\"n\"}")
            p = self._prop(msg["n"], X)
            fn = self.actions.get(p.name)
            if fn is None:
                raise TwinError(rc.NOT_FOUND, "%s has nothing to execute" % p.name)
            return {"n": p.name, "v": fn(msg.get("v"))}
        if op == rc.INFO:
            return self.declaration()
        raise TwinError(rc.FORBIDDEN, "%s is not allowed on this device" % rc.name(op))
