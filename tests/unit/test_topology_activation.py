"""`activate` and `keep` in the site tree: inherited tree -> site -> host, checked, passed on."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanscatter.topology import TopologyError, derive_plan, load_topology
from lanscatter.topology.roles import RunContext, role_command

TREE = """\
dataset:
  source: /srv/data
  origin: o
defaults:
  keep: 3
sites:
  hq:
    hosts:
      o: 10.0.0.1
      p: 10.0.0.2
  br:
    gateway: g
    defaults:
      activate: per-file
    hosts:
      g: 10.0.1.1
      b: {address: 10.0.1.2, activate: host, keep: 1}
wan:
  - between: [hq, br]
    bandwidth: 50Mbit
"""


def test_settings_are_inherited_and_reach_the_command_lines(tmp_path: Path) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(TREE)
    plan = derive_plan(load_topology(path))
    ctx = RunContext(path, tmp_path / "state", local=False, workdir=None, python="py")

    def flags(host: str) -> tuple[str | None, str | None]:
        argv = list(role_command(plan, plan.host(host), ctx).argv)
        get = lambda flag: argv[argv.index(flag) + 1] if flag in argv else None
        return get("--activate"), get("--keep")

    assert flags("p") == (None, "3")
    assert flags("g") == ("per-file", "3")
    assert flags("b") == ("host", "1")


@pytest.mark.parametrize(("line", "code"), [("  keep: 0", "bad-value"), ("  keep: two", "wrong-type"),
                                            ("  activate: tree-wide", "bad-value")])
def test_bad_values_are_refused_with_their_position(tmp_path: Path, line: str, code: str) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(TREE.replace("  keep: 3", line))
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert [(p.line, p.code) for p in info.value.problems] == [(5, code)]
