"""A master placed in a site tree picks automatic chunks large enough for its busiest site."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from lanscatter.roles.master import MasterNode, MasterOptions
from lanscatter.topology import derive_plan, load_topology

MIB = 2**20


async def _scanned_chunk_size(tmp: Path, hosts: int, lan: str) -> int:
    tree = tmp / f"tree-{hosts}.yaml"
    names = ", ".join(f"w{k}" for k in range(hosts - 1))
    tree.write_text("dataset: {source: src, origin: o, name: d, secret: {value: s}}\n"
                    f"sites:\n  office:\n    lan: {lan}\n    switch: none\n    hosts: [o, {names}]\n")
    plan = derive_plan(load_topology(tree))
    src = tmp / "src"
    src.mkdir(exist_ok=True)
    (src / "a.bin").write_bytes(os.urandom(3 * MIB))
    master = MasterNode(MasterOptions(folder=src, state_dir=tmp / f"state-{hosts}", host="127.0.0.1", port=0,
                                      watch=False, site="office", link_map=plan.link_map))
    await master.start()
    try:
        assert master.manifest is not None
        return master.manifest.chunk_size
    finally:
        await master.stop()


async def test_a_fast_site_gets_larger_chunks_and_the_master_says_why(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="lanscatter"):
        assert await _scanned_chunk_size(tmp_path, 40, "1Gbit") == 2 * MIB      # 5 GB/s of ports
    said = [r.getMessage() for r in caplog.records if "automatic chunks of" in r.getMessage()]
    assert said and "site office receives up to 40 Gbit/s" in said[0] and "2384 transfers a second" in said[0]


async def test_a_small_site_keeps_the_size_rules_chunks(tmp_path: Path) -> None:
    assert await _scanned_chunk_size(tmp_path, 9, "200Mbit") == MIB
