"""How large automatic chunks must be for the busiest site's master to keep up (core/swarm_load.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lanscatter.cli import run
from lanscatter.core.chunking import AUTO_MAX_SIZE, auto_chunk_size
from lanscatter.core.linkmap import LinkMap
from lanscatter.core.swarm_load import MASTER_TRANSFERS_S, busiest_site, chunk_floor
from lanscatter.topology import derive_plan, load_topology

MIB = 2**20
GIB = 2**30


def _tree(tmp: Path, sites: str) -> Path:
    path = tmp / "tree.yaml"
    path.write_text("dataset: {source: src, origin: o, name: d, secret: {value: s}}\n" + sites)
    return path


def _hosts(prefix: str, n: int) -> str:
    return ", ".join(f"{prefix}{k}" for k in range(n))


def _office(tmp: Path, n: int = 40, lan: str = "1Gbit", extra: str = "    switch: none\n") -> LinkMap:
    return derive_plan(load_topology(_tree(tmp, f"sites:\n  office:\n    lan: {lan}\n{extra}"
                                                f"    hosts: [o, {_hosts('w', n - 1)}]\n"))).link_map


def test_a_site_receives_what_its_ports_do_together_or_its_switch(tmp_path: Path) -> None:
    busiest = busiest_site(_office(tmp_path))
    assert busiest is not None and busiest.site == "office" and busiest.bytes_per_s == pytest.approx(40 * 125e6)
    shared = busiest_site(_office(tmp_path, extra="    switch: 2Gbit\n"))
    assert shared is not None and shared.bytes_per_s == pytest.approx(250e6)


def test_the_busiest_site_of_a_tree_sets_the_floor_and_limits_narrow_ports(tmp_path: Path) -> None:
    tree = _tree(tmp_path, f"""sites:
  hq:
    lan: 1Gbit
    hosts: [o, {_hosts('h', 3)}]
  plant:
    lan: 10Gbit
    gateway: g
    hosts:
      g:
      {chr(10).join(f'      p{k}: {{download_limit: 1Gbit}}' for k in range(5)).strip()}
      fast:
wan:
  - between: [hq, plant]
    bandwidth: 100Mbit
""")
    lm = derive_plan(load_topology(tree)).link_map
    busiest = busiest_site(lm)
    # plant: g and fast at 10 Gbit/s, five hosts narrowed to 1 Gbit/s; hq: four at 1 Gbit/s
    assert busiest is not None and busiest.site == "plant" and busiest.bytes_per_s == pytest.approx(3125e6)
    assert chunk_floor(lm) == pytest.approx(3125e6 / MASTER_TRANSFERS_S, abs=1)


def test_no_known_port_speed_asks_nothing() -> None:
    assert chunk_floor(None) == 0 and chunk_floor(LinkMap()) == 0 and busiest_site(LinkMap()) is None


def test_auto_chunks_are_no_smaller_than_the_floor_and_a_size_in_use_below_it_is_left() -> None:
    floor = 3_333_334                                       # 5 GB/s of ports over 1,500 a second
    assert auto_chunk_size(GIB) == MIB and auto_chunk_size(GIB, floor=floor) == 4 * MIB
    assert auto_chunk_size(10 * GIB, floor=floor) == 4 * MIB                 # the size rule's own
    assert auto_chunk_size(100 * GIB, floor=floor) == 32 * MIB
    assert auto_chunk_size(10 * GIB, 8 * MIB, floor) == 8 * MIB              # in use, fits, above it
    assert auto_chunk_size(10 * GIB, 2 * MIB, floor) == 4 * MIB              # in use, below it: left
    assert auto_chunk_size(GIB, 4 * MIB, floor) == 4 * MIB                   # few chunks, but the floor's
    assert auto_chunk_size(GIB, floor=10**12) == AUTO_MAX_SIZE               # never past the largest
    assert auto_chunk_size(0, floor=floor) == 4 * MIB


def test_the_benchmark_sites_get_chunks_their_master_keeps_up_with() -> None:
    trees = Path(__file__).parents[2] / "benchmarks" / "topologies"
    sizes = {name: auto_chunk_size(10 * GIB, floor=chunk_floor(derive_plan(load_topology(trees / f"{name}.yaml")).link_map))
             for name in ("cluster-200", "floor-500", "office-40", "one-lan", "hub-three-branches")}
    assert sizes == {"cluster-200": 64 * MIB, "floor-500": 32 * MIB, "office-40": 4 * MIB,
                     "one-lan": 4 * MIB, "hub-three-branches": 4 * MIB}


def test_simulate_cuts_a_size_as_the_master_would_for_the_tree(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    tree = _tree(tmp_path, f"sites:\n  office:\n    lan: 1Gbit\n    switch: none\n    hosts: [o, {_hosts('w', 39)}]\n")
    assert run(["simulate", "--topology", str(tree), "--size", "256MiB", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["dataset_bytes"] == 256 * MIB and figures["transfers"] == 39 * 128     # 2 MiB chunks, not 1 MiB


def test_plan_shows_the_size_the_master_will_pick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = _tree(tmp_path, f"sites:\n  office:\n    lan: 1Gbit\n    switch: none\n    hosts: [o, {_hosts('w', 39)}]\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"x" * 1000)
    assert run(["plan", "--json", str(tree)]) == 0
    dataset = json.loads(capsys.readouterr().out)["dataset"]
    assert dataset["chunk_size"] == "auto" and dataset["auto_chunk_size"] == 2 * MIB
    assert run(["plan", str(tree)]) == 0
    assert "chunks of 2 MiB (auto, for the 0.977 KiB in the source now)" in capsys.readouterr().out
