"""``twintap tap --link URL <cmd>``: talk Tap to a board (esptool/mpremote style).

Commands: info, get/put/post PATH [HEX], vars, read VAR, write VAR VALUE, monitor VAR...,
configure FILE.json, passwd USER, whoami, scan (BLE). ``--link`` defaults to ``$TWINTAP_LINK``.
``--user`` logs in first (the password from ``--password``, ``$TWINTAP_PASSWORD`` or a prompt
without echo) and out at the end; ``--encrypt`` runs everything in an encrypted session. A
raw request whose answer is an error status exits 1; every other failure prints
``twintap: message`` and exits 2. Passwords and keys are never printed.
"""

from __future__ import annotations

import csv
import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from twintap import TwintapError, table
from twintap.tap import Tap, TapError, TapTimeout
from twintap.tap import config as tapconfig
from twintap.tap.services import format_value, maybe

ENV_LINK = "TWINTAP_LINK"
ENV_PASSWORD = "TWINTAP_PASSWORD"
ENV_NEW = "TWINTAP_NEW_PASSWORD"


def parse_hex(text: str) -> bytes:
    """ "0102", "01 02", "01:02", "0x0102" -> bytes; TwintapError otherwise."""
    t = text.strip()
    if t[:2].lower() == "0x":
        t = t[2:]
    for sep in (" ", ":", "-", "_"):
        t = t.replace(sep, "")
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise TwintapError(f"not a hex byte string: {text!r}") from None


def printable(data: bytes) -> bool:
    return bool(data) and all(32 <= b < 127 for b in data)


def print_table(rows: list[list[str]], header: list[str] | None = None) -> None:
    for line in table(rows, header):
        print(line)


def _password(args) -> str | None:
    """--password, else $TWINTAP_PASSWORD, else a prompt (never echoed) when --user is set."""
    if not getattr(args, "user", None):
        return None
    pw = args.password if args.password is not None else os.environ.get(ENV_PASSWORD)
    if pw is None:
        pw = getpass.getpass(f"password for {args.user}: ")
    return pw


def _open(args) -> Tap:
    link = args.link or os.environ.get(ENV_LINK)
    if not link:
        raise TwintapError("no --link given")
    if getattr(args, "iv_period", 0) < 0:
        raise TwintapError("--iv-period must be >= 0")
    password = _password(args)
    tap = Tap.connect(link, timeout=args.timeout)
    try:
        tap.encryption.iv_period = args.iv_period
        if args.encrypt:
            tap.encryption.start()
        if args.user:
            tap.auth.login(args.user, password)
    except BaseException:
        tap.close()
        raise
    return tap


def _close(tap: Tap) -> None:
    """Log out (when logged in) and close; a failing logout does not hide the result."""
    try:
        if tap.auth.user is not None:
            tap.auth.logout()
    except TapError:
        pass
    finally:
        tap.close()


def _with_tap(fn: Callable) -> Callable:
    def run(args) -> int:
        tap = _open(args)
        try:
            return fn(tap, args)
        finally:
            _close(tap)

    return run


# -- commands ---------------------------------------------------------------------------------
def cmd_info(tap: Tap, args) -> int:
    def show(fn: Callable, fmt: Callable = str) -> str:
        try:
            return fmt(fn())
        except TapTimeout:
            raise
        except TapError as e:
            if e.code is None:
                raise
            return f"- ({e.code_name})"

    rows = [
        ["manufacturer", show(tap.device.manufacturer)],
        ["model", show(tap.device.model)],
        ["serial", show(tap.device.serial_number)],
        ["firmware version", show(tap.device.firmware_version)],
        ["app name", show(tap.interface.app_name)],
        ["config version", show(tap.interface.config_version)],
        ["free memory", show(tap.device.memory_free, lambda n: f"{n} bytes")],
        ["profile/group", show(tap.interface.current_profile_id) + " / "
         + show(tap.interface.current_group_id)],
    ]
    print_table(rows)
    return 0


def cmd_raw(tap: Tap, args) -> int:
    payload = parse_hex(args.hex) if args.hex else b""
    resp = tap.request(args.method, args.path, payload)
    print(f"{resp.code_name} (0x{resp.code:02X})")
    if resp.data:
        print(f"data:  {resp.data.hex(' ')}  ({len(resp.data)} bytes)")
        if printable(resp.data):
            print(f"ascii: {resp.data.decode('ascii')}")
    return 0 if resp.ok else 1


