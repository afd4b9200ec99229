"""``twintap doctor``: one report to paste into an issue.

Host and tool versions; serial ports with their USB ids; for the board: what the running
firmware says from its REPL (MicroPython and twintap versions, free heap, board file, files,
the configuration checked by the board's own validator with every secret shown as ``****``,
safe mode and why, Wi-Fi, MQTT and BLE state, the last errors and warnings it logged), then
the chip and its flash from esptool (real serial ports only: a pty has no chip behind it).
Each part that fails says why in its place; the rest of the report still comes out.
After reading, the firmware runs again (a soft reboot from the REPL, as after Ctrl-D).
"""

from __future__ import annotations

import json
import platform as pyplatform
import sys
from importlib import metadata

from twintap import TwintapError, __version__, ports
from twintap.proto import settings
from twintap.repl import BoardRepl

BOARD_CODE = r"""
import sys, os, gc, json
def _tt_doc():
    impl = sys.implementation
    r = {'platform': sys.platform, 'version': '.'.join(str(v) for v in impl.version[:3]),
         'machine': getattr(impl, '_machine', ''), 'mpy': getattr(impl, '_mpy', None)}
    try:
        u = os.uname()
        r['release'] = u.release
    except (AttributeError, OSError):
        pass
    files = {}
    for n in os.listdir():
        try:
            files[n] = os.stat(n)[6]
        except OSError:
            pass
    r['files'] = files
    for key, path in (('board', 'board.json'), ('config', 'config.json')):
        try:
            with open(path) as f:
                r[key] = f.read()
        except OSError:
            r[key] = None
    m = sys.modules.get('twintap')
    r['twintap'] = getattr(m, 'VERSION', None) if m else None
    if r['twintap'] is None:
        try:
            import twintap
            r['twintap'] = twintap.VERSION
            r['running'] = False
        except ImportError:
            pass
    else:
        r['running'] = True
    o = sys.modules.get('twintap.onboard')
    if o is not None:
        try:
            r['status'] = o.status()
        except Exception as e:
            r['status_error'] = repr(e)
    gc.collect()
    r['mem_free'] = gc.mem_free()
    print(json.dumps(r))
_tt_doc()
del _tt_doc
"""


def _versions() -> str:
    parts = [f"twintap {__version__}", f"Python {pyplatform.python_version()}"]
    for dist in ("esptool", "mpremote", "pyserial"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist} missing")
    return ", ".join(parts) + f"; {pyplatform.platform()}"


def ports_section() -> list[str]:
    """Every serial port with its USB id, the ESP32 bridges marked."""
    out = ["Serial ports:"]
    found = ports.list_ports()
    if not found:
        out.append("  (none)")
    for p in found:
        mark = f"  <- {p.bridge}" if p.bridge else ""
        out.append(f"  {p.device:<22} {p.usb_id:<10} {p.description}{mark}")
    return out


def mask_json(text: str | None) -> tuple[object, str | None]:
    """(masked configuration, parse error)"""
    if text is None:
        return None, None
    try:
        return settings.mask(json.loads(text)), None
    except ValueError as e:
        return None, f"not valid JSON ({e})"


