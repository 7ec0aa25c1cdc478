"""Every command's --help prints and exits 0 (a stray % in a help text made argparse crash)."""

from __future__ import annotations

import argparse

import pytest

from lanscatter.cli import build_parser, run


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command, as the words that name it."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [(*prefix, name), *_commands(sub, (*prefix, name))]
    return out


@pytest.mark.parametrize("command", _commands(build_parser()), ids=" ".join)
def test_help_of_every_command(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run([*command, "--help"])
    assert exit_.value.code == 0
    assert "usage: lanscatter" in capsys.readouterr().out
