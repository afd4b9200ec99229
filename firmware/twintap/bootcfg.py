# Boot-only configuration work, imported by boot.py and forgotten once the app is built (its
# code and strings go back to the heap):
#   - config.json read and checked (proto/settings.py); sections that fail are left out and
#     the board runs in safe mode, saying why at every boot (instead of crashing);
#   - Tap users provisioned by `twintap provision` ("tap": {"users": ...}) applied once.
import json
import os

from . import forget, log

CONFIG = "config.json"


def _exists(name):
    try:
        os.stat(name)
        return True
    except OSError:
        return False


def load_config(path=CONFIG):
    # -> (configuration to run with, safe-mode reason or None)
    text = None
    for p in (path, path + ".tmp"):  # .tmp alone: power lost between remove and rename
        try:
            with open(p) as f:
                text = f.read()
            break
        except OSError:
            continue
    if text is None:
        return {}, "not provisioned: no config.json (give it one with `twintap provision`)"
    try:
        cfg = json.loads(text)
    except ValueError:
        return {}, "config.json is not valid JSON: running without it"
    from .proto import settings  # boot-only: forgotten again below, its heap comes back

    try:
        found = settings.problems(cfg, _exists)
        if not found:
            return cfg, None
        why = "; ".join("%s.%s: %s" % (s, f, m) for s, f, m in found)
        return settings.sanitize(cfg, found), "config.json: " + why
    finally:
        forget("proto.settings")


def apply_users(tapcfg, cfg):
    # Tap users from `twintap provision` -> the Tap configuration (tap.json), once per key:
    # a password changed later over Tap is not overwritten at the next boot.
    tap = cfg.get("tap")
    # (taken out of the running configuration: applied, they live in tap.json; the copy read
    # from config.json would only hold heap, and derived keys, for as long as the board runs)
    users = tap.pop("users", None) if isinstance(tap, dict) else None
    if not users:
        return 0
    done = tapcfg.d.setdefault("provisioned", {})
    n = 0
    for name, u in users.items():
        key = u["stored"] + u["server"] + u["salt"]
        if done.get(name) == key:
            continue
        gid = 0xFFFF if name == "admin" else 0xFFFE if name == "supervisor" else -1
        g = tapcfg.d["groups"].get(str(gid))
        if g is None:
            for cand in tapcfg.d["groups"].values():
                if cand.get("name") == name:
                    g = cand
        if g is None:
            log.warn("tap", "provisioned user %s: no such group" % name)
            continue
        g["key"] = key
        g["it"] = u["it"]
        g.pop("dflt", None)
        done[name] = key
        n += 1
    if n:
        tapcfg.save()
        log.info("tap", "%d provisioned user key(s) applied" % n)
    return n