def cmd_vars(tap: Tap, args) -> int:
    rows = []
    for v in tap.variables():
        t = v["type"] or "?"
        if v["count"] and v["count"] > 1:
            t += f"[{v['count']}]"
        value = "-" if v["value"] is None else format_value(v["value"])
        rows.append([str(v["id"]), v["name"] or "?", t, v["unit"] or "", v["access"] or "?",
                     value])
    if not rows:
        print("no readable variables")
        return 0
    print_table(rows, ["id", "name", "type", "unit", "access", "value"])
    return 0


def cmd_read(tap: Tap, args) -> int:
    print(format_value(tap.variable.read(tap.variable.resolve(args.var))))
    return 0


def cmd_write(tap: Tap, args) -> int:
    vid = tap.variable.resolve(args.var)
    tap.variable.write(vid, args.value)
    print(f"{args.var} = {format_value(tap.variable.read(vid))}")
    return 0


def cmd_monitor(tap: Tap, args) -> int:
    if args.period <= 0:
        raise TwintapError("--period must be > 0 ms")
    ids = [tap.variable.resolve(v) for v in args.vars]
    labels = []
    for var, vid in zip(args.vars, ids, strict=True):
        if not var.strip().isdigit():
            labels.append(var)
        else:
            meta = maybe(tap.variable.meta, vid)
            labels.append(meta.partition(":")[0] if meta else var)
    live = sys.stdout.isatty() and not args.csv
    out = csv.writer(sys.stdout, lineterminator="\n") if args.csv else None
    if out:
        out.writerow(["time", *labels])
        sys.stdout.flush()
    width = max(len(x) for x in labels + ["time"])
    period = args.period / 1000.0
    due = time.monotonic()
    n = 0
    try:
        while args.count is None or n < args.count:
            now = datetime.now()
            row = [_poll(tap, vid) for vid in ids]
            stamp = now.isoformat(timespec="milliseconds")
            if out:
                out.writerow([stamp, *row])
            elif live:
                if n:
                    sys.stdout.write(f"\x1b[{len(ids) + 1}A")
                sys.stdout.write(f"{'time'.ljust(width)}  {now:%H:%M:%S.%f}"[:-3] + "\x1b[K\n")
                for label, value in zip(labels, row, strict=True):
                    sys.stdout.write(f"{label.ljust(width)}  {value}\x1b[K\n")
            else:
                print(stamp + " " + " ".join(f"{k}={v}" for k, v in zip(labels, row,
                                                                          strict=True)))
            sys.stdout.flush()
            n += 1
            if args.count is not None and n >= args.count:
                break
            due += period
            time.sleep(max(0.0, due - time.monotonic()))
    except KeyboardInterrupt:
        pass
    return 0


def _poll(tap: Tap, vid: int) -> str:
    """One read for the monitor: the value, or the error, and polling goes on."""
    try:
        return format_value(tap.variable.read(vid))
    except TapTimeout:
        return "ERROR timeout"
    except TapError as e:
        if e.code is None:
            raise
        return f"ERROR {e.code_name}"


def cmd_configure(args) -> int:
    try:
        cfg = json.loads(Path(args.file).read_text())
    except (OSError, ValueError) as e:
        raise TwintapError(f"configure: cannot read {args.file}: {e}") from None
    tapconfig.plan(cfg)  # a bad file fails here, before the link is opened
    tap = _open(args)
    try:
        n = tapconfig.apply(tap, cfg, progress=lambda line: print(line, flush=True))
    finally:
        _close(tap)
    print(f"configured: {n} steps")
    return 0


def cmd_passwd(tap: Tap, args) -> int:
    """Set a user's password: prompted twice, sent as SCRAM keys derived here."""
    gid = tap.auth.group_id(args.target)
    pw = args.new_password if args.new_password is not None else os.environ.get(ENV_NEW)
    if pw is None:
        pw = getpass.getpass(f"new password for {args.target}: ")
        if getpass.getpass("again: ") != pw:
            raise TwintapError("the passwords differ")
    if not pw:
        raise TwintapError("empty password")
    tap.auth.change_password(gid, pw)
    print(f"password of {args.target} (group {gid}) changed")
    return 0


def cmd_whoami(tap: Tap, args) -> int:
    gid = tap.auth.current_group()
    name = maybe(tap.group.name, gid)
    opts = tap.auth.options()
    rows = [
        ["group", f"{gid} ({name})" if name else str(gid)],
        ["profile", str(tap.auth.current_profile())],
        ["login method", tap.auth.method_for(opts)],
        ["encrypted", "yes" if tap.encryption.active else "no"],
    ]
    if gid and name is not None:
        rows.append(["session lifetime", f"{maybe(tap.group.session_lifetime, gid)} min"])
    print_table(rows)
    return 0


