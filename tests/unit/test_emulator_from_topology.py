"""From a site-tree file to the emulated network and the plan that runs on it (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanscatter.emulator.from_topology import emulated_addresses, emulated_plan, net_spec, wan_link_names
from lanscatter.topology import TopologyError, derive_plan, load_topology

MBIT = 1e6 / 8

TREE = """\
dataset: {source: data, origin: o}
sites:
  hq:
    lan: 100Mbit
    switch: 150Mbit
    hosts:
      o: 192.0.2.1
      h1: {address: 192.0.2.2, upload_limit: 10MB/s, download_limit: 40Mbit}
  br:
    gateway: g
    hosts: [g, b1]
  leaf:
    lan: 10Mbit
    gateway: lg
    hosts: [lg]
wan:
  - between: [br, hq]
    bandwidth: 40Mbit
    up: 10Mbit
    latency: 25ms
    loss: 0.5%
  - between: [br, leaf]
    bandwidth: 20Mbit
"""


def _load(tmp_path: Path, text: str = TREE):  # type: ignore[no-untyped-def]
    path = tmp_path / "tree.yaml"
    path.write_text(text)
    return load_topology(path)


def test_sites_hosts_and_wan_links_follow_the_file(tmp_path: Path) -> None:
    spec = net_spec(_load(tmp_path), "x1")
    assert spec.tag == "x1"
    assert [(s.name, s.parent, s.lan_bytes_per_s) for s in spec.sites] == [
        ("hq", None, 100 * MBIT), ("br", "hq", 1000 * MBIT), ("leaf", "br", 10 * MBIT)]
    hq = spec.site("hq")
    assert hq.switch_bytes_per_s == 150 * MBIT and spec.site("br").switch_bytes_per_s is None
    assert [(h.name, h.up_bytes_per_s, h.down_bytes_per_s) for h in hq.hosts] == [
        ("o", None, None), ("h1", 10e6, 40 * MBIT)]
    first, second = spec.wan_links
    # `between` order does not matter: the parent is the site nearer the origin
    assert (first.parent, first.child) == ("hq", "br")
    assert (first.down_bytes_per_s, first.up_bytes_per_s) == (40 * MBIT, 10 * MBIT)
    assert first.delay_s == pytest.approx(0.025)
    assert first.loss == pytest.approx(0.005)
    assert (second.parent, second.child, second.delay_s, second.loss) == ("br", "leaf", 0.0, 0.0)
    assert wan_link_names(spec) == {"hq<->br": "wan:hq>br", "br<->leaf": "wan:br>leaf"}


def test_plan_uses_namespace_addresses_and_per_host_folders(tmp_path: Path) -> None:
    topo = _load(tmp_path)
    spec = net_spec(topo, "x1")
    plan = emulated_plan(topo, spec, tmp_path / "work")
    addresses = emulated_addresses(spec)
    assert addresses == {"o": "10.213.1.10", "h1": "10.213.1.11", "g": "10.213.2.10", "b1": "10.213.2.11",
                         "lg": "10.213.3.10"}
    assert {h.name: h.address for h in plan.hosts} == addresses
    assert plan.host("b1").upstream == ("10.213.2.10", 10564)
    assert plan.host("g").upstream == ("10.213.1.10", 10564)
    assert plan.host("lg").upstream == ("10.213.2.10", 10564)
    assert plan.host("b1").folder == (tmp_path / "work" / "br" / "b1").resolve()
    assert plan.host("o").folder == (tmp_path / "data").resolve()
    # the link map is the file's, whatever the addresses
    assert plan.link_map == derive_plan(topo).link_map


def test_address_override_leaves_other_hosts_and_real_plans_alone(tmp_path: Path) -> None:
    topo = _load(tmp_path)
    plan = derive_plan(topo, addresses={"h1": "10.9.9.9", "nobody": "10.1.1.1"})
    assert plan.host("h1").address == "10.9.9.9"
    assert plan.host("o").address == "192.0.2.1"
    assert plan.host("b1").address == "b1"
    assert not plan.local


@pytest.mark.parametrize(("loss", "code"), [("1", "unit-missing"), ("1 percent", "bad-unit"),
                                             ("100%", "bad-value"), ("-1%", "bad-value")])
def test_bad_loss_is_reported_with_its_position(tmp_path: Path, loss: str, code: str) -> None:
    with pytest.raises(TopologyError) as err:
        _load(tmp_path, TREE.replace("loss: 0.5%", f"loss: {loss!r}"))
    problems = err.value.problems
    assert [p.code for p in problems] == [code]
    assert (problems[0].line, problems[0].col) == (21, 11)


@pytest.mark.parametrize("argv", [["emulate", "tree.yaml"], ["emulate", "--cleanup"]])
def test_emulate_without_namespaces_is_an_error_line_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        argv: list[str]) -> None:
    from lanscatter import cli
    from lanscatter.emulator import run

    monkeypatch.setattr(run, "support_problem", lambda: "network namespaces need root")
    monkeypatch.chdir(tmp_path)
    assert cli.run(argv) != 0
    err = capsys.readouterr().err
    assert "error: cannot emulate here: network namespaces need root" in err
    assert "hint: run as root" in err
    assert "Traceback" not in err
