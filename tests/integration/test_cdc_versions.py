"""A second version through a relay, as real processes: an insertion near the start of a big file
costs the relay's upstream link about the chunks around it, not the rest of the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.nodes import Cluster, Node, tree_state, wait_for

BIG = 8 << 20
TARGET = 256 * 1024


def _upstream_bytes(relay: Node) -> int:
    st = relay.status()
    assert st is not None
    return int(st["links"][0]["bytes"])


def _on(node: Node, generation: str) -> bool:
    st = node.status()
    return bool(st and st["generation"] == generation and st["synced"])


@pytest.mark.parametrize(("chunking", "most"), [("cdc", 3 * 4 * TARGET), ("fixed", None)])
def test_an_insertion_crosses_the_relay_link_as_about_one_chunk(tmp_path: Path, chunking: str,
                                                                 most: int | None) -> None:
    source = tmp_path / "origin"
    source.mkdir()
    data = os.urandom(BIG)
    (source / "big.bin").write_bytes(data)
    (source / "small.txt").write_bytes(b"unchanged\n")
    c = Cluster(tmp_path, source, chunk_size="256KiB")
    try:
        master = c.start_master("--chunking", chunking)
        relay = c.start_relay("gw", master)
        leaf = c.start_peer_of("leaf", relay)
        first = master.status()["generation"]  # type: ignore[index]
        wait_for(lambda: _on(relay, first) and _on(leaf, first), 60, "first version everywhere", relay, leaf)
        before = _upstream_bytes(relay)
        assert before >= BIG
        (source / "big.bin").write_bytes(data[:1000] + os.urandom(105) + data[1000:])
        second = wait_for(lambda: (g := master.status()["generation"]) != first and g, 30,  # type: ignore[index]
                          "the master's second version", master)
        wait_for(lambda: _on(relay, second) and _on(leaf, second), 60, "second version everywhere",
                 relay, leaf)
        fetched = _upstream_bytes(relay) - before
        assert tree_state(tmp_path / "leaf") == tree_state(source)
        if most is not None:
            assert fetched <= most, fetched
        else:      # fixed chunks: every boundary after the insertion moved, so nearly the whole file
            assert fetched >= BIG - 2 * TARGET, fetched
    finally:
        c.close()
