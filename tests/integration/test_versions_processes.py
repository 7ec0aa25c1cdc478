"""Host activation with real processes: a peer stages each new generation beside the active one
and switches its folder in one step; a per-file peer keeps a plain folder; `lanscatter rollback`
switches a running host back and holds it there across a restart until a new generation comes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.nodes import Cluster, Node, tree_state, wait_for


def _on(node: Node, generation: str) -> bool:
    st = node.status()
    return bool(st and st["synced"] and st["generation"] == generation)


def _publish(c: Cluster, master: Node, rel: str, data: bytes, old: str) -> str:
    """Change one origin file; the master's new generation."""
    (c.source / rel).write_bytes(data)
    return str(wait_for(lambda: (g := (master.status() or {}).get("generation")) != old and g, 30,
                        "a new generation", master))


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lanscatter", *argv], capture_output=True, text=True, check=False,
                          timeout=30)


def test_peer_switches_whole_versions_and_rolls_back(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    master = c.start_master()
    peer = c.start_peer("p1", "--keep", "2")
    flat = c.start_peer("p2", "--activate", "per-file")
    gen1 = master.status()["generation"]  # type: ignore[index]
    wait_for(lambda: _on(peer, gen1) and _on(flat, gen1), 60, "both peers on generation 1", master, peer, flat)
    folder = tmp_path / "p1"
    assert folder.is_symlink() and not (tmp_path / "p2").is_symlink()
    v1 = folder.resolve()
    state1 = tree_state(c.source)
    assert tree_state(folder) == state1 == tree_state(tmp_path / "p2")

    gen2 = _publish(c, master, "text.txt", b"second version\n", gen1)
    wait_for(lambda: _on(peer, gen2) and _on(flat, gen2), 60, "both peers on generation 2", master, peer, flat)
    v2 = folder.resolve()
    assert v2 != v1 and v2.parent == v1.parent
    assert tree_state(folder) == tree_state(c.source)
    # Unchanged files are the same inodes in both versions: only the changed file took space.
    assert (v1 / "d0" / "f0.bin").stat().st_ino == (v2 / "d0" / "f0.bin").stat().st_ino
    assert (v1 / "text.txt").stat().st_ino != (v2 / "text.txt").stat().st_ino

    done = _cli("rollback", str(folder))
    assert done.returncode == 0, done.stderr
    assert folder.resolve() == v1 and tree_state(folder) == state1
    listed = _cli("versions", str(folder))
    assert listed.returncode == 0 and f"* {v1.name}" in listed.stdout and gen2[:12] in listed.stdout
    # Restarted, the host takes generation 2 again but stays on the version it was rolled back to.
    peer.kill()
    peer = c.start_peer("p1", "--keep", "2")
    wait_for(lambda: _on(peer, gen2), 60, "the restarted peer holding generation 2", master, peer)
    assert folder.resolve() == v1

    gen3 = _publish(c, master, "text.txt", b"third version\n", gen2)
    wait_for(lambda: _on(peer, gen3), 60, "the peer on generation 3", master, peer)
    wait_for(lambda: len([p for p in v1.parent.iterdir() if p.is_dir()]) == 2, 10, "old versions pruned", peer)
    assert tree_state(folder) == tree_state(c.source)
    assert folder.resolve() not in (v1, v2) and os.path.isdir(v1) != os.path.isdir(v2)


def test_rollback_of_a_folder_without_versions_is_a_clear_error(tmp_path: Path) -> None:
    done = _cli("rollback", str(tmp_path / "nothing"))
    assert done.returncode == 2 and "has no versions" in done.stderr and "hint:" in done.stderr


def test_origin_publishing_an_old_version_again_switches_back_without_fetching(cluster: Cluster,
                                                                               tmp_path: Path) -> None:
    c = cluster
    master = c.start_master()
    peer = c.start_peer("p1")
    gen1 = master.status()["generation"]  # type: ignore[index]
    wait_for(lambda: _on(peer, gen1), 60, "the peer on generation 1", master, peer)
    folder = tmp_path / "p1"
    v1 = folder.resolve()
    text = c.source / "text.txt"
    old_bytes, old_mtime = text.read_bytes(), text.stat().st_mtime_ns
    gen2 = _publish(c, master, "text.txt", b"a bad release\n", gen1)
    wait_for(lambda: _on(peer, gen2), 60, "the peer on generation 2", master, peer)
    fetched = peer.status()["nodes"][0]["downloaded_chunks"]  # type: ignore[index]
    # The origin puts the old content back: the tree rolls back, each host to its kept copy.
    text.write_bytes(old_bytes)
    os.utime(text, ns=(old_mtime, old_mtime))
    wait_for(lambda: _on(peer, gen1), 60, "the peer back on generation 1", master, peer)
    assert folder.resolve() == v1 and tree_state(folder) == tree_state(c.source)
    assert peer.status()["nodes"][0]["downloaded_chunks"] == fetched  # type: ignore[index]

