"""The `lanscatter` command line: one parser, subcommands registered by their own modules.

Each subcommand module exposes `register(subparsers)`, which adds its parser and sets
`func=<callable(args) -> int>`. This module is the one place that turns a `LanscatterError` into
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

log = logging.getLogger("lanscatter.cli")

# The module that registers each subcommand (register(subparsers)). A command loads its own module
# only: a node process pays for neither the orchestrator nor the simulator, and `up` for none of
# the roles; every host of a tree starts two such processes (tests/unit/test_cli_commands.py keeps
# this table true).
COMMANDS: dict[str, str] = {
    "master": "lanscatter.cli.node", "peer": "lanscatter.cli.node", "proxy": "lanscatter.cli.node",
    "publish": "lanscatter.cli.publish",
    "keys": "lanscatter.cli.keys",
    "versions": "lanscatter.cli.versions", "rollback": "lanscatter.cli.versions",
    "validate": "lanscatter.cli.topology", "plan": "lanscatter.cli.topology", "schema": "lanscatter.cli.topology",
    "up": "lanscatter.cli.up",
    "service": "lanscatter.cli.service",
    "emulate": "lanscatter.cli.emulate",
    "simulate": "lanscatter.cli.simulate",
    "tls": "lanscatter.cli.tls",
    "tui": "lanscatter_tui.cli",
    "secret": __name__,
}
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(m for m in COMMANDS.values() if m != __name__))
# The node commands whose planner can load the site tree (--topology/--host), known without loading
# them (the same test checks it against their parsers).
LINK_FLAG_COMMANDS = frozenset({"master", "proxy"})
# The protocol range tells a control host (`up --ssh`) whether this installation can join a tree.
VERSION = f"lanscatter {__version__} (protocol {MIN_PROTOCOL_VERSION}..{PROTOCOL_VERSION})"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with `command`, only the subcommands of its module."""
    parser = argparse.ArgumentParser(
        prog="lanscatter",
        description="One-way, P2P-assisted distribution of a large folder to many hosts and sites.",
    )
    parser.add_argument("--version", action="version", version=VERSION)
    parser.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = (COMMANDS[command],) if command in COMMANDS else (*COMMAND_MODULES, __name__)
    for name in modules:
        if name == __name__:
            _register_secret(sub)
        else:
            importlib.import_module(name).register(sub)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand of a command line whose only option before it is --debug (else None: the
    whole parser is built, for help and errors)."""
    for arg in argv:
        if arg != "--debug":
            return arg if arg in COMMANDS else None
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
    parser = build_parser(_command_of(sys.argv[1:] if argv is None else argv))
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
