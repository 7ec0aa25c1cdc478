"""A master and peers as real processes on 127.0.0.1: they end byte-identical, survive SIGKILL,
follow changes, refuse strangers, route around a node that serves corrupt data and have it check
its files."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.integration.nodes import Cluster, make_tree, synced, tree_state, wait_for


def test_master_and_four_peers_mirror_exactly(cluster: Cluster, tmp_path: Path) -> None:
    # One peer starts with stale and extraneous content, adopted: it is made a mirror.
    stale = tmp_path / "p1"
    (stale / "d0").mkdir(parents=True)
    (stale / "d0" / "f0.bin").write_bytes(b"stale content")
    (stale / "junk" / "deeper").mkdir(parents=True)
    (stale / "junk" / "deeper" / "x").write_bytes(b"extraneous")
    master = cluster.start_master()
    peers = [cluster.start_peer(f"p{i}", *(["--adopt"] if i == 1 else [])) for i in range(1, 5)]
    wait_for(lambda: all(synced(n) for n in peers) and synced(master), 60, "every peer in sync",
             master, *peers)
    want = tree_state(cluster.source)
    for i in range(1, 5):
        assert tree_state(tmp_path / f"p{i}") == want, f"p{i} differs from the origin"
    st = master.status()
    assert st is not None and len(st["nodes"]) == 5 and all(n["have"] == st["chunks"] for n in st["nodes"])


def test_peer_killed_mid_sync_resumes_without_refetching(cluster: Cluster, tmp_path: Path) -> None:
    big = cluster.source / "big.bin"
    big.write_bytes(os.urandom(40 * 256 * 1024))
    master = cluster.start_master()
    slow = cluster.start_peer("slow", "--dl-rate", "16")      # 2 MB/s: about 5 s for the data
    wait_for(lambda: (s := slow.status()) and s["nodes"][0]["have"] >= 8, 30, "some chunks", master, slow)
    had = slow.status()["nodes"][0]["have"]  # type: ignore[index]
    slow.kill()
    again = cluster.start_peer("slow")
    wait_for(lambda: synced(again), 60, "restarted peer in sync", master, again)
    st = again.status()
    assert st is not None
    assert st["nodes"][0]["downloaded_chunks"] <= st["chunks"] - had + 2   # +2: in flight at the kill
    assert tree_state(tmp_path / "slow") == tree_state(cluster.source)


def test_change_on_master_mid_sync_reaches_every_peer(cluster: Cluster, tmp_path: Path) -> None:
    (cluster.source / "big.bin").write_bytes(os.urandom(24 * 256 * 1024))
    master = cluster.start_master()
    peers = [cluster.start_peer(f"p{i}", "--dl-rate", "16") for i in range(1, 3)]   # 2 MB/s: ~4 s

    def mid_sync(node) -> bool:  # type: ignore[no-untyped-def]
        st = node.status()
        return bool(st and st["generation"] and 0 < st["nodes"][0]["have"] < st["chunks"] and not st["synced"])

    wait_for(lambda: all(mid_sync(n) for n in peers), 30, "both peers part-way through the sync",
             master, *peers)
    new = cluster.source / "d1" / "added-later.bin"
    new.write_bytes(os.urandom(300_000))
    (cluster.source / "d0" / "f0.bin").write_bytes(b"changed")
    (cluster.source / "text.txt").unlink()
    want = tree_state(cluster.source)
    wait_for(lambda: all(tree_state(tmp_path / f"p{i}") == want for i in (1, 2)), 60,
             "the change on every peer", master, *peers)


def test_wrong_secret_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "origin"
    make_tree(source)
    c = Cluster(tmp_path, source, secret="right horse battery staple")
    try:
        c.start_master()
        bad = c.start_peer("intruder", secret="wrong horse battery staple")
        code = bad.proc.wait(timeout=30)
        assert code != 0
        assert "error: the master refused this peer" in bad.output()
        assert "Traceback" not in bad.output()
        good = c.start_peer("friend")
        wait_for(lambda: synced(good), 60, "peer with the secret in sync", good)
    finally:
        c.close()


def test_chunks_need_the_secret_and_status_shows_no_names(tmp_path: Path) -> None:
    import json
    import urllib.error
    import urllib.request

    source = tmp_path / "origin"
    make_tree(source)
    c = Cluster(tmp_path, source, secret="a s3cret long enough to keep")
    try:
        master = c.start_master()
        status_text = urllib.request.urlopen(f"http://127.0.0.1:{master.port}/status", timeout=5).read()
        assert b"f1.bin" not in status_text and b"tool.sh" not in status_text
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{master.port}/metrics", timeout=5).read()
        assert b"lanscatter_chunks" in metrics
        chunk = "0" * 64
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{master.port}/chunks/{chunk}", timeout=5)
        assert err.value.code == 403
        assert json.loads(status_text)["chunks"] > 0
    finally:
        c.close()


def test_corrupt_source_is_detected_and_avoided(cluster: Cluster, tmp_path: Path) -> None:
    master = cluster.start_master("--slots", "1")
    bad = cluster.start_peer("bad")
    wait_for(lambda: synced(bad), 60, "first peer complete", master, bad)
    for p in (tmp_path / "bad").rglob("*.bin"):       # rot its disk, sizes and mtimes kept
        st = p.stat()
        if st.st_size:
            p.write_bytes(bytes(st.st_size))
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    others = [cluster.start_peer(f"ok{i}") for i in range(3)]
    want = tree_state(cluster.source)
    wait_for(lambda: all(tree_state(tmp_path / f"ok{i}") == want for i in range(3)), 90,
             "healthy peers complete and correct", master, *others)
    events = " ".join(e["message"] for e in master.status()["events"])  # type: ignore[index]
    assert "from bad" in events and "hash mismatch" in events
    # Told what it served was corrupt, the rotten peer reads the files holding it again (the repair
    # itself: test_verify_repair.py; files nobody fetched from it stay unnoticed).
    assert "bad served chunk" in events
    wait_for(lambda: "did not match its hash: reading" in bad.output(), 30, "rotten peer checking", master, bad)


def _downloads(master, name: str) -> int:  # type: ignore[no-untyped-def]
    st = master.status()
    row = next((n for n in st["nodes"] if n["name"] == name), None) if st else None
    return -1 if row is None else int(row["downloads"])


def _events(node) -> str:  # type: ignore[no-untyped-def]
    st = node.status()
    return " ".join(e["message"] for e in st["events"]) if st else ""


def test_a_frozen_holder_is_no_source_once_silent(cluster: Cluster, tmp_path: Path) -> None:
    """A peer that holds everything freezes: once the master has heard nothing from it for a few
    seconds, a peer that joins then gets nothing planned from it (each such download would hang
    until its timeout) and syncs from the master."""
    (cluster.source / "big.bin").write_bytes(os.urandom(16 * 256 * 1024))
    master = cluster.start_master("--ul-rate", "16")          # 2 MB/s: the frozen one's free slots tempt
    holder = cluster.start_peer("holder")
    wait_for(lambda: synced(holder), 30, "the holder in sync", master, holder)
    holder.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: "holder has said nothing" in _events(master), 20, "the holder silent", master, holder)
        late = cluster.start_peer("late")
        busiest = 0
        deadline = time.monotonic() + 40
        while not synced(late):
            assert time.monotonic() < deadline, "the late peer did not sync within 40 s"
            st = master.status()
            row = next((n for n in st["nodes"] if n["name"] == "holder"), None) if st else None
            busiest = max(busiest, row["ul_slots_used"] if row else 0)      # as the master planned
            time.sleep(0.1)
        assert busiest == 0, f"{busiest} downloads were planned from the frozen holder"
    finally:
        holder.proc.send_signal(signal.SIGCONT)
    assert tree_state(tmp_path / "late") == tree_state(cluster.source)


def test_a_frozen_sources_uploads_are_withdrawn(cluster: Cluster, tmp_path: Path) -> None:
    """A holder freezes while it uploads to a peer: once the master has heard nothing from it for a
    few seconds it withdraws those uploads, with no verdict on it, and the peer gets the chunks from
    the master instead of waiting for each download's timeout (about 30 s here)."""
    (cluster.source / "big.bin").write_bytes(os.urandom(16 * 1024 * 1024))
    # 4 chunks of 4 MiB; the master at 4 MB/s, the holder at 0.5 MB/s: 8 s an upload from it
    master = cluster.start_master("--ul-rate", "32", "--chunking", "fixed", "--chunk-size", "4MiB")
    holder = cluster.start_peer("holder", "--ul-rate", "4")
    wait_for(lambda: synced(holder), 30, "the holder in sync", master, holder)
    late = cluster.start_peer("late", "--slots", "4")

    def uploading() -> bool:
        st = master.status()
        row = next((n for n in st["nodes"] if n["name"] == "holder"), None) if st else None
        return bool(row and row["ul_slots_used"])

    wait_for(uploading, 30, "uploads from the holder under way", master, holder, late)
    holder.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: synced(late), 20, "the late peer in sync", master, holder, late)
    finally:
        holder.proc.send_signal(signal.SIGCONT)
    events = _events(master)
    assert "holder is silent: chunk" in events and "slow source" not in events, events
    assert tree_state(tmp_path / "late") == tree_state(cluster.source)


