"""The `lanscatter` command line: one parser, subcommands registered by their own modules.

Each subcommand module exposes `register(subparsers)`, which adds its parser and sets
`func=<callable(args) -> int>`. This module is the one place that turns a `LanscatterError` into
`error: ... / hint: ...` and an exit code, and the only place that configures logging handlers.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from lanscatter import __version__
from lanscatter.errors import LanscatterError

log = logging.getLogger("lanscatter.cli")

# Modules that contribute subcommands (each has register(subparsers)).
COMMAND_MODULES: tuple[str, ...] = (
    "lanscatter.node_cli",
    "lanscatter.topology.cli",
    "lanscatter.topology.up_cli",
    "lanscatter.emulator.cli",
    "lanscatter.simulate_cli",
    "lanscatter.tls_cli",
    "lanscatter_tui.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanscatter",
        description="One-way, P2P-assisted distribution of a large folder to many hosts and sites.",
    )
    parser.add_argument("--version", action="version", version=f"lanscatter {__version__}")
    parser.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def run(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(args.debug)
    try:
        return int(args.func(args) or 0)
    except LanscatterError as exc:
        if args.debug:
            log.exception("failed")
        print(exc.message if exc.preformatted else f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def main() -> None:
    sys.exit(run(sys.argv[1:]))


def _classic(command: str) -> None:
    sys.exit(run([command, *sys.argv[1:]]))


def master_main() -> None:
    _classic("master")


def peer_main() -> None:
    _classic("peer")


def proxy_main() -> None:
    _classic("proxy")
