"""The site tree's publishing settings (`publish`, `settle`, `allow_shrink`) and `adopt`: loaded,
checked, and turned into the roles' options."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanscatter.cli import build_parser
from lanscatter.topology import TopologyError, derive_plan, load_topology
from lanscatter.topology.roles import RunContext, role_command

TREE = """\
dataset:
  source: current
  origin: o
{dataset}sites:
  hq:
    hosts:
      o: 10.0.0.1
      p: {{address: 10.0.0.2{host}}}
"""


def _load(tmp_path: Path, dataset: str = "", host: str = "") -> Path:
    path = tmp_path / "tree.yaml"
    path.write_text(TREE.format(dataset=dataset, host=host))
    return path


def _argv(tmp_path: Path, path: Path, name: str) -> tuple[str, ...]:
    plan = derive_plan(load_topology(path))
    ctx = RunContext(path, tmp_path / "state", local=False, workdir=None, python="py")
    return role_command(plan, plan.host(name), ctx).argv


def test_publish_settings_and_adopt_reach_the_command_lines(tmp_path: Path) -> None:
    path = _load(tmp_path, "  publish: on-change\n  settle: 10s\n  allow_shrink: true\n", ", adopt: true")
    master = _argv(tmp_path, path, "o")
    assert master[master.index("--publish") + 1] == "on-change"
    assert master[master.index("--settle") + 1] == "10"
    assert "--allow-shrink" in master
    peer = _argv(tmp_path, path, "p")
    assert "--adopt" in peer
    # Every option given is one the commands take.
    build_parser().parse_args(list(master[3:]))
    build_parser().parse_args(list(peer[3:]))


def test_without_settings_the_nodes_keep_their_defaults(tmp_path: Path) -> None:
    path = _load(tmp_path)
    master, peer = _argv(tmp_path, path, "o"), _argv(tmp_path, path, "p")
    assert not {"--publish", "--settle", "--allow-shrink"} & set(master)
    assert "--adopt" not in peer


def test_a_symlink_source_is_passed_as_the_link(tmp_path: Path) -> None:
    (tmp_path / "releases" / "7").mkdir(parents=True)
    (tmp_path / "current").symlink_to(tmp_path / "releases" / "7")
    plan = derive_plan(load_topology(_load(tmp_path)))
    assert plan.dataset.source == tmp_path.resolve() / "current"


@pytest.mark.parametrize(("dataset", "host", "code"), [
    ("  publish: sometimes\n", "", "bad-value"),
    ("  publish: manual\n  settle: 5s\n", "", "settle-unused"),
    ("  settle: 5\n", "", "unit-missing"),
    ("  allow_shrink: yes please\n", "", "wrong-type"),
    ("", ", adopt: 1", "wrong-type"),
])
def test_bad_publish_settings_are_problems(tmp_path: Path, dataset: str, host: str, code: str) -> None:
    with pytest.raises(TopologyError) as err:
        load_topology(_load(tmp_path, dataset, host))
    assert code in str(err.value)


def test_adopt_on_the_origin_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(TREE.format(dataset="", host="").replace("o: 10.0.0.1", "o: {address: 10.0.0.1, adopt: true}"))
    with pytest.raises(TopologyError, match="origin-adopt"):
        load_topology(path)
