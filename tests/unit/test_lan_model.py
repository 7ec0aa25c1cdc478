"""A site's `lan:` is each host's switched port; `switch:` is a budget the whole site shares; old
trees whose `lan:` meant that budget get a positioned warning."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lanscatter import cli
from lanscatter.cli.topology import cmd_validate
from lanscatter.core.linkmap import LinkMap
from lanscatter.core.planner import Planner, Transfer
from lanscatter.topology import derive_plan, load_topology
from lanscatter.topology.validate import warnings_of

GBIT = 1e9 / 8
CHUNKS = [(f"c{i}", 1_000_000) for i in range(8)]


def _tree(tmp_path: Path, site: str) -> Path:
    path = tmp_path / "site-tree.yaml"
    path.write_text(f"dataset: {{source: d, origin: o}}\nsites:\n  office:\n{site}")
    return path


def _links(tmp_path: Path, site: str) -> LinkMap:
    return derive_plan(load_topology(_tree(tmp_path, site))).link_map


def _planner(links: LinkMap, sources: str, downloaders: dict[str, int]) -> Planner:
    """Sources holding every chunk (one upload slot each), downloaders with their download slots."""
    p = Planner(links=links, rng=random.Random(3))
    p.set_chunks(CHUNKS)
    for name in sources:
        p.add_node(name, dl_slots=0, ul_slots=1, seed=name == "o")
        p.set_have(name, [h for h, _ in CHUNKS])
    for name, slots in downloaders.items():
        p.add_node(name, dl_slots=slots, ul_slots=1)
    return p


def _rates(p: Planner, ts: list[Transfer]) -> dict[str, float]:
    """dest/source -> the transfer's fair rate."""
    fair = p.fair_rates()
    return {f"{t.dest}/{t.source}": fair[t.id] for t in ts}


def test_plain_lan_is_per_port_transfers_into_different_hosts_do_not_share(tmp_path: Path) -> None:
    links = _links(tmp_path, "    lan: 1Gbit\n    hosts: [o, c, a, b]\n")
    assert not any(name.startswith("switch:") for name in links.links)
    p = _planner(links, "oc", {"a": 1, "b": 1})
    ts = p.plan(0.0)
    assert len(ts) == 2 and {t.dest for t in ts} == {"a", "b"} and {t.source for t in ts} == {"o", "c"}
    assert [t.rate_cap for t in ts] == [GBIT, GBIT]            # each a whole port
    assert set(_rates(p, ts).values()) == {GBIT}


def test_transfers_into_one_host_share_its_port(tmp_path: Path) -> None:
    links = _links(tmp_path, "    lan: 1Gbit\n    hosts: [o, c, a]\n")
    p = _planner(links, "oc", {"a": 2})
    ts = p.plan(0.0)
    assert len(ts) == 2 and {t.dest for t in ts} == {"a"}
    assert sum(t.rate_cap or 0.0 for t in ts) == pytest.approx(GBIT)
    assert sum(_rates(p, ts).values()) == pytest.approx(GBIT)


def test_switch_is_one_budget_for_the_whole_site(tmp_path: Path) -> None:
    links = _links(tmp_path, "    lan: 1Gbit\n    switch: 1Gbit\n    hosts: [o, c, a, b]\n")
    assert links.links["switch:office"].bytes_per_s == GBIT
    assert links.path("o", "a") == ("up:o", "switch:office", "down:a")
    p = _planner(links, "oc", {"a": 1, "b": 1})
    ts = p.plan(0.0)
    assert len(ts) == 2 and {t.dest for t in ts} == {"a", "b"}
    assert sum(t.rate_cap or 0.0 for t in ts) <= GBIT * (1 + 1e-9)
    assert p.link_booked()["switch:office"] == pytest.approx(GBIT)
    assert sum(_rates(p, ts).values()) == pytest.approx(GBIT)


def test_host_limits_narrow_its_own_port(tmp_path: Path) -> None:
    links = _links(tmp_path, "    lan: 1Gbit\n    hosts:\n      o:\n      c: {upload_limit: 200Mbit}\n"
                             "      a: {download_limit: 100Mbit}\n      b:\n")
    caps = {name: link.bytes_per_s for name, link in links.links.items()}
    assert caps["up:c"] == 200e6 / 8 and caps["down:c"] == GBIT
    assert caps["down:a"] == 100e6 / 8 and caps["up:a"] == GBIT
    assert caps["up:o"] == caps["down:b"] == GBIT
    p = _planner(links, "o", {"a": 1})
    [t] = p.plan(0.0)
    assert t.rate_cap == 100e6 / 8
    # a limit above the port does not widen it
    wide = _links(tmp_path, "    lan: 100Mbit\n    hosts:\n      o: {upload_limit: 1Gbit}\n      a:\n")
    assert wide.links["up:o"].bytes_per_s == 100e6 / 8


OLD = """\
dataset: {source: d, origin: o}
sites:
  office:
    # one office on one switch
    lan: 1Gbit
    hosts: [o, a, b]
"""


def test_old_tree_warns_where_lan_is_written_and_says_what_to_write(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD)
    [w] = warnings_of(load_topology(path))
    assert (w.line, w.col, w.code, w.severity) == (5, 10, "lan-per-port", "warning")
    assert "'lan: 1Gbit' is the speed of each host's port" in w.message
    assert "3 hosts' ports together carry 3 Gbit/s" in w.message
    assert "add 'switch: 1Gbit'" in w.message and "'switch: none'" in w.message
    assert str(w).startswith(f"{path}:5:10: warning: site 'office': ")
    # validate shows it and still succeeds
    assert cmd_validate(_Args(str(path))) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == str(w) and out.splitlines()[1].startswith(f"{path}: ok:")
    # writing what was meant silences it, either way; so does the old budget never binding
    for fix in ("    switch: 1Gbit\n", "    switch: none\n"):
        path.write_text(OLD.replace("    lan: 1Gbit\n", "    lan: 1Gbit\n" + fix))
        assert warnings_of(load_topology(path)) == []
    path.write_text(OLD.replace("    lan: 1Gbit\n", "    lan: 10Gbit\n    defaults: {upload_limit: 1Gbit}\n"))
    assert warnings_of(load_topology(path)) == []          # 3 x 1 Gbit/s ports never filled 10
    path.write_text(OLD.replace("    lan: 1Gbit\n", ""))
    assert warnings_of(load_topology(path)) == []          # the default was never written


def test_up_says_the_warnings_before_it_runs_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD)
    # No host of this name: `up` stops before running anything, after the warnings.
    assert cli.run(["up", str(path), "--host", "nosuch"]) != 0
    err = capsys.readouterr().err
    [warning] = [line for line in err.splitlines() if ": warning: " in line]
    assert warning.startswith(f"{path}:5:10: warning: site 'office': ") and warning.endswith("[lan-per-port]")
    assert "no host 'nosuch'" in err


def test_switch_none_means_ports_only(tmp_path: Path) -> None:
    links = _links(tmp_path, "    lan: 1Gbit\n    switch: none\n    hosts: [o, a]\n")
    assert set(links.links) == {"up:o", "down:o", "up:a", "down:a"}


class _Args:
    def __init__(self, file: str) -> None:
        self.file = file
