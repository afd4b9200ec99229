# The board's configuration (config.json) checked field by field: the board runs this at
# every boot (a section that fails is left out and the board says why: safe mode) and the
# host runs it before `twintap provision` writes anything. Pure, both interpreters.
#   {"wifi": {"ssid", "password"},
#    "rpz": {"broker", "app_id", "client_id", "username", "token", "ca", ...},
#    "tap": {"users": {NAME: {"stored", "server", "salt", "it"}}, ...},
#    "properties": [...]}
# problems(cfg) -> list of (section, field, message); messages never quote a secret.

SECTIONS = ("wifi", "rpz", "tap", "properties")
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
_HEX = "0123456789abcdef"
_INTS = ("keepalive", "outbox_max", "ssr_max_bytes", "ssr_per_s", "backoff_min_ms",
         "backoff_max_ms", "timeout_ms")


def check_id(value, what, limit=64):
    # app and client ids: one topic level, letters, digits, '-', '_', '.'
    if not isinstance(value, str) or not value:
        return what + " is empty"
    if len(value) > limit:
        return "%s is longer than %d characters" % (what, limit)
    for c in value:
        if c not in _ID_CHARS:
            return "%s has %r: only letters, digits, '-', '_' and '.' are allowed" % (what, c)
    return None


def parse_broker(url):
    # "mqtts://host[:port]" -> (host, port, tls); ValueError with the reason otherwise
    if not isinstance(url, str):
        raise ValueError("broker URL is not text")
    if url.startswith("mqtts://"):
        rest, tls, port = url[8:], True, 8883
    elif url.startswith("mqtt://"):
        rest, tls, port = url[7:], False, 1883
    else:
        raise ValueError("broker URL must be mqtt://host[:port] or mqtts://host[:port]")
    if rest.endswith("/"):
        rest = rest[:-1]
    if "/" in rest or "@" in rest or " " in rest:
        raise ValueError("broker URL takes a host and a port only")
    host = rest
    if rest.startswith("["):  # [IPv6]:port
        end = rest.find("]")
        if end < 0:
            raise ValueError("broker URL has an unclosed '['")
        host, tail = rest[1:end], rest[end + 1 :]
        if tail:
            if not tail.startswith(":"):
                raise ValueError("broker URL has junk after the address")
            port = _port(tail[1:])
    elif ":" in rest:
        host, p = rest.rsplit(":", 1)
        port = _port(p)
    if not host:
        raise ValueError("broker URL has no host")
    return host, port, tls


def _port(text):
    try:
        p = int(text)
    except ValueError:
        raise ValueError("broker port %r is not a number" % text)
    if not 0 < p < 65536:
        raise ValueError("broker port %d is out of range" % p)
    return p


def _is_hex(v, nbytes):
    if not isinstance(v, str) or len(v) != 2 * nbytes:
        return False
    for c in v.lower():
        if c not in _HEX:
            return False
    return True


def check_user(name, u):
    # a provisioned Tap user: SCRAM keys, never a password
    if not isinstance(u, dict):
        return "tap user %s is not an object" % name
    if not _is_hex(u.get("stored"), 16) or not _is_hex(u.get("server"), 16):
        return "tap user %s needs 'stored' and 'server' as 32 hex digits" % name
    if not _is_hex(u.get("salt"), 4) or u["salt"] == "00000000":
        return "tap user %s needs a non-zero 4-byte 'salt' in hex" % name
    it = u.get("it")
    if not isinstance(it, int) or not 1 <= it <= 100000:
        return "tap user %s needs 'it' (iterations) between 1 and 100000" % name
    return None


def _wifi(w, out):
    if not isinstance(w, dict):
        out.append(("wifi", "wifi", "not an object"))
        return
    ssid = w.get("ssid")
    if not isinstance(ssid, str) or not ssid:
        out.append(("wifi", "ssid", "the Wi-Fi SSID is missing"))
    elif len(ssid.encode()) > 32:
        out.append(("wifi", "ssid", "a Wi-Fi SSID is at most 32 bytes"))
    pw = w.get("password", "")
    if not isinstance(pw, str):
        out.append(("wifi", "password", "the Wi-Fi password is not text"))
    elif pw and not 8 <= len(pw) <= 64:
        out.append(("wifi", "password", "a WPA password has 8 to 63 characters (64 hex digits)"))


def _rpz(r, out, has_file):
    if not isinstance(r, dict):
        out.append(("rpz", "rpz", "not an object"))
        return
    why = check_id(r.get("app_id"), "the app id")
    if why:
        out.append(("rpz", "app_id", why))
    if r.get("client_id") is not None:
        why = check_id(r.get("client_id"), "the client id")
        if why:
            out.append(("rpz", "client_id", why))
    token = r.get("token")
    if not isinstance(token, str) or not token:
        out.append(("rpz", "token", "the token is missing"))
    elif len(token) > 512 or " " in token:
        out.append(("rpz", "token", "the token has blanks or is too long"))
    user = r.get("username")
    if user is not None and (not isinstance(user, str) or not user or " " in user):
        out.append(("rpz", "username", "the user name is empty or has blanks"))
    tls = True
    try:
        tls = parse_broker(r.get("broker", "mqtts://ics.rapidomize.com"))[2]
    except ValueError as e:
        out.append(("rpz", "broker", str(e)))
    ca = r.get("ca", "ca.der")
    if tls:
        if not isinstance(ca, str) or not ca:
            out.append(("rpz", "ca", "a TLS broker needs a CA certificate file"))
        elif has_file is not None and not has_file(ca):
            out.append(("rpz", "ca", "CA certificate file %s is missing" % ca))
    for k in _INTS:
        v = r.get(k)
        if v is not None and (not isinstance(v, int) or v <= 0):
            out.append(("rpz", k, "%s must be a positive whole number" % k))


def _tap(t, out):
    if not isinstance(t, dict):
        out.append(("tap", "tap", "not an object"))
        return
    users = t.get("users", {})
    if not isinstance(users, dict):
        out.append(("tap", "users", "not an object"))
        return
    for name in users:
        why = check_user(name, users[name])
        if why:
            out.append(("tap", "users", why))


def problems(cfg, has_file=None):
    # Every problem of a configuration; has_file(name) -> bool checks files it names.
    if not isinstance(cfg, dict):
        return [("config", "config", "config.json is not a JSON object")]
    out = []
    if "wifi" in cfg:
        _wifi(cfg["wifi"], out)
    if "rpz" in cfg:
        _rpz(cfg["rpz"], out, has_file)
    if "tap" in cfg:
        _tap(cfg["tap"], out)
    if "properties" in cfg and not isinstance(cfg["properties"], list):
        out.append(("properties", "properties", "not a list"))
    return out


def sanitize(cfg, found):
    # the configuration without the sections that have problems (what safe mode runs with)
    if not isinstance(cfg, dict):
        return {}
    bad = {p[0] for p in found}
    return {k: v for k, v in cfg.items() if k not in bad}


SECRETS = ("token", "password", "stored", "server", "salt", "key", "psk")


def mask(obj):
    # a copy with every secret replaced by "****" (for doctor reports and logs)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, str) and k in SECRETS and v not in (None, ""):
                out[k] = "****"
            else:
                out[k] = mask(v)
        return out
    if isinstance(obj, list):
        return [mask(v) for v in obj]
    return obj
