# What the device declares to the platform (spec rapidomize.md, "Registration" and "Reading
# declared properties"): attributes, properties and location; their digest; the PATCH sent
# when that digest differs from the one the platform last accepted (persisted in rpz.json);
# the start-up READ of the values the platform holds for the writable properties. Work done
# once per connection (and for an INFO request): the client imports this module for it and
# forgets it after.
# No more than 12 module globals (their table then needs no larger block): this module comes
# into a busy heap.
import json

from .. import log, twin
from ..proto import rpzcodes as rc


def declaration(c, prop=None):
    # the declaration of client `c`, as the dicts a PATCH or an INFO ack carries; `prop`, if
    # given, stands in for the list of the properties' dicts
    att = [{"n": k, "v": c.attributes[k]} for k in sorted(c.attributes)]
    decl = {"att": att, "prop": list(_props(c)) if prop is None else prop}
    loc = c.cfg.get("location")
    if loc:
        decl["loc"] = loc
    return decl


def _props(c):
    # the properties' dicts, made one at a time
    by_name = c.twin.by_name
    for n in sorted(by_name):
        p = by_name[n]
        d = {"n": n, "dt": twin.rpz_dt(p.type), "rwx": p.rwx, "v": p.value}
        if p.unit:
            d["u"] = p.unit
        yield d


def digest(decl, prop=None):
    # what registration depends on: attributes, names, types, rights, units, location;
    # sha256 of those lines joined by "\n", fed line by line (no joined copy). `prop`: the
    # properties' dicts, if not those of decl.
    import binascii
    import hashlib

    h = hashlib.sha256(json.dumps(decl["att"]).encode())
    h.update(b"\n")
    h.update(json.dumps(decl.get("loc")).encode())
    for d in decl["prop"] if prop is None else prop:
        h.update(("\n%s|%s|%d|%s" % (d["n"], d["dt"], d["rwx"], d.get("u", ""))).encode())
    return binascii.hexlify(h.digest()).decode()


async def _reply(c, mid, op):
    # send our request `mid` (register, read), queued, and wait for the platform's answer,
    # which the client's _on_message hands over by its mid -> the answer (a dict)
    import asyncio

    p = c._pending = [mid, asyncio.Event(), None]
    try:
        await c.session.flush()
        await asyncio.wait_for_ms(p[1].wait(), c.cfg.get("timeout_ms", 10000))
    finally:
        c._pending = None
    if p[2] is None:
        from .mqtt import MqttError

        raise MqttError("no answer from the platform to op %d" % op)
    return p[2]


def _patch(c, state):
    # Queue the PATCH when the declaration differs from the one the platform last accepted
    # (`state`) -> (its mid or None, the number of properties, the digest). It goes out as JSON
    # text and is not kept: only its digest is. Not a coroutine: what it makes goes with this
    # frame (a coroutine's frame can hold it in its stack slots until the coroutine ends).
    # No large block for the text, nor the properties' dicts all at once: each dict is
    # written (json.dumps: its text as in the whole) as the digest takes it, then dropped; the
    # rest of the text is json.dumps' own with a mark in place of the list of properties.
    decl = declaration(c, "\0")
    parts = []

    def each():
        for d in _props(c):
            parts.append((", " if parts else "[") + json.dumps(d))
            yield d

    dg = digest(decl, each())
    if state.get("digest") == dg:
        return None, 0, dg
    c._mid = mid = (c._mid + 1) & 0x7FFFFFFF
    obj = {"mid": mid, "op": rc.PATCH, "msg": decl}
    head = json.dumps(obj)
    n = len(parts)

    class _Text(list):
        # JSON text as a list of pieces (str), which Session.write sends one after the other;
        # its len() is that of the whole text in bytes, as umqtt.simple's publish() needs it
        def __len__(self):
            return self.n

    t = _Text()
    i = head.find('"\\u0000"')
    if head.count('"\\u0000"') == 1:
        t.append(head[:i])
        t.extend(parts or ["["])
        t.append("]" + head[i + 8 :])
    else:  # a NUL in an attribute too: the text whole
        parts = None
        decl["prop"] = list(_props(c))
        t.append(json.dumps(obj))
    head = obj = decl = parts = None
    t.n = sum(len(x.encode()) for x in t)
    c.session.publish(c.topics.register, t, 1)
    return mid, n, dg


async def start(c):
    # Register when the declaration differs from the one the platform last accepted; then,
    # once after boot, take the values the platform holds.
    from .. import store

    state = store.load("rpz.json", {}) or {}  # {"digest": what the platform last accepted}
    mid, n, dg = _patch(c, state)
    if mid is None:
        if not c.registered:
            log.info("rpz", "declaration unchanged: not registering again")
    else:
        resp = await _reply(c, mid, rc.PATCH)
        status = resp.get("op", 0)
        if rc.is_error(status) or rc.code_class(status) != 2:
            why = "%s %s" % (rc.dotted(status), resp.get("err", ""))
            from .mqtt import MqttError

            raise MqttError("registration refused: " + why)
        state["digest"] = dg
        store.save("rpz.json", state)
        log.info("rpz", "registered %d properties" % n)
    c.registered = True
    # the values the platform holds for the properties it may set: asked by name (a READ of
    # `[names]`), so that the answer carries no value this board would not take
    names = [n for n, p in c.twin.by_name.items() if p.rwx & twin.W]
    if c.synced or not names:
        c.synced = True
        return
    c._mid = mid = (c._mid + 1) & 0x7FFFFFFF
    msg = json.dumps({"mid": mid, "op": rc.READ, "msg": names})
    names = None
    c.session.publish(c.topics.register, msg, 1)
    msg = None
    resp = await _reply(c, mid, rc.READ)
    items = resp.get("msg")
    if rc.code_class(resp.get("op", 0)) == 2 and isinstance(items, list):
        for it in items:
            try:
                p = c.twin.get(it["n"])
                if p.rwx & twin.W and "v" in it and it["v"] is not None:
                    c.twin.write(p, it["v"], "platform")
            except (twin.TwinError, KeyError, TypeError) as e:
                log.warn("rpz", "platform value ignored: %s" % e)
    c.synced = True
