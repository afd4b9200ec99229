"""``twintap dashboard``: the bench in a browser page, served locally (aiohttp).

The page shows the devices the platform knows (online state, last seen, registration, event
counts, gaps), one device's twin (attributes, properties with live values, rights and units;
writes and execs go out as SSRs and their acks are shown), the event stream with a live plot
of a numeric property, a Tap panel (connect over tcp/serial/vble, log in, read, write and
monitor variables with a live plot) and the latest bench report (``bench/report.md`` and its
plots). Every asset is served by the dashboard itself; updates come over a WebSocket.

``twintap run`` starts one too. The server lives in :mod:`twintap.dashboard.server`
(imported only when a dashboard starts, so other commands do not load aiohttp).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from twintap import StopSignals, say
from twintap.broker import DEFAULT_DIR as DEFAULT_BROKER_DIR
from twintap.platform import DEFAULT_DIR as DEFAULT_PLATFORM_DIR

DEFAULT_PORT = 8080
DEFAULT_BENCH_DIR = Path("bench")


def run(args: argparse.Namespace) -> int:
    """Serve the dashboard until SIGINT/SIGTERM (exit 0); prints ``READY dashboard URL``."""
    from twintap.dashboard.server import Dashboard

    d = Dashboard(
        args.platform_dir, args.broker_dir, host=args.host, port=args.port,
        bench_dir=args.bench_dir, broker_url=args.broker, tap_link=args.tap_link,
    )
    stop = StopSignals()
    say(d.start())
    stop.wait()
    d.stop()
    say("[I][dashboard] stopped")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``twintap dashboard``."""
    p = sub.add_parser("dashboard", help="serve the bench dashboard in the browser")
    p.add_argument("--platform-dir", type=Path, default=DEFAULT_PLATFORM_DIR,
                   help=f"the platform's directory (default: {DEFAULT_PLATFORM_DIR})")
    p.add_argument("--broker-dir", type=Path, default=DEFAULT_BROKER_DIR,
                   help="the broker's directory: platform account and CA, for SSRs "
                   f"(default: {DEFAULT_BROKER_DIR})")
    p.add_argument("--broker", help="broker URL (default: the broker running in --broker-dir)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                   "127.0.0.1; the page can drive boards: keep it local)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to listen on, 0 for a free one (default: {DEFAULT_PORT})")
    p.add_argument("--bench-dir", type=Path, default=DEFAULT_BENCH_DIR,
                   help=f"where the bench report is (default: {DEFAULT_BENCH_DIR})")
    p.add_argument("--tap-link", default="tcp://127.0.0.1:2000",
                   help="the Tap panel's suggested link URL (default: tcp://127.0.0.1:2000)")
    p.set_defaults(func=run)
