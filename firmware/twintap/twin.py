# The twin: one store of named, typed properties. Tap variables and Rapidomize properties
# are views of the same entries; every write, from any side, goes through Twin.write (type,
# range and rights checks), persists what must survive a reboot, drives the output behind
# the property, and tells every subscriber (origin: "tap", "rpz", "sensor", "config").
from . import store
from .proto import values

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


R = const(4)
W = const(2)
X = const(1)

# error kinds a TwinError carries; tap/ and rpz/ map them to their own codes
E_NOT_FOUND = const(1)
E_RIGHTS = const(2)
E_VALUE = const(3)
E_LOCKED = const(4)

VALUES_FILE = "twin.json"


class TwinError(Exception):
    def __init__(self, kind, msg):
        super().__init__(msg)
        self.kind = kind


def parse_rwx(text):
    # "rw" -> 6; an int passes through
    if isinstance(text, int):
        return text & 7
    return (R if "r" in text else 0) | (W if "w" in text else 0) | (X if "x" in text else 0)


# Rapidomize data types (spec rapidomize.md, "Registration")
def rpz_dt(t):
    if t == values.BOOLEAN:
        return "boolean"
    if t == values.FLOAT32:
        return "float"
    if t == values.ASCII:
        return "string"
    return "int"


class Prop:
    # What most properties share is kept here, on the class: an instance holds only id, name,
    # type, rights, value and what differs from these (a smaller attribute dict per property).
    count = 1
    unit = ""
    bundle = 0
    persist = False
    source = None  # platform source: .read() and/or .write(v)
    builtin = False  # declared by the board file: type and count are fixed
    address = 0
    domain = values.DOMAIN_VOLATILE
    sample_ms = 0
    deadband = 0

    def __init__(self, pid, name, t, count=1, rwx=R, unit="", bundle=0, persist=False,
                 source=None, builtin=False, value=None, domain=None, address=0):
        self.id = pid
        self.name = name
        self.type = t
        self.rwx = rwx
        if count != 1:
            self.count = count
        if unit:
            self.unit = unit
        if bundle:
            self.bundle = bundle
        if persist:
            self.persist = persist
        if source is not None:
            self.source = source
        if builtin:
            self.builtin = builtin
        if address:
            self.address = address
        if domain is None:
            domain = values.DOMAIN_STATIC if persist else values.DOMAIN_VOLATILE
        if domain != values.DOMAIN_VOLATILE:
            self.domain = domain
        self.value = self.default() if value is None else value

    def default(self):
        if self.type == values.ASCII:
            return ""
        if self.type == values.BOOLEAN:
            v = False
        elif self.type == values.FLOAT32:
            v = 0.0
        else:
            v = 0
        return v if self.count == 1 else [v] * self.count

    def raw(self):
        return values.encode(self.type, self.value, self.count)

    def type_byte(self):
        return values.type_byte(self.domain, self.type)


class Bundle:
    name = ""
    period = 0  # data-log period, ms
    builtin = False

    def __init__(self, bid, name="", acl=None, period=0, builtin=False):
        self.id = bid
        self.acl = acl if acl is not None else {}  # group id -> rights bits (2 write, 1 read)
        if name:
            self.name = name
        if period:
            self.period = period
        if builtin:
            self.builtin = builtin


class Twin:
    def __init__(self, path=VALUES_FILE):
        self.path = path
        self.props = {}  # id -> Prop
        self.by_name = {}
        self.bundles = {}  # id -> Bundle
        self._subs = []
        self._saved = store.load(path, {}) or {}

    # -- declaration -----------------------------------------------------------------------
    def add(self, prop):
        old = self.props.get(prop.id)
        if old is not None:
            self.by_name.pop(old.name, None)
        saved = self._saved.get(prop.name) if prop.persist else None
        if saved is not None:
            try:
                prop.value = self._check(prop, saved)
            except TwinError:
                pass  # a stored value that no longer fits the declaration: keep the default
        self.props[prop.id] = prop
        self.by_name[prop.name] = prop
        if prop.source is not None and hasattr(prop.source, "write"):
            prop.source.write(prop.value)
        return prop

    def rename(self, prop, name):
        if name != prop.name and name in self.by_name:
            raise TwinError(E_VALUE, "name %r is taken" % name)
        self.by_name.pop(prop.name, None)
        prop.name = name
        self.by_name[name] = prop

    def subscribe(self, fn):
        # fn(prop, origin) after every change of value
        self._subs.append(fn)

    # -- access ----------------------------------------------------------------------------
    def get(self, key):
        p = self.props.get(key) if isinstance(key, int) else self.by_name.get(key)
        if p is None:
            raise TwinError(E_NOT_FOUND, "no property %r" % (key,))
        return p

    def _check(self, prop, value):
        try:
            if prop.count > 1 and prop.type != values.ASCII:
                if not isinstance(value, list) or len(value) != prop.count:
                    raise ValueError("%d values expected" % prop.count)
                return [values.check(prop.type, v) for v in value]
            v = values.check(prop.type, value)
            if prop.type == values.ASCII and len(v) > prop.count:
                raise ValueError("longer than %d characters" % prop.count)
            if prop.type == values.FLOAT32:
                # float32 precision, kept as the shortest decimal that gives it back
                v = float("%.7g" % values.decode(prop.type, values.encode(prop.type, v)))
            return v
        except ValueError as e:
            raise TwinError(E_VALUE, "%s: %s" % (prop.name, e))

    def write(self, prop, value, origin, check_rights=True):
        # Validate, store, persist, drive the output, notify. Returns the stored value.
        if check_rights and not prop.rwx & W:
            raise TwinError(E_RIGHTS, "%s is not writable" % prop.name)
        v = self._check(prop, value)
        changed = v != prop.value
        prop.value = v
        if prop.source is not None and hasattr(prop.source, "write"):
            prop.source.write(v)
        if prop.persist and changed:
            self.save()
        if changed:
            for fn in self._subs:
                fn(prop, origin)
        return v

    def write_raw(self, prop, raw, origin, check_rights=True):
        if check_rights and not prop.rwx & W:
            raise TwinError(E_RIGHTS, "%s is not writable" % prop.name)
        try:
            v = values.decode(prop.type, raw, prop.count)
        except ValueError as e:  # DecodeError is a ValueError
            raise TwinError(E_VALUE, "%s: %s" % (prop.name, e))
        return self.write(prop, v, origin, check_rights)

    def sample(self, prop, value):
        # A sensor reading: stored and published only beyond the property's deadband.
        if prop.type == values.FLOAT32 or prop.deadband:
            try:
                if abs(value - prop.value) < prop.deadband:
                    return False
            except TypeError:
                pass
        if value == prop.value:
            return False
        self.write(prop, value, "sensor", check_rights=False)
        return True

    def save(self):
        data = {}
        for p in self.props.values():
            if p.persist:
                data[p.name] = p.value
        self._saved = data
        store.save(self.path, data)

    def reset_values(self):
        # factory reset: stored values go, declared defaults come back
        store.remove(self.path)
        self._saved = {}