def cmd_scan(args) -> int:
    """Tap boards in BLE range (bleak), or the virtual boards on --vble sockets."""
    from twintap.tap import ble

    if args.seconds <= 0:
        raise TwintapError("--seconds must be > 0")
    if args.vble:
        found = [d for path in args.vble for d in ble.scan_vble(path, args.seconds)]
    else:
        found = ble.scan_ble(args.seconds)
    if not found:
        print("no Tap board found" + ("" if args.vble else " (is the board advertising?)"))
        return 1
    rows = [[d["name"] or "?", d["address"], "-" if d["rssi"] is None else str(d["rssi"]),
             ",".join(d["services"]), d["link"]] for d in found]
    print_table(rows, ["name", "address", "rssi", "services", "link"])
    return 0


def add_parser(sub) -> None:
    """Register ``twintap tap``."""
    p = sub.add_parser("tap", help="talk Tap to a board: info, get/put/post, variables, "
                                   "monitor, configure")
    p.add_argument("--link", help="tcp://HOST:PORT, serial:///dev/ttyUSB0?baud=115200, a "
                                  "device or pty path, a pyserial URL, ble://NAME-or-ADDRESS, "
                                  "vble://SOCKET[?service=legacy|fast&mtu=N] "
                                  f"(default: ${ENV_LINK})")
    p.add_argument("--timeout", type=float, default=2.0,
                   help="seconds to wait for each response (default: 2)")
    p.add_argument("--user", help="log in as USER first (basic, hashed or SCRAM, as the "
                                  "board's security options say); logs out at the end")
    p.add_argument("--password", help=f"USER's password (default: ${ENV_PASSWORD}, else "
                                      "asked without echo)")
    p.add_argument("--encrypt", action="store_true",
                   help="encrypted session (GET /1024//47); a SCRAM login always encrypts")
    p.add_argument("--iv-period", type=int, default=100, metavar="N",
                   help="new IVs every N encrypted frames (default: 100; 1: a new IV with "
                        "every request, /1024//44; 0: never)")
    tsub = p.add_subparsers(dest="tap_cmd", required=True, metavar="CMD")

    c = tsub.add_parser("info", help="identity, firmware, application and session")
    c.set_defaults(func=_with_tap(cmd_info))
    for method, needs in (("get", False), ("put", True), ("post", True)):
        c = tsub.add_parser(method, help=f"raw {method.upper()} request (exit 1 on error status)")
        c.add_argument("path", help="Tap path, e.g. /3//2 or /1029/1/4")
        c.add_argument("hex", nargs=None if needs else "?", help="payload as hex, e.g. 0102")
        c.set_defaults(func=_with_tap(cmd_raw), method=method.upper())
    c = tsub.add_parser("vars", help="table of the readable variables")
    c.set_defaults(func=_with_tap(cmd_vars))
    c = tsub.add_parser("read", help="read a variable (id or name)")
    c.add_argument("var")
    c.set_defaults(func=_with_tap(cmd_read))
    c = tsub.add_parser("write", help="write a variable (id or name); VALUE parsed per type")
    c.add_argument("var")
    c.add_argument("value", help="e.g. 23, 1.5, true, hello, or 1,2,3 for arrays")
    c.set_defaults(func=_with_tap(cmd_write))
    c = tsub.add_parser("monitor", help="poll variables periodically (Ctrl-C stops)")
    c.add_argument("vars", nargs="+", metavar="VAR")
    c.add_argument("--period", type=int, default=1000, help="milliseconds (default: 1000)")
    c.add_argument("--csv", action="store_true", help="CSV: time,name1,name2 then rows")
    c.add_argument("--count", type=int, help="stop after N polls")
    c.set_defaults(func=_with_tap(cmd_monitor))
    c = tsub.add_parser("passwd", help="set a user's password (asked twice, never echoed; "
                                       "sent as SCRAM keys)")
    c.add_argument("target", metavar="USER", help="admin, supervisor, a group id or a user name")
    c.add_argument("--new-password", help=f"(scripts) the new password; default "
                                          f"${ENV_NEW}, else asked")
    c.set_defaults(func=_with_tap(cmd_passwd))
    c = tsub.add_parser("whoami", help="current group, profile, login method, encryption")
    c.set_defaults(func=_with_tap(cmd_whoami))
    c = tsub.add_parser("scan", help="list Tap boards in BLE range (or virtual ones: --vble)")
    c.add_argument("--vble", action="append", metavar="SOCKET",
                   help="a virtual board's radio socket instead of the adapter (repeatable)")
    c.add_argument("--seconds", type=float, default=5.0, help="scan time (default: 5)")
    c.set_defaults(func=cmd_scan)
    c = tsub.add_parser("configure", help="apply an IoTize-shaped Tap configuration (JSON)")
    c.add_argument("file")
    c.set_defaults(func=cmd_configure)
