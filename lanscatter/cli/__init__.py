"""The `lanscatter` command line: one parser, subcommands registered by their own modules.

Each subcommand module exposes `register(subparsers)`, which adds its parser and sets
`func=<callable(args) -> int>`. A command named on the command line loads only its own module (a
peer starting does not import the topology, the emulator or the TUI); the full list loads for the
top-level help and for anything not known here. This module is the one place that turns a `LanscatterError` into
`error: ... / hint: ...` and an exit code, and the only place that configures logging handlers.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lanscatter import __version__
from lanscatter.core.auth import new_secret
from lanscatter.core.errors import ConfigError, LanscatterError
from lanscatter.core.protocol import MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
from lanscatter.heap import map_big_blocks

log = logging.getLogger("lanscatter.cli")

# Modules that contribute subcommands (each has register(subparsers)), with the commands each adds.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "lanscatter.cli.node": ("master", "peer", "proxy"),
    "lanscatter.cli.publish": ("publish",),
    "lanscatter.cli.keys": ("keys",),
    "lanscatter.cli.versions": ("rollback", "versions"),
    "lanscatter.cli.status": ("status",),
    "lanscatter.cli.topology": ("validate", "plan", "schema"),
    "lanscatter.cli.up": ("up",),
    "lanscatter.cli.service": ("service",),
    "lanscatter.cli.emulate": ("emulate",),
    "lanscatter.cli.simulate": ("simulate",),
    "lanscatter.cli.tls": ("tls",),
    "lanscatter_tui.cli": ("tui",),
}
_MODULE_OF = {command: module for module, commands in COMMAND_MODULES.items() for command in commands}
# The node commands whose planner can load the site tree (--topology/--host), known without loading
# them: `up` on every host of a tree asks, before it starts its roles (tests/unit/test_cli_commands.py
# checks it against their parsers).
LINK_FLAG_COMMANDS = frozenset({"master", "proxy"})
# The protocol range tells a control host (`up --ssh`) whether this installation can join a tree.
VERSION = f"lanscatter {__version__} (protocol {MIN_PROTOCOL_VERSION}..{PROTOCOL_VERSION})"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `command` alone (its module only is imported)."""
    parser = argparse.ArgumentParser(
        prog="lanscatter",
        description="One-way, P2P-assisted distribution of a large folder to many hosts and sites.",
    )
    parser.add_argument("--version", action="version", version=VERSION)
    parser.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command == "secret":
        _register_secret(sub)
    elif command in _MODULE_OF:
        importlib.import_module(_MODULE_OF[command]).register(sub)
    else:
        for name in COMMAND_MODULES:
            importlib.import_module(name).register(sub)
        _register_secret(sub)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand argv names (its first word that is no option), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def _register_secret(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("secret", help="make a swarm secret")
    actions = s.add_subparsers(dest="secret_command", metavar="ACTION", required=True)
    new = actions.add_parser("new", help="print a new random swarm secret (256 bits)",
                             description="Print a new random swarm secret, or write it to a file only "
                                         "its owner can read. Give it to every node with --secret-file "
                                         "or LANSCATTER_SECRET.")
    new.add_argument("-o", "--output", type=Path, default=None, metavar="PATH",
                     help="write it to this new file (mode 0600) instead of printing it")
    new.set_defaults(func=_secret_new)


def _secret_new(args: argparse.Namespace) -> int:
    secret = new_secret()
    if args.output is None:
        print(secret)
        return 0
    try:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot create {args.output}: {exc.strerror}",
                          "name a file that does not exist yet") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret + "\n")
    return 0


def configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def run(argv: Sequence[str] | None = None) -> int:
    if list(sys.argv[1:] if argv is None else argv) == ["--version"]:
        print(VERSION)          # before the subcommands load: a control host asks every host this
        return 0
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(words))
    args = parser.parse_args(words)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(args.debug)
    map_big_blocks()            # a node's tables are big arrays: freed, they leave the RSS (heap.py)
    try:
        return int(args.func(args) or 0)
    except LanscatterError as exc:
        if args.debug:
            log.exception("failed")
        print(exc.message if exc.preformatted else f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        _to_log_files(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _to_log_files(exc: LanscatterError) -> None:
    """The error that ends a command also goes into its --log-file: whoever reads the log later
    sees why the node stopped (the terminal already has it, so the screen gets it once)."""
    text = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (text,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


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
