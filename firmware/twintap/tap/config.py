# The Tap configuration held by the board (what the IoTize configurator writes over Tap):
# application strings, config version, security options, groups, bundles and ACLs, and the
# variables created over Tap. Board-file entries are built in; changes persist in tap.json.
from .. import store
from ..proto import values
from ..twin import Bundle, Prop, parse_rwx

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


TAP_FILE = "tap.json"
ANONYMOUS = const(0)
ADMIN = const(0xFFFF)
SUPERVISOR = const(0xFFFE)
IN_PROGRESS = "255.255.65535"
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


def _group_id(who):
    # a board file's group name ("admin") -> its id; anything else passes through
    if who == "anonymous":
        return ANONYMOUS
    if who == "admin":
        return ADMIN
    if who == "supervisor":
        return SUPERVISOR
    return who


def _rights(text):
    # "rw" -> 3 (bit1 write, bit0 read)
    return (2 if "w" in text else 0) | (1 if "r" in text else 0)


def _default_groups():
    return {
        str(ANONYMOUS): {"name": "anonymous", "lifetime": 0, "alias": ANONYMOUS},
        str(ADMIN): {"name": "admin", "lifetime": 30, "alias": ADMIN},
        str(SUPERVISOR): {"name": "supervisor", "lifetime": 30, "alias": SUPERVISOR},
    }


class TapConfig:
    def __init__(self, twin, board, path=TAP_FILE):
        self.twin = twin
        self.board = board
        self.path = path
        d = store.load(path, {}) or {}
        self.d = d
        d.setdefault("app_name", board.get("app_name", "twintap"))
        d.setdefault("config_version", "1.0.0")
        d.setdefault("strings", {})  # resource id (str) -> ascii value
        d.setdefault("app_data", "")  # hex
        d.setdefault("security", 0)
        d.setdefault("config_format", 1)
        d.setdefault("groups", _default_groups())
        for gid, key in _DEFAULT_KEYS:
            g = d["groups"].get(str(gid))
            if g is not None and "key" not in g:
                g.update({"key": key, "it": _ITERATIONS, "dflt": 1})
        d.setdefault("iterations", _ITERATIONS)
        d.setdefault("bundles", {})  # id (str) -> {name, acl {gid: rights}, period}
        d.setdefault("variables", {})  # id (str) -> declaration of a variable made over Tap
        d.setdefault("meta", {})  # id (str) -> {name, unit} overrides of built-in variables
        self._build()

    def _build(self):
        tw = self.twin
        for b in self.board.get("bundles", ()):
            acl = {}
            for who, r in b.get("acl", {}).items():
                acl[_group_id(who)] = _rights(r)
            tw.bundles[b["id"]] = Bundle(b["id"], b.get("name", ""), acl, 0, True)
        for sid, b in self.d["bundles"].items():
            bid = int(sid)
            old = tw.bundles.get(bid)
            bundle = Bundle(bid, b.get("name", ""), {}, b.get("period", 0), old and old.builtin)
            for g, r in b.get("acl", {}).items():
                bundle.acl[int(g)] = r
            tw.bundles[bid] = bundle
        for sid, v in self.d["variables"].items():
            tw.add(self.make_variable(int(sid), v))
        for sid, m in self.d["meta"].items():
            p = tw.props.get(int(sid))
            if p is not None:
                tw.rename(p, m["name"])
                p.unit = m.get("unit", "")

    def make_variable(self, vid, v):
        t = v.get("type", values.UINT8)
        domain = v.get("domain", values.DOMAIN_VOLATILE)
        return Prop(
            vid, v.get("name") or ("var%d" % vid), t, v.get("count", 1),
            parse_rwx(v.get("rwx", "rw")), v.get("unit", ""), v.get("bundle", 0),
            domain == values.DOMAIN_STATIC, None, False, None, domain, v.get("address", 0),
        )

    def save(self):
        store.save(self.path, self.d)

    def factory_reset(self):
        store.remove(self.path)

    # -- variables made over Tap -------------------------------------------------------------
    def variable_decl(self, prop):
        # the stored declaration of a Tap-made variable (None for built-in ones)
        return self.d["variables"].get(str(prop.id))

    def create_variable(self, vid):
        p = self.twin.props.get(vid)
        if p is not None and p.builtin:
            return None
        decl = {"type": values.UINT8, "count": 1, "bundle": 0, "name": "var%d" % vid}
        self.d["variables"][str(vid)] = decl
        p = self.twin.add(self.make_variable(vid, decl))
        self.save()
        return p

    def update_variable(self, prop, **kw):
        decl = self.variable_decl(prop)
        if decl is not None:
            decl.update(kw)
        elif "name" in kw or "unit" in kw:
            self.d["meta"][str(prop.id)] = {"name": prop.name, "unit": prop.unit}
        self.save()

    # -- bundles -----------------------------------------------------------------------------
    def bundle_entry(self, bundle):
        e = self.d["bundles"].get(str(bundle.id))
        if e is None:
            e = {"name": bundle.name, "acl": {}, "period": bundle.period}
            for g, r in bundle.acl.items():
                e["acl"][str(g)] = r
            self.d["bundles"][str(bundle.id)] = e
        return e

    def create_bundle(self, bid):
        b = self.twin.bundles.get(bid)
        if b is None:
            b = Bundle(bid)
            self.twin.bundles[bid] = b
        self.bundle_entry(b)
        self.save()
        return b

    def set_bundle(self, bundle, name=None, period=None, acl=None):
        e = self.bundle_entry(bundle)
        if name is not None:
            bundle.name = e["name"] = name
        if period is not None:
            bundle.period = e["period"] = period
        if acl is not None:
            g, r = acl
            bundle.acl[g] = r
            e["acl"][str(g)] = r
        self.save()

    # -- groups ------------------------------------------------------------------------------
    def group(self, gid):
        return self.d["groups"].get(str(gid))

    def find_group(self, name):
        # group id of the user called `name` (bytes or str), or None
        if isinstance(name, bytes):
            try:
                name = name.decode()
            except UnicodeError:
                return None
        for sid, g in self.d["groups"].items():
            if g.get("name") == name and name:
                return int(sid)
        return None

    def locked(self):
        # Configuration needs admin once the admin password is not the factory one
        return "dflt" not in self.d["groups"].get(str(ADMIN), {})

    def create_group(self, gid):
        g = self.group(gid)
        if g is None:
            g = {"name": "", "lifetime": 0, "alias": gid}
            self.d["groups"][str(gid)] = g
            self.save()
        return g
