"""``twintap run``: the whole system on this machine, on embedded defaults.

Starts the bench broker (mosquitto with TLS), the bench platform, and a virtual board
provisioned for both (its Tap on TCP, a pty UART and a REPL pty), and the dashboard (a web
page on 127.0.0.1, :mod:`twintap.dashboard`), then prints what to try and
serves until Ctrl-C, when everything it started is stopped (ESPHome's ``run`` idea: one
command from nothing to a working board).
"""

from __future__ import annotations

import json
from pathlib import Path

from twintap import StopSignals, TwintapError, say
from twintap.broker import Broker, BrokerDir, add_device
from twintap.platform import Platform
from twintap.vboard import VirtualBoard


def provision_virtual_board(flash: Path, broker_dir: Path, url: str, app: str, cid: str,
                            username: str, token: str) -> None:
    """Write the board's Rapidomize configuration and the broker's CA (DER) into its flash,
    atomically, keeping any other configuration it has."""
    flash.mkdir(parents=True, exist_ok=True)
    (flash / "ca.der").write_bytes((broker_dir / "ca.der").read_bytes())
    path = flash / "config.json"
    cfg = json.loads(path.read_text()) if path.is_file() else {}
    cfg["rpz"] = {
        **cfg.get("rpz", {}), "broker": url, "app_id": app, "client_id": cid,
        "username": username, "token": token, "ca": "ca.der",
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cfg, indent=1))
    tmp.replace(path)


def run(args) -> int:
    """Start broker, platform and board; serve until SIGINT/SIGTERM."""
    root = Path(args.dir)
    stop = StopSignals()
    started: list = []
    try:
        # the broker's own chatter stays out of the way; its errors still show
        broker = Broker(root / "broker", args.mqtt_port,
                        echo=lambda line: "rror" in line and say(line))
        broker.start()
        started.append(broker)
        added = add_device(root / "broker", args.app, args.cid, replace=True)
        platform = Platform(broker.url, BrokerDir(root / "broker").platform_credentials(),
                            root / "platform")
        platform.start()
        started.append(platform)
        flash = root / "board"
        provision_virtual_board(flash, BrokerDir(root / "broker").path, broker.url, args.app,
                                args.cid, added.device.username, added.token or "")
        board = VirtualBoard(flash, tcp_port=args.tap_port, uart=root / "uart",
                             repl=root / "repl", update=True)
        board.start()
        started.append(board)
        dash_line = []
        if not args.no_dashboard:
            from twintap.dashboard.server import Dashboard

            dash = Dashboard(root / "platform", root / "broker", port=args.dashboard_port,
                             tap_link=f"tcp://127.0.0.1:{args.tap_port}")
            try:  # a busy port costs the dashboard, not the run
                say(dash.start())
                started.append(dash)
                dash_line = [f"  Dashboard: open {dash.url} in a browser."]
            except TwintapError as e:
                say(f"[W][run] no dashboard: {e} (choose another --dashboard-port)")
        t = "    .venv/bin/twintap"
        print("\n".join([
            "",
            f"twintap: broker {broker.url}, platform in {root / 'platform'}, virtual board "
            f"{args.app}/cid/{args.cid} in {flash}.",
            *dash_line,
            "  Try, from another shell:",
            f"{t} tap --link tcp://127.0.0.1:{args.tap_port} vars",
            f"{t} tap --link {root / 'uart'} write setpoint 23",
            f"{t} platform read --app {args.app} --cid {args.cid} temperature",
            f"{t} platform write --app {args.app} --cid {args.cid} led true",
            f"{t} platform exec --app {args.app} --cid {args.cid} identify 3",
            f"{t} platform events --follow",
            f"{t} platform devices",
            f"    .venv/bin/mpremote connect {root / 'repl'} resume exec "
            "\"import os; print(os.listdir())\"",
            "  Ctrl-C stops everything.",
        ]), flush=True)
        while not stop.wait(0.2):
            if board.exited.is_set():
                raise TwintapError("the virtual board stopped")
    finally:
        for thing in reversed(started):
            thing.stop()
    say("[I][run] stopped")
    return 0


def add_parser(sub) -> None:
    """Register ``twintap run``."""
    p = sub.add_parser("run", help="broker + platform + a provisioned virtual board, until Ctrl-C")
    p.add_argument("--dir", default=".twintap", help="where everything keeps its state")
    p.add_argument("--tap-port", type=int, default=2000, help="the board's Tap TCP port")
    p.add_argument("--mqtt-port", type=int, default=8883, help="the broker's TLS port")
    p.add_argument("--app", default="demo", help="Rapidomize app id of the board")
    p.add_argument("--cid", default="board1", help="Rapidomize client id of the board")
    p.add_argument("--dashboard-port", type=int, default=8080,
                   help="the dashboard's port on 127.0.0.1 (default: 8080; 0: a free one)")
    p.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    p.set_defaults(func=run)
