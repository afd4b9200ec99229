"""The ``twintap`` command: a table of subcommands over the library (mpremote/esptool style).

Errors print ``twintap: <message>`` on stderr and exit with status 2; ``--debug`` shows the
traceback as well.
"""

from __future__ import annotations

import argparse
import sys

from twintap import (
    TwintapError,
    __version__,
    bench,
    broker,
    dashboard,
    deploy,
    doctor,
    flash,
    monitor,
    platform,
    provision,
    relay,
    runall,
    tapcli,
    vboard,
)

# name -> module-level add_parser(subparsers); each sets args.func(args) -> exit status
COMMANDS = {
    "vboard": vboard.add_parser,
    "tap": tapcli.add_parser,
    "relay": relay.add_parser,
    "broker": broker.add_parser,
    "platform": platform.add_parser,
    "run": runall.add_parser,
    "flash": flash.add_parser,
    "deploy": deploy.add_parser,
    "provision": provision.add_parser,
    "doctor": doctor.add_parser,
    "monitor": monitor.add_parser,
    "bench": bench.add_parser,
    "dashboard": dashboard.add_parser,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="twintap",
        description="Flash, deploy, provision and talk to twintap boards; run virtual boards.",
    )
    p.add_argument("--version", action="version", version=f"twintap {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS.values():
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TwintapError as e:
        if args.debug:
            raise
        print(f"twintap: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