def test_a_frozen_downloader_is_not_taken_for_a_slow_source(cluster: Cluster) -> None:
    (cluster.source / "big.bin").write_bytes(os.urandom(40 * 256 * 1024))
    master = cluster.start_master("--ul-rate", "16")          # 2 MB/s: seconds of sending
    frozen = cluster.start_peer("frozen")
    wait_for(lambda: (s := frozen.status()) and s["nodes"][0]["have"] >= 2, 30, "downloads under way",
             master, frozen)
    frozen.proc.send_signal(signal.SIGSTOP)                   # its transfers stall, and it says nothing
    try:
        wait_for(lambda: "frozen is silent" in _events(master), 40, "its transfers withdrawn", master, frozen)
        # Each is withdrawn once past its own timeout: one started later goes later (seconds
        # apart on a loaded machine).
        wait_for(lambda: _downloads(master, "frozen") == 0, 30, "every transfer to it withdrawn", master, frozen)
        for _ in range(4):                                    # and nothing new is planned to it
            time.sleep(0.5)
            row = next(n for n in master.status()["nodes"] if n["name"] == "frozen")  # type: ignore[index]
            assert row["downloads"] == 0
    finally:
        frozen.proc.send_signal(signal.SIGCONT)
    assert "slow source" not in _events(master)
    wait_for(lambda: synced(frozen) and synced(master), 60, "the peer in sync once it runs again",
             master, frozen)


