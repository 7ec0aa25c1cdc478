"""Standby gateways in the site tree: `gateway: [a, b]` loads, every member of that site's swarm
gets the others as alternates, each gateway the list it is elected among, and the role commands
carry them."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from lanscatter.topology import derive_plan, load_topology
from lanscatter.topology.roles import RunContext, role_command

TREE = """\
dataset:
  source: data
  origin: o
  secret: {value: a-rehearsal-secret-long-enough}
sites:
  hq:
    hosts: [o, h1]
  br:
    gateway: [ga, gb]
    hosts:
      ga: 10.1.0.1
      gb: {address: 10.1.0.2, master_port: 7000}
      b1: 10.1.0.3
  far:
    gateway: fg
    hosts: [fg, f1]
wan:
  - between: [hq, br]
    bandwidth: 50Mbit
  - between: [br, far]
    bandwidth: 20Mbit
"""


def _plan(tmp_path: Path, *, local: bool = False):  # type: ignore[no-untyped-def]
    path = tmp_path / "t.yaml"
    path.write_text(TREE)
    return derive_plan(load_topology(path), local=local, workdir=tmp_path / "w")


def test_the_schema_takes_a_gateway_list() -> None:
    schema = yaml.safe_load((Path(__file__).parents[2] / "lanscatter/topology/site-tree.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(TREE), schema)


def test_roles_upstreams_alternates_and_gateway_lists(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    ga, gb, b1, fg = (plan.host(n) for n in ("ga", "gb", "b1", "fg"))
    both = (("10.1.0.1", 10564), ("10.1.0.2", 7000))
    assert ga.role == gb.role == "relay"
    assert ga.upstream == gb.upstream == ("o", 10564) and ga.alternates == gb.alternates == ()
    assert ga.gateways == gb.gateways == both
    assert not ga.standby and gb.standby
    assert b1.upstream == both[0] and b1.alternates == both[1:] and b1.gateways == ()
    assert fg.upstream == both[0] and fg.alternates == both[1:] and fg.gateways == ()   # the child site's relay
    assert plan.site("br").master == "ga" and plan.site("br").standbys == ("gb",)
    assert plan.site_heads()["br"] == both and plan.site_heads()["far"] == (("fg", 10564),)


def test_role_commands_carry_the_lists_and_a_standby_runs_at_lan_speed(tmp_path: Path) -> None:
    plan = _plan(tmp_path, local=True)
    ctx = RunContext(tmp_path / "t.yaml", tmp_path / "state", True, tmp_path / "w", all_hosts=True)
    gb = role_command(plan, plan.host("gb"), ctx).argv
    a, b = (f"{plan.host(n).address}:{plan.host(n).master_port}" for n in ("ga", "gb"))
    assert gb[gb.index("--gateways") + 1] == f"{a},{b}"
    assert gb[gb.index("--relay-dl-rate") + 1] == "50"          # the emulated WAN, while relaying only
    assert "--dl-rate" not in gb
    b1 = role_command(plan, plan.host("b1"), ctx).argv
    assert b1[b1.index("--alternate") + 1] == b and b1[4] == a
    origin = role_command(plan, plan.host("o"), ctx).argv
    assert origin[origin.index("--expect-peers") + 1] == "2"      # h1 and ga: gb joins its own site


def test_the_simulator_sees_a_standby_as_a_peer(tmp_path: Path) -> None:
    from lanscatter.cli.simulate import site_tree

    path = tmp_path / "t.yaml"
    path.write_text(TREE)
    topo, _chunk = site_tree(path, 1e9 / 8)
    assert {h.name: h.role for h in topo.hosts}["gb"] == "peer"


def test_a_gateway_of_a_tls_all_site_also_pins_its_own_site(tmp_path: Path) -> None:
    from lanscatter.topology.tls_plan import node_tls

    path = tmp_path / "t.yaml"
    path.write_text(TREE.replace("    gateway: [ga, gb]\n", "    gateway: [ga, gb]\n    tls: all\n"))
    topo = load_topology(path)
    plan = derive_plan(topo)
    prints = {h.name: f"{i:064x}" for i, h in enumerate(plan.hosts)}
    gb = node_tls(topo, plan, "gb", tmp_path, prints)
    assert set(gb.pins) == {prints[n] for n in ("o", "h1", "ga", "b1")} and gb.required
    assert set(node_tls(topo, plan, "fg", tmp_path, prints).pins) == {prints[n] for n in ("ga", "gb", "b1")}
