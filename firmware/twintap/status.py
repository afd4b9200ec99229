# What `twintap doctor` reports about the running (or just interrupted) firmware: put together
# on request by onboard.status() (from the REPL), which imports this module for the call and
# forgets it again, so that a board does not carry it while it serves.
import gc

from . import log, onboard


def report():
    out = {"safe_mode": onboard._safe, "recent": log.recent(), "log_dropped": log.dropped,
           "mem_free": gc.mem_free()}
    a = onboard._app
    if a is None:
        return out
    w = a.onboard.wifi
    d = {"state": w.state, "ssid": w.ssid, "ip": w.ip, "error": w.error}
    if w.drv is not None and w.state == "connected":
        d["rssi"] = w.drv.rssi()
    out["wifi"] = d
    r = a.rpz
    if r is None:
        out["mqtt"] = {"state": "not configured"}
    else:
        out["mqtt"] = {"state": "online" if r.online else "offline", "connects": r.connects,
                       "registered": r.registered, "last_error": r.last_error,
                       "broker": "%s:%d" % (r.host, r.port)}
    ble = getattr(a, "ble", None)
    if ble is None:
        out["ble"] = {"state": "absent"}
    elif hasattr(ble, "status"):
        out["ble"] = ble.status()
    else:
        out["ble"] = {"state": "present"}
    return out