def board_section(port: str) -> tuple[list[str], dict | None]:
    """What the running firmware says about itself, from its REPL."""
    out = [f"Board on {port}:"]
    try:
        with BoardRepl(port) as repl:
            r = repl.json(BOARD_CODE, timeout=20)
            repl.resume()
    except TwintapError as e:
        return out + [f"  REPL: {e}"], None
    mpy = r.get("mpy")
    mpy_text = f"mpy v{mpy & 0xFF}.{(mpy >> 8) & 3}" if mpy else "mpy ?"
    out.append(f"  micropython      {r['version']} on {r['platform']} ({r.get('machine', '')}, "
               f"{mpy_text})")
    tw = r.get("twintap")
    out.append(f"  twintap          {tw or 'not installed (run `twintap deploy`)'}"
               + ("" if tw is None or r.get("running") else " (installed, not running)"))
    out.append(f"  free heap        {r.get('mem_free')} bytes (at the REPL)")
    board, berr = mask_json(r.get("board"))
    if isinstance(board, dict):
        out.append(f"  board file       {board.get('name')} (chip {board.get('chip') or '-'})")
    else:
        out.append(f"  board file       {berr or 'missing (run `twintap deploy`)'}")
    files = r.get("files", {})
    out.append("  files            " + ", ".join(f"{n} ({s} B)" for n, s in sorted(files.items())))
    out.append("Configuration (config.json, secrets masked):")
    cfg, cerr = mask_json(r.get("config"))
    if r.get("config") is None:
        out.append("  none: the board is not provisioned (`twintap provision`)")
    elif cerr:
        out.append(f"  INVALID: {cerr}")
    else:
        raw = json.loads(r["config"])
        problems = settings.problems(raw, lambda n: n in files)
        if problems:
            out.append("  INVALID:")
            out += [f"    {s}.{f}: {m}" for s, f, m in problems]
        else:
            out.append("  valid")
        out += ["  " + line for line in json.dumps(cfg, indent=2).splitlines()]
    st = r.get("status")
    out.append("State:")
    if not st:
        why = r.get("status_error") or "the firmware is not running (nothing to report)"
        out.append(f"  {why}")
        return out, r
    out.append(f"  safe mode        {st.get('safe_mode') or 'no'}")
    w = st.get("wifi", {})
    wtext = w.get("state", "?")
    if w.get("ssid"):
        wtext += f" ({w['ssid']}"
        wtext += f", ip {w['ip']}" if w.get("ip") else ""
        wtext += f", rssi {w['rssi']}" if w.get("rssi") is not None else ""
        wtext += ")"
    if w.get("error"):
        wtext += f": {w['error']}"
    out.append(f"  wifi             {wtext}")
    m = st.get("mqtt", {})
    mtext = m.get("state", "?")
    if "broker" in m:
        mtext += f" (broker {m['broker']}, {m.get('connects', 0)} connects"
        mtext += ", registered" if m.get("registered") else ""
        mtext += ")"
    if m.get("last_error"):
        mtext += f"; last error: {m['last_error']}"
    out.append(f"  mqtt             {mtext}")
    b = st.get("ble", {})
    out.append(f"  ble              {b.get('state', '?')}"
               + "".join(f", {k} {v}" for k, v in b.items() if k != "state"))
    recent = st.get("recent", [])
    out.append(f"Recent errors and warnings ({len(recent)}"
               + (f", {st['log_dropped']} older dropped" if st.get("log_dropped") else "")
               + "):")
    out += [f"  {line}" for line in recent] or ["  (none)"]
    return out, r


def chip_section(port: str) -> list[str]:
    """Chip and flash as esptool reads them (this resets the board)."""
    if not ports.is_real_serial(port):
        return ["Chip: not read (not a local serial port: a virtual board or a URL)"]
    from twintap.flash import chip_info

    try:
        info = chip_info(port)
    except TwintapError as e:
        return [f"Chip: {e}"]
    return ["Chip (esptool; the board was reset):"] + [
        f"  {k:<16} {v}" for k, v in info.items()
    ]


def report(port: str | None, chip: bool = True) -> str:
    """The whole report as text."""
    lines = ["twintap doctor", f"  {_versions()}", *ports_section()]
    try:
        port = ports.resolve(port)
    except TwintapError as e:
        lines.append(f"Board: {e}")
        return "\n".join(lines)
    body, _ = board_section(port)
    lines += body
    if chip:
        lines += chip_section(port)
    return "\n".join(lines)


def run(args) -> int:
    """``twintap doctor``"""
    print(report(args.port, chip=not args.no_chip))
    sys.stdout.flush()
    return 0


def add_parser(sub) -> None:
    """Register ``twintap doctor``."""
    p = sub.add_parser("doctor", help="one report about host, ports, board and firmware")
    p.add_argument("--port", "-p", help="serial port or REPL pty (default: the one board)")
    p.add_argument("--no-chip", action="store_true",
                   help="skip esptool's chip and flash reading (it resets the board)")
    p.set_defaults(func=run)
