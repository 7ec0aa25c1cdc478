"""The site tree's `origin_key` (checked where it is written) and `origin_key_file`, and the role
command lines that carry them: the origin's master signs, every other role checks."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lanscatter.core.errors import ConfigError
from lanscatter.core.signing import public_key_of
from lanscatter.disk.signing_keys import create_signing_key
from lanscatter.topology import TopologyError, derive_plan, load_topology
from lanscatter.topology.origin_keys import run_keys
from lanscatter.topology.roles import RunContext, role_command

KEY = public_key_of(Ed25519PrivateKey.from_private_bytes(bytes(range(32)))).text

TREE = """\
dataset: {{source: data, origin: o}}
{extra}
sites:
  hq:
    hosts: [o, p]
  br:
    gateway: g
    hosts: [g, b]
wan:
  - between: [hq, br]
    bandwidth: 50Mbit
"""


def _write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "tree.yaml"
    path.write_text(TREE.format(extra=extra))
    return path


def test_a_well_formed_key_and_key_file_are_read(tmp_path: Path) -> None:
    topo = load_topology(_write(tmp_path, f"origin_key: {KEY}\norigin_key_file: keys/origin.key"))
    assert topo.origin_key == KEY
    plan = derive_plan(topo)
    assert plan.dataset.origin_key == KEY
    assert plan.dataset.signing_key_file == (tmp_path / "keys" / "origin.key").resolve()

    ctx = RunContext(tmp_path / "tree.yaml", tmp_path / "state", local=False, workdir=None, python="py")
    master = role_command(plan, plan.host("o"), ctx).argv
    assert master[master.index("--signing-key") + 1] == str(plan.dataset.signing_key_file)
    assert "--origin-key" not in master
    for host in ("p", "g", "b"):
        argv = role_command(plan, plan.host(host), ctx).argv
        assert argv[argv.index("--origin-key") + 1] == KEY and "--signing-key" not in argv


def test_no_key_in_the_tree_gives_no_flags(tmp_path: Path) -> None:
    plan = derive_plan(load_topology(_write(tmp_path, "")))
    ctx = RunContext(tmp_path / "tree.yaml", tmp_path / "state", local=False, workdir=None, python="py")
    for h in plan.hosts:
        argv = role_command(plan, h, ctx).argv
        assert "--origin-key" not in argv and "--signing-key" not in argv


@pytest.mark.parametrize("value,why", [
    ("rsa:AAAA", "starts with 'ed25519:'"),
    ("ed25519:tooshort", "44 base64 characters"),
    ("[1, 2]", "must be a single value"),
])
def test_a_malformed_key_is_an_error_at_its_position(tmp_path: Path, value: str, why: str) -> None:
    path = _write(tmp_path, f"origin_key: {value}")
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    (problem,) = info.value.problems
    assert (problem.line, problem.col) == (2, 13)
    assert why in problem.message
    assert str(problem).startswith(f"{path}:2:13: error: ")


def test_the_schema_knows_the_key(tmp_path: Path) -> None:
    schema = json.loads((Path(__file__).parents[2] / "lanscatter" / "topology" / "site-tree.schema.json").read_text())
    good = yaml.safe_load(TREE.format(extra=f"origin_key: {KEY}\norigin_key_file: k/origin.key"))
    jsonschema.validate(good, schema)
    bad = yaml.safe_load(TREE.format(extra="origin_key: ed25519:tooshort"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_a_rehearsal_signs_with_a_key_of_its_own_and_a_deployment_checks_its_pair(tmp_path: Path) -> None:
    plan = derive_plan(load_topology(_write(tmp_path, f"origin_key: {KEY}")), local=True, workdir=tmp_path / "w")
    public, private = run_keys(plan, list(plan.hosts), rehearsal=tmp_path / "w", state_root=tmp_path / "w" / "state")
    assert private == tmp_path / "w" / "origin.key" and private.exists()
    assert public != KEY                                  # the tree's key has no private half here
    assert run_keys(plan, list(plan.hosts), rehearsal=tmp_path / "w", state_root=tmp_path / "s") == (public, private)  # made once

    mine = public_key_of(create_signing_key(tmp_path / "k" / "origin.key")).text
    real = derive_plan(load_topology(_write(tmp_path, f"origin_key: {mine}\norigin_key_file: k/origin.key")))
    state = tmp_path / "s"
    assert run_keys(real, [real.host("o")], rehearsal=None, state_root=state) == (mine, (tmp_path / "k" / "origin.key").resolve())
    assert run_keys(real, [real.host("p")], rehearsal=None, state_root=state) == (mine, None)   # not the origin: no private key
    wrong = derive_plan(load_topology(_write(tmp_path, f"origin_key: {KEY}\norigin_key_file: k/origin.key")))
    with pytest.raises(ConfigError, match="not the private half"):
        run_keys(wrong, [wrong.host("o")], rehearsal=None, state_root=state)
    # No key file in the tree: the master's default key must be origin_key's pair.
    bare = derive_plan(load_topology(_write(tmp_path, f"origin_key: {mine}")))
    with pytest.raises(ConfigError, match="holds no private key"):
        run_keys(bare, [bare.host("o")], rehearsal=None, state_root=state)
    (state / "o").mkdir(parents=True)
    (state / "o" / "origin.key").write_bytes((tmp_path / "k" / "origin.key").read_bytes())
    assert run_keys(bare, [bare.host("o")], rehearsal=None, state_root=state) == (mine, None)
