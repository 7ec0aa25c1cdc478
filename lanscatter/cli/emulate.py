"""`lanscatter emulate FILE`: rehearse a site tree on a real, shaped network on this Linux machine.

See docs/emulator.md. `--cleanup` removes what a crashed run left (its namespaces and what runs in them).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lanscatter.core.errors import ConfigError
from lanscatter.core.sizes import parse_size
from lanscatter.deploy.demo_data import DEFAULT_DEMO_SIZE
from lanscatter.emulator.layout import namespace_prefix
from lanscatter.emulator.netns import cleanup
from lanscatter.emulator.run import LOCAL_WORKDIR, EmulateOptions, require_support, run_emulation

log = logging.getLogger("lanscatter.emulate")

DEFAULT_TAG = "em"


def cmd_emulate(args: argparse.Namespace) -> int:
    if args.cleanup:
        require_support()
        removed = cleanup(namespace_prefix(args.tag))
        log.info("removed %d namespace(s)%s", len(removed), (": " + ", ".join(removed)) if removed else "")
        return 0
    if args.file is None:
        raise ConfigError("emulate needs the site-tree FILE",
                          "lanscatter emulate site-tree.yaml (or --cleanup)")
    opts = EmulateOptions(
        file=Path(args.file), workdir=Path(args.workdir) if args.workdir else None, demo_data=args.demo_data,
        exit_when_synced=args.exit_when_synced, report=Path(args.report) if args.report else None,
        timeout=args.timeout, mechanism=args.delay, tag=args.tag)
    return run_emulation(opts)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "emulate", help="run a site tree on an emulated network on this machine (Linux, root)",
        description="Build a network namespace per host, a bridge per site and shaped WAN links between "
        "site routers (rate, delay, loss from FILE), run every host's roles in its namespace, follow the "
        "distribution, and remove everything at the end (also on Ctrl-C, SIGTERM or an error). "
        "See docs/emulator.md.")
    p.add_argument("file", metavar="FILE", nargs="?", help="the site-tree YAML file")
    p.add_argument("--workdir", metavar="DIR",
                   help=f"hosts' folders, state and logs (default: {LOCAL_WORKDIR} beside FILE)")
    p.add_argument("--demo-data", type=parse_size, metavar="SIZE",
                   help=f"when the data set's source folder is missing: generate a demo data set of "
                   f"this size there (default {DEFAULT_DEMO_SIZE // 2**20}MiB)")
    p.add_argument("--exit-when-synced", action="store_true",
                   help="stop and exit 0 once every host holds the origin's generation "
                   "(default: keep running)")
    p.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds (exit 1) if not done")
    p.add_argument("--report", metavar="FILE",
                   help="write the JSON report of `up` when the run ends, WAN bytes from the interface "
                   "counters")
    p.add_argument("--delay", choices=("auto", "netem", "forwarder"), default="auto",
                   help="what adds WAN delay and loss: netem where the kernel has it (auto), or the "
                   "userspace forwarder")
    p.add_argument("--tag", default=DEFAULT_TAG, metavar="TAG",
                   help=f"1-6 characters a-z 0-9 naming this emulation's namespaces (lsc<TAG>-*; default "
                   f"{DEFAULT_TAG}); concurrent emulations need different tags")
    p.add_argument("--cleanup", action="store_true",
                   help="remove the namespaces a crashed run with this --tag left, and what runs in them")
    p.set_defaults(func=cmd_emulate)
