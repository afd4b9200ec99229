# The Tap configuration, its code (tap/config.py keeps the data): at boot, the defaults of
# tap.json, the built-in default credentials, and the twin's bundles, variables and names that
# the board file and tap.json declare; later, the look-ups of logins and the configurator's
# edits (METHODS), which TapConfig offers as its methods (cfg.create_bundle(bid) is
# create_bundle(cfg, bid)). tap/config.py imports this module for one call and forgets it
# after: logins and configuration writes are rare next to the reads of values.
from .. import store
from ..proto import values
from ..twin import Bundle, Prop, parse_rwx
from .config import ADMIN, ANONYMOUS, SUPERVISOR

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# SCRAM iterations for new passwords (/1024//42), the configurator's default
_ITERATIONS = const(5000)
# Default credentials admin/admin and supervisor/supervisor as SCRAM keys (storedKey |
# serverKey | salt, 5000 iterations), never as passwords: the keys of IoTize's own demo
# configuration (spec tap-background.md section 12), so a board boots without deriving them.
# "dflt" marks a password nobody has changed yet (see TapConfig.locked).
_DEFAULT_KEYS = (
    (ADMIN, "f19305e204de9a184f165df4e94cdd03639a531e0eded1662324f5ec9bacd215ce90def2"),
    (SUPERVISOR, "4417ec1a647ae1fbea8dcfb42103694bbfb6a89ee10300c34f1ac7c7272890751db80cb7"),
)
# a board file's group names -> ids
_GROUPS = {"anonymous": ANONYMOUS, "admin": ADMIN, "supervisor": SUPERVISOR}


def load(cfg, d, board):
    # tap.json's content `d` (or {}) -> with its defaults; then the twin built from it
    d.setdefault("app_name", board.get("app_name", "twintap"))
    d.setdefault("config_version", "1.0.0")
    d.setdefault("strings", {})  # resource id (str) -> ascii value
    d.setdefault("app_data", "")  # hex
    d.setdefault("security", 0)
    d.setdefault("config_format", 1)
    if "groups" not in d:
        d["groups"] = {
            str(ANONYMOUS): {"name": "anonymous", "lifetime": 0, "alias": ANONYMOUS},
            str(ADMIN): {"name": "admin", "lifetime": 30, "alias": ADMIN},
            str(SUPERVISOR): {"name": "supervisor", "lifetime": 30, "alias": SUPERVISOR},
        }
    groups = d["groups"]
    for gid, key in _DEFAULT_KEYS:
        g = groups.get(str(gid))
        if g is not None and "key" not in g:
            g.update({"key": key, "it": _ITERATIONS, "dflt": 1})
    d.setdefault("iterations", _ITERATIONS)
    d.setdefault("bundles", {})  # id (str) -> {name, acl {gid: rights}, period}
    d.setdefault("variables", {})  # id (str) -> declaration of a variable made over Tap
    d.setdefault("meta", {})  # id (str) -> {name, unit} overrides of built-in variables
    tw = cfg.twin
    for b in board.get("bundles", ()):
        acl = {}
        for who, r in b.get("acl", {}).items():
            # "rw" -> 3 (bit1 write, bit0 read)
            acl[_GROUPS.get(who, who)] = (2 if "w" in r else 0) | (1 if "r" in r else 0)
        tw.bundles[b["id"]] = Bundle(b["id"], b.get("name", ""), acl, 0, True)
    for sid, b in d["bundles"].items():
        bid = int(sid)
        old = tw.bundles.get(bid)
        bundle = Bundle(bid, b.get("name", ""), {}, b.get("period", 0), old and old.builtin)
        for g, r in b.get("acl", {}).items():
            bundle.acl[int(g)] = r
        tw.bundles[bid] = bundle
    for sid, v in d["variables"].items():
        tw.add(make_variable(int(sid), v))
    for sid, m in d["meta"].items():
        p = tw.props.get(int(sid))
        if p is not None:
            tw.rename(p, m["name"])
            p.unit = m.get("unit", "")


def make_variable(vid, v):
    # a stored declaration -> the twin's Prop
    t = v.get("type", values.UINT8)
    domain = v.get("domain", values.DOMAIN_VOLATILE)
    return Prop(
        vid, v.get("name") or ("var%d" % vid), t, v.get("count", 1),
        parse_rwx(v.get("rwx", "rw")), v.get("unit", ""), v.get("bundle", 0),
        domain == values.DOMAIN_STATIC, None, False, None, domain, v.get("address", 0),
    )


# -- TapConfig's methods ------------------------------------------------------------------------
METHODS = (
    "find_group", "variable_decl", "create_variable", "update_variable",
    "bundle_entry", "create_bundle", "set_bundle", "create_group", "factory_reset",
)


def find_group(cfg, name):
    # group id of the user called `name` (bytes or str), or None
    if isinstance(name, bytes):
        try:
            name = name.decode()
        except UnicodeError:
            return None
    for sid, g in cfg.d["groups"].items():
        if g.get("name") == name and name:
            return int(sid)
    return None


def factory_reset(cfg):
    store.remove(cfg.path)


def variable_decl(cfg, prop):
    # the stored declaration of a Tap-made variable (None for built-in ones)
    return cfg.d["variables"].get(str(prop.id))


def create_variable(cfg, vid):
    p = cfg.twin.props.get(vid)
    if p is not None and p.builtin:
        return None
    decl = {"type": values.UINT8, "count": 1, "bundle": 0, "name": "var%d" % vid}
    cfg.d["variables"][str(vid)] = decl
    p = cfg.twin.add(make_variable(vid, decl))
    cfg.save()
    return p


def update_variable(cfg, prop, **kw):
    decl = variable_decl(cfg, prop)
    if decl is not None:
        decl.update(kw)
    elif "name" in kw or "unit" in kw:
        cfg.d["meta"][str(prop.id)] = {"name": prop.name, "unit": prop.unit}
    cfg.save()


def bundle_entry(cfg, bundle):
    e = cfg.d["bundles"].get(str(bundle.id))
    if e is None:
        e = {"name": bundle.name, "acl": {}, "period": bundle.period}
        for g, r in bundle.acl.items():
            e["acl"][str(g)] = r
        cfg.d["bundles"][str(bundle.id)] = e
    return e


def create_bundle(cfg, bid):
    b = cfg.twin.bundles.get(bid)
    if b is None:
        b = Bundle(bid)
        cfg.twin.bundles[bid] = b
    bundle_entry(cfg, b)
    cfg.save()
    return b


def set_bundle(cfg, bundle, name=None, period=None, acl=None):
    e = bundle_entry(cfg, bundle)
    if name is not None:
        bundle.name = e["name"] = name
    if period is not None:
        bundle.period = e["period"] = period
    if acl is not None:
        g, r = acl
        bundle.acl[g] = r
        e["acl"][str(g)] = r
    cfg.save()


def create_group(cfg, gid):
    g = cfg.group(gid)
    if g is None:
        g = {"name": "", "lifetime": 0, "alias": gid}
        cfg.d["groups"][str(gid)] = g
        cfg.save()
    return g
