"""Relays as real processes: a chain hq -> relay -> relay, cut-through, a relay SIGKILLed and
restarted without fetching again what it had verified, and a relay repairing a rotten file."""

from __future__ import annotations

import os
from pathlib import Path

from tests.integration.nodes import Cluster, Node, flip_byte, synced, tree_state, wait_for


def _have(node: Node) -> int:
    st = node.status()
    return st["nodes"][0]["have"] if st else -1


def test_chain_of_relays_mirrors_every_site(cluster: Cluster, tmp_path: Path) -> None:
    c, source = cluster, cluster.source
    master = c.start_master()
    hq_peer = c.start_peer("hq-1")
    relay1 = c.start_relay("gw-region", master)
    relay2 = c.start_relay("gw-branch", relay1)
    leaves = [c.start_peer_of("region-1", relay1), c.start_peer_of("branch-1", relay2),
              c.start_peer_of("branch-2", relay2)]
    nodes = [master, hq_peer, relay1, relay2, *leaves]
    wait_for(lambda: all(synced(n) for n in nodes), 90, "every site in sync", *nodes)
    want = tree_state(source)
    for name in ("hq-1", "gw-region", "gw-branch", "region-1", "branch-1", "branch-2"):
        assert tree_state(tmp_path / name) == want, name
    st = relay1.status()
    assert st is not None and st["role"] == "relay" and st["upstream"]["complete"]
    # The relay fetched each distinct chunk once from upstream, and uploaded nothing back.
    assert st["upstream"]["downloaded_chunks"] <= st["chunks"]
    hq = master.status()
    assert hq is not None
    relay_row = next(n for n in hq["nodes"] if n["name"] == "gw-region")
    assert relay_row["ul_slots"] == 0 and relay_row["tx_bytes"] == 0


def test_cut_through_and_relay_restart(tmp_path: Path) -> None:
    source = tmp_path / "origin"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(48 * 256 * 1024))
    c = Cluster(tmp_path, source)
    try:
        master = c.start_master()
        relay = c.start_relay("gw", master, "--dl-rate", "24")        # 3 MB/s: about 4 s for 12 MiB
        leaf = c.start_peer_of("leaf", relay)
        # Cut-through: the leaf holds chunks while the relay is still receiving.
        wait_for(lambda: 4 <= _have(leaf) and _have(relay) < 40, 30, "leaf fed before relay completes",
                 relay, leaf)
        had = _have(relay)
        relay.kill()
        relay2 = relay.restarted({"LANSCATTER_SECRET": c.secret})
        c.nodes.append(relay2)
        wait_for(lambda: synced(relay2) and synced(leaf), 60, "site complete after restart", relay2, leaf)
        st = relay2.status()
        assert st is not None
        assert st["upstream"]["downloaded_chunks"] <= st["chunks"] - had + 3    # +3: in flight at the kill
        assert tree_state(tmp_path / "leaf") == tree_state(source)
    finally:
        c.close()


def test_a_relay_that_serves_a_rotten_chunk_to_its_site_repairs_its_folder(
        cluster: Cluster, tmp_path: Path) -> None:
    c, source = cluster, cluster.source
    master = c.start_master()
    relay = c.start_relay("gw", master)
    wait_for(lambda: synced(relay), 60, "relay in sync", master, relay)
    flip_byte(tmp_path / "gw" / "d2" / "sub" / "f5.bin", 300 * 1024)
    # The site's peer has no source but the relay: it gets the rotten chunk, the relay reads
    # that file again and fetches the chunk from upstream, and the peer then gets it right.
    leaf = c.start_peer_of("leaf", relay)
    want = tree_state(source)
    wait_for(lambda: tree_state(tmp_path / "leaf") == want and synced(leaf), 60, "the site repaired",
             master, relay, leaf)
    assert tree_state(tmp_path / "gw") == want
    assert "did not match its hash" in relay.output()
