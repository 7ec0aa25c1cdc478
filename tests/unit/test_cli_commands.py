"""The node commands that take the site tree are known without loading them, `up` (which every
host of a tree runs before its roles) loads no role and no aiohttp, and a role loads nothing it
does not use to start (its help still works)."""

from __future__ import annotations

import argparse
import subprocess
import sys

from lanscatter.cli import LINK_FLAG_COMMANDS, build_parser


def test_the_node_commands_that_take_the_site_tree() -> None:
    parser = build_parser("master")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    takes = {name for name, child in sub.choices.items()
             if any("--topology" in a.option_strings for a in child._actions)}
    assert takes == LINK_FLAG_COMMANDS


def test_up_loads_no_role_and_no_aiohttp() -> None:
    code = ("import sys, lanscatter.cli as c; c.build_parser('up'); import lanscatter.topology.roles as r; "
            "r.link_flag_support(); r.registered_commands(); "
            "print(sorted(m for m in ('aiohttp', 'lanscatter.roles.peer', 'lanscatter.sim.simulator') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# What no role loads on its way to serving or joining (start-up, docs/benchmarks.md): the terminal UI
# and rich (a progress bar on a terminal only), the site tree's YAML (only with --topology),
# prometheus_client (at the first scrape), and for a master none of the peer's modules.
_NEVER_AT_START = ("textual", "rich", "lanscatter_tui", "yaml", "prometheus_client", "lanscatter.topology",
                   "lanscatter.sim", "lanscatter.deploy", "lanscatter.emulator")
_ROLE_MODULES = {"master": ("lanscatter.roles.master",), "peer": ("lanscatter.roles.peer",),
                 "proxy": ("lanscatter.roles.relay", "lanscatter.roles.gateway")}
_NOT_IN_ROLE = {"master": ("lanscatter.roles.peer", "lanscatter.roles.master_link", "lanscatter.roles.peer_folder"),
                "peer": ("lanscatter.roles.master", "lanscatter.roles.swarm", "lanscatter.core.planner", "watchfiles"),
                "proxy": ("lanscatter.roles.master", "watchfiles")}


def test_a_role_loads_nothing_it_does_not_use_to_start() -> None:
    for command, modules in _ROLE_MODULES.items():
        code = (f"import sys, lanscatter.cli as c; c.build_parser({command!r}); "
                f"import {', '.join(modules)}, lanscatter.roles.node_progress; "
                "print(' '.join(sorted(sys.modules)))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
        loaded = out.stdout.split()
        unwanted = [m for m in loaded
                    if any(m == w or m.startswith(w + ".") for w in (*_NEVER_AT_START, *_NOT_IN_ROLE[command]))]
        assert unwanted == [], (command, unwanted)


def test_every_node_command_still_shows_its_help() -> None:
    for command in ("master", "peer", "proxy", "up"):
        out = subprocess.run([sys.executable, "-m", "lanscatter", command, "--help"], capture_output=True,
                             text=True, timeout=60, check=False)
        assert out.returncode == 0 and f"lanscatter {command}" in out.stdout and "Traceback" not in out.stderr