def test_a_host_on_a_slow_port_is_given_the_time_it_needs(cluster: Cluster, tmp_path: Path) -> None:
    """No site tree, so no port speeds: a host that receives at 0.5 MB/s (Wi-Fi among wired hosts)
    needs 8 s for each 2 MiB chunk beside another, past the 5 s a transfer gets at loopback speed.
    Once its Stats show its speed its downloads are given the time they need: none is cut (their
    bytes thrown away) and no source is charged as slow."""
    shutil.rmtree(cluster.source)
    cluster.source.mkdir()
    (cluster.source / "big.bin").write_bytes(os.urandom(4 * 1024 * 1024))     # 2 chunks of 2 MiB
    master = cluster.start_master("--chunking", "fixed", "--chunk-size", "2MiB")
    fast = cluster.start_peer("fast")
    wait_for(lambda: synced(fast), 30, "the fast peer in sync", master, fast)
    slow = cluster.start_peer("slow", "--dl-rate", "4")
    wait_for(lambda: synced(slow), 60, "the slow peer in sync", master, fast, slow)
    events = _events(master)
    assert "slow source" not in events and "failed to get" not in events, events
    assert "goes at slow's own port speed" in events, events
    assert "failed" not in slow.output(), slow.output()
    assert tree_state(tmp_path / "slow") == tree_state(cluster.source)
