"""The site tree's `chunking` and `chunk_size: auto`: loaded, checked, planned, passed to the master."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from lanscatter.topology import TopologyError, derive_plan, load_topology
from lanscatter.topology.render import plan_to_json, plan_to_text
from lanscatter.topology.roles import RunContext, role_command

TREE = """\
dataset:
  source: /srv/data
  origin: o
{extra}sites:
  hq:
    hosts:
      o: 10.0.0.1
      p: 10.0.0.2
"""
SCHEMA = Path(__file__).parents[2] / "lanscatter" / "topology" / "site-tree.schema.json"


def _master_argv(tmp_path: Path, extra: str) -> list[str]:
    path = tmp_path / "tree.yaml"
    path.write_text(TREE.format(extra=extra))
    jsonschema.validate(yaml.safe_load(path.read_text()), json.loads(SCHEMA.read_text()))
    plan = derive_plan(load_topology(path))
    ctx = RunContext(path, tmp_path / "state", local=False, workdir=None, python="py")
    return role_command(plan, plan.host("o"), ctx).argv


@pytest.mark.parametrize(("extra", "size", "chunking"), [
    ("", "auto", "cdc"),
    ("  chunk_size: auto\n", "auto", "cdc"),
    ("  chunk_size: 4MiB\n", f"{4 << 20}B", "cdc"),
    ("  chunking: fixed\n  chunk_size: 3MiB\n", f"{3 << 20}B", "fixed"),
    ("  chunking: fixed\n", "auto", "fixed"),
])
def test_the_master_is_told_the_chunking_the_tree_asks_for(tmp_path: Path, extra: str, size: str,
                                                            chunking: str) -> None:
    argv = _master_argv(tmp_path, extra)
    assert argv[argv.index("--chunk-size") + 1] == size
    assert argv[argv.index("--chunking") + 1] == chunking


def test_the_plan_says_how_chunks_are_cut(tmp_path: Path) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(TREE.format(extra=""))
    plan = derive_plan(load_topology(path))
    assert "cdc chunks of auto size" in plan_to_text(plan, "tree.yaml")
    assert plan_to_json(plan)["dataset"]["chunk_size"] == "auto"
    # Where the source can be read, the plan shows the size `auto` picks for it.
    assert "cdc chunks of 4 MiB (auto, for the 10 GiB in the source now)" in plan_to_text(
        plan, "tree.yaml", 10 * 2**30)
    assert plan_to_json(plan, 10 * 2**30)["dataset"]["auto_chunk_size"] == 4 * 2**20


@pytest.mark.parametrize(("extra", "code"), [
    ("  chunking: rolling\n", "bad-value"),
    ("  chunk_size: 3MiB\n", "bad-size"),             # cdc targets are powers of two
    ("  chunk_size: automatic\n", "bad-size"),
])
def test_bad_chunking_is_reported(tmp_path: Path, extra: str, code: str) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(TREE.format(extra=extra))
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert code in str(info.value)
