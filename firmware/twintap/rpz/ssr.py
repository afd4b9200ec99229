# Server-sent requests (spec rapidomize.md, "SSR handling"): one request in, one ack out on
# /ack/{refId}. Read, write/update (all or nothing), execute, info, nop; errors are TwinErrors
# that carry the Rapidomize status to answer with (the twin's own kinds are mapped here).
# The client imports this module for each request and forgets it after.
import json

from .. import log
from ..proto import rpzcodes as rc
from ..ticks import ticks_diff, ticks_ms
from ..twin import E_NOT_FOUND, E_RIGHTS, R, TwinError, W, X

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_STATUS = const(0x20)  # a TwinError kind from here up is a Rapidomize status


def _number(x):
    # an integer from JSON (true and false are not numbers here)
    return isinstance(x, int) and not isinstance(x, bool)


def _plain_ref(ref):
    # a ref names the ack topic's last level: a number, or 1-64 characters that are not
    # MQTT level separators or wildcards
    if _number(ref):
        return True
    return (isinstance(ref, str) and 0 < len(ref) <= 64 and "/" not in ref and "+" not in ref
            and "#" not in ref and "\x00" not in ref)


def answer(c, every, obj, size):
    # the request `obj` (parsed JSON, None if it was not JSON) of `size` bytes for client `c`;
    # every: it came on the topic for every instance of the app
    mid = obj.get("mid") if isinstance(obj, dict) else None
    ref = obj.get("ref") if isinstance(obj, dict) else None
    cfg = c.cfg
    try:
        if size > cfg.get("ssr_max_bytes", 1024):
            raise TwinError(rc.PAYLOAD_TOO_LARGE, "payload above %d bytes"
                            % cfg.get("ssr_max_bytes", 1024))
        # at most ssr_per_s requests in each 1 s window
        now = ticks_ms()
        w = c._window
        if ticks_diff(now, w[0]) >= 1000:
            w[0] = now
            w[1] = 0
        w[1] += 1
        rate = cfg.get("ssr_per_s", 20)
        if w[1] > rate:
            raise TwinError(rc.TOO_MANY_REQUESTS, "more than %d requests/s" % rate)
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
        result = _execute(c, op, obj.get("msg"))
        _ack(c, mid, ref, op, None, result)
    except TwinError as e:
        status = e.kind
        if status < _STATUS:  # the twin's own errors
            status = rc.NOT_ACCEPTABLE
            if e.kind == E_NOT_FOUND:
                status = rc.NOT_FOUND
            elif e.kind == E_RIGHTS:
                status = rc.FORBIDDEN
        _ack(c, mid, ref, status, str(e))
    except Exception as e:  # never let one request take the client down
        log.error("rpz", "SSR failed: %r" % e)
        _ack(c, mid, ref, rc.INTERNAL_SERVER_ERROR, "internal error")


def too_large(c, prefix):
    # A PUBLISH too large to hold (`prefix`: its first bytes): PUBACK it (umqtt never saw
    # it) and answer 0x8D, to the mid when it is among the bytes kept.
    n = 2
    while prefix[n - 1] & 0x80:
        n += 1
    tlen = (prefix[n] << 8) | prefix[n + 1]
    body = n + 2 + tlen
    if prefix[0] & 6:
        c.session.write(bytes((0x40, 2, prefix[body], prefix[body + 1])))
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
    _ack(c, mid, None, rc.PAYLOAD_TOO_LARGE,
         "payload above %d bytes" % c.cfg.get("ssr_max_bytes", 1024))


def _ack(c, mid, ref, op, err, msg=None):
    ref_id = ref if ref is not None else (mid if _number(mid) else 0)
    body = {"mid": mid, "op": op}
    if err is None:
        body["msg"] = msg
    else:
        body["err"] = err
    if c.session is not None:
        c.session.publish(c.topics.ack(ref_id), json.dumps(body), 1)


def _names(msg):
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


def _prop(c, name, right):
    if not isinstance(name, str):
        raise TwinError(rc.BAD_REQUEST, "property name must be a string")
    p = c.twin.get(name)
    if not p.rwx & right:
        raise TwinError(rc.FORBIDDEN, "%s does not allow %s" % (
            name, "read" if right == R else "write" if right == W else "execute"))
    return p


def _execute(c, op, msg):
    twin = c.twin
    if op == rc.NOP:
        return None
    if op == rc.READ:
        names = _names(msg)
        if names is None:
            return [{"n": p.name, "v": p.value} for p in twin.props.values() if p.rwx & R]
        out = [{"n": n, "v": _prop(c, n, R).value} for n in names]
        return out[0] if isinstance(msg, dict) else out
    if op == rc.WRITE or op == rc.UPDATE:
        items = msg if isinstance(msg, list) else [msg]
        todo = []
        for it in items:
            if not isinstance(it, dict) or "n" not in it or "v" not in it:
                raise TwinError(rc.BAD_REQUEST, "write needs {\"n\", \"v\"}")
            todo.append((_prop(c, it["n"], W), it["v"]))
        for p, v in todo:  # all checked first: a bad item changes nothing
            twin._check(p, v)
        out = [{"n": p.name, "v": twin.write(p, v, "rpz")} for p, v in todo]
        return out if isinstance(msg, list) else out[0]
    if op == rc.EXEC:
        if not isinstance(msg, dict) or "n" not in msg:
            raise TwinError(rc.BAD_REQUEST, "exec needs {\"n\"}")
        p = _prop(c, msg["n"], X)
        fn = c.actions.get(p.name)
        if fn is None:
            raise TwinError(rc.NOT_FOUND, "%s has nothing to execute" % p.name)
        return {"n": p.name, "v": fn(msg.get("v"))}
    if op == rc.INFO:
        from .. import forget
        from . import declare

        try:
            return declare.declaration(c)
        finally:
            forget("rpz.declare")
    raise TwinError(rc.FORBIDDEN, "%s is not allowed on this device" % rc.name(op))
