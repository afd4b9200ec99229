# The Tap configuration held by the board (what the IoTize configurator writes over Tap):
# application strings, config version, security options, groups, bundles and ACLs, and the
# variables created over Tap. Board-file entries are built in; changes persist in tap.json.
# TapConfig keeps the data (d, the content of tap.json), save() and the two look-ups every
# request may need (group, locked); the rest of its code is in tap/cfgops.py, imported for one
# call and forgotten after: building it at boot, and the methods for logins and the
# configurator (find_group, create_variable, set_bundle, ...: cfgops.METHODS).
from .. import forget, store

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


class TapConfig:
    def __init__(self, twin, board, path=TAP_FILE):
        self.twin = twin
        self.path = path
        self.d = store.load(path, {}) or {}
        from . import cfgops

        cfgops.load(self, self.d, board)
        forget("tap.cfgops")

    def __getattr__(self, name):
        # the methods of cfgops.METHODS: cfg.create_bundle(bid) -> cfgops.create_bundle(cfg, bid)
        from . import cfgops

        fn = getattr(cfgops, name) if name in cfgops.METHODS else None
        forget("tap.cfgops")
        if fn is None:
            raise AttributeError(name)
        return lambda *a, **kw: fn(self, *a, **kw)

    # the look-ups of every request's guard and of /1025 reads: methods, not cfgops calls
    def group(self, gid):
        return self.d["groups"].get(str(gid))

    def locked(self):
        # configuration needs admin once the admin password is not the factory one
        return "dflt" not in self.d["groups"].get(str(ADMIN), {})

    def save(self):
        store.save(self.path, self.d)
