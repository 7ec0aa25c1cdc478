"""The dispatcher's table of subcommands is what the modules register, and a command loads only
its own module."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from lanscatter.cli import COMMANDS, LINK_FLAG_COMMANDS, _command_of, build_parser


def test_the_table_names_every_subcommand_and_its_module() -> None:
    registered: dict[str, str] = {}
    for module in dict.fromkeys(COMMANDS.values()):
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        if module == "lanscatter.cli":
            build_parser("secret")
            registered["secret"] = module
            continue
        importlib.import_module(module).register(sub)
        registered.update(dict.fromkeys(sub.choices, module))
    assert registered == COMMANDS


def test_the_node_commands_that_take_the_site_tree() -> None:
    parser = build_parser("master")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    takes = {name for name, child in sub.choices.items()
             if any("--topology" in a.option_strings for a in child._actions)}
    assert takes == LINK_FLAG_COMMANDS


def test_which_parser_a_command_line_builds() -> None:
    assert _command_of(["peer", "h:1", "d"]) == "peer"
    assert _command_of(["--debug", "up", "t.yaml"]) == "up"
    assert _command_of(["--help"]) is None and _command_of([]) is None and _command_of(["nonsense"]) is None


def test_a_node_loads_no_orchestrator_and_up_no_role() -> None:
    code = ("import sys, lanscatter.cli as c; c.build_parser({!r}); "
            "print(sorted(m for m in ('lanscatter.cli.up', 'lanscatter.sim.simulator', 'lanscatter.roles.peer') "
            "if m in sys.modules))")
    seen = {}
    for command in ("peer", "up"):
        out = subprocess.run([sys.executable, "-c", code.format(command)], capture_output=True, text=True,
                             timeout=60, check=True)
        seen[command] = out.stdout.strip()
    assert seen == {"peer": "['lanscatter.roles.peer']", "up": "['lanscatter.cli.up']"}
