"""The node commands that take the site tree are known without loading them, and `up` (which
every host of a tree runs before its roles) loads no role and no aiohttp."""

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
