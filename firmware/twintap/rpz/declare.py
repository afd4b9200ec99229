# What the device declares to the platform (spec rapidomize.md, "Registration" and "Reading
# declared properties"): attributes, properties and location; their digest; the PATCH sent
# when that digest differs from the one the platform last accepted (persisted in rpz.json);
# the start-up READ of the values the platform holds. Work done once per connection (and for
# an INFO request): the client imports this module for it and forgets it after.
import asyncio
import json

from .. import log, store
from ..proto import rpzcodes as rc
from ..twin import TwinError, W, rpz_dt
from .mqtt import MqttError

_STATE = "rpz.json"  # {"digest": what the platform last accepted}


def declaration(c):
    # the declaration of client `c`, as the dicts a PATCH or an INFO ack carries
    att = [{"n": k, "v": c.attributes[k]} for k in sorted(c.attributes)]
    prop = []
    by_name = c.twin.by_name
    for n in sorted(by_name):
        p = by_name[n]
        d = {"n": n, "dt": rpz_dt(p.type), "rwx": p.rwx, "v": p.value}
        if p.unit:
            d["u"] = p.unit
        prop.append(d)
    decl = {"att": att, "prop": prop}
    loc = c.cfg.get("location")
    if loc:
        decl["loc"] = loc
    return decl


def digest(decl):
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


async def _reply(c, mid, op):
    # send our request `mid` (register, read), queued, and wait for the platform's answer,
    # which the client's _on_message hands over by its mid -> the answer (a dict)
    p = c._pending = [mid, asyncio.Event(), None]
    try:
        await c.session.flush()
        await asyncio.wait_for_ms(p[1].wait(), c.cfg.get("timeout_ms", 10000))
    finally:
        c._pending = None
    if p[2] is None:
        raise MqttError("no answer from the platform to op %d" % op)
    return p[2]


async def register(c):
    # Register when the declaration differs from the one the platform last accepted.
    # It goes out as JSON text and is not kept: only its digest is.
    decl = declaration(c)
    dg = digest(decl)
    state = store.load(_STATE, {}) or {}
    if state.get("digest") == dg:
        if not c.registered:
            log.info("rpz", "declaration unchanged: not registering again")
        c.registered = True
        return
    n = len(decl["prop"])
    mid = c._next_mid()
    body = json.dumps({"mid": mid, "op": rc.PATCH, "msg": decl})
    decl = None  # as text now: the dicts go before the packet is made
    c.session.publish(c.topics.register, body, 1)
    body = None
    resp = await _reply(c, mid, rc.PATCH)
    status = resp.get("op", 0)
    if rc.is_error(status) or rc.code_class(status) != 2:
        why = "%s %s" % (rc.dotted(status), resp.get("err", ""))
        raise MqttError("registration refused: " + why)
    state["digest"] = dg
    store.save(_STATE, state)
    log.info("rpz", "registered %d properties" % n)
    c.registered = True


async def take_platform_values(c):
    mid = c._next_mid()
    c.session.publish(c.topics.register, json.dumps({"mid": mid, "op": rc.READ, "msg": {}}), 1)
    resp = await _reply(c, mid, rc.READ)
    items = resp.get("msg")
    if rc.code_class(resp.get("op", 0)) != 2 or not isinstance(items, list):
        return
    for it in items:
        try:
            p = c.twin.get(it["n"])
            if p.rwx & W and "v" in it and it["v"] is not None:
                c.twin.write(p, it["v"], "platform")
        except (TwinError, KeyError, TypeError) as e:
            log.warn("rpz", "platform value ignored: %s" % e)
