"""Content that changes where metadata does not show it: a source file rewritten in place under its
old size, mtime and inode; an origin file whose cached hashes are wrong; a peer's copy rotting on
disk. Each is found, re-read and sent again, with a bounded number of failed transfers."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from pathlib import Path

import pytest

from lanscatter.core.chunking import FIXED, Chunking, fixed_sizes
from lanscatter.disk.hashing import hash_bytes
from lanscatter.roles.master import MasterNode, MasterOptions
from tests.integration.nodes import HOST, Cluster, flip_byte, local_peer, make_tree, tree_state, wait_for

REL = "d2/sub/f5.bin"            # 3 chunks and 17 bytes at 256 KiB chunks
CHUNK = 256 * 1024


def _rewrite_in_place(path: Path, seed: int) -> None:
    """New bytes over the old ones, same size, the old mtime put back: only ctime changes."""
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.write(random.Random(seed).randbytes(st.st_size))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)


def test_a_file_rewritten_in_place_under_its_old_size_mtime_and_inode_goes_out(tmp_path: Path) -> None:
    source = tmp_path / "origin"
    make_tree(source)
    cluster = Cluster(tmp_path, source)
    try:
        master = cluster.start_master()
        first = master.status()["generation"]               # type: ignore[index]
        _rewrite_in_place(source / REL, seed=7)
        wait_for(lambda: master.status()["generation"] != first, 20,  # type: ignore[index]
                 "a rescan to see the rewritten file", master)
        peer = cluster.start_peer("p1", "--exit-when-synced")
        assert peer.proc.wait(timeout=30) == 0, peer.output()
        assert tree_state(tmp_path / "p1") == tree_state(source)
        assert master.output().count("failed to get chunk") == 0
    finally:
        cluster.close()


async def test_an_origin_file_whose_cached_hashes_are_wrong_is_read_again_not_sent_in_a_loop(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The master's hash cache vouches for hashes the file no longer has, under its current
    metadata (as rot under the file system would leave it). The first downloader that finds a
    mismatch makes the master forget them and rescan; the peer then gets the real content."""
    make_tree(tmp_path / "origin")
    path = tmp_path / "origin" / REL
    size = path.stat().st_size
    master = MasterNode(MasterOptions(folder=tmp_path / "origin", state_dir=tmp_path / "ms", host=HOST, port=0,
                                      chunk_size=CHUNK, chunking=FIXED, watch=False))
    sizes = fixed_sizes(size, CHUNK)
    wrong = tuple(hash_bytes(b"what the file held once %d" % k) for k in range(len(sizes)))
    master.cache.put(REL, os.stat(path), Chunking(FIXED, CHUNK), wrong, sizes)
    caplog.set_level(logging.INFO, logger="lanscatter")
    await master.start()
    assert master.manifest is not None and master.manifest.file(REL).chunks == wrong  # type: ignore[union-attr]
    peer = local_peer(tmp_path, master, "p1")
    task = asyncio.create_task(peer.run())
    try:
        async with asyncio.timeout(30):
            while not (peer.complete() and peer.manifest is not None
                       and peer.manifest.generation == master.manifest.generation
                       and master.manifest.file(REL).chunks != wrong):  # type: ignore[union-attr]
                await asyncio.sleep(0.05)
        assert tree_state(tmp_path / "p") == tree_state(tmp_path / "origin")
        failed = [r for r in caplog.records if "failed to get chunk" in r.getMessage()]
        # At most one failed transfer per wrong chunk and download slot, never a loop.
        assert len(failed) <= len(wrong) * 2, "\n".join(r.getMessage() for r in failed)
        assert peer.counters.rx_bytes <= 2 * master.manifest.total_bytes
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await peer.stop()
        await master.stop()


def test_a_chunk_that_rots_on_a_peer_is_found_by_the_scrub_and_fetched_again(tmp_path: Path) -> None:
    source = tmp_path / "origin"
    make_tree(source)
    cluster = Cluster(tmp_path, source)
    try:
        master = cluster.start_master()
        peer = cluster.start_peer("p1")
        wait_for(lambda: (st := master.status()) and st["synced"] and len(st["nodes"]) == 2, 30,
                 "the peer synced", master, peer)
        assert tree_state(tmp_path / "p1") == tree_state(source)
        flip_byte(tmp_path / "p1" / REL, CHUNK + 1000)           # in its second chunk
        wait_for(lambda: tree_state(tmp_path / "p1") == tree_state(source), 40,
                 "the rotted chunk fetched again", master, peer)
        assert "no longer matches its hash" in peer.output()
        assert peer.proc.poll() is None
    finally:
        cluster.close()


def test_a_chunk_that_rots_on_a_relay_is_fetched_again_and_its_site_stays_whole(tmp_path: Path) -> None:
    source = tmp_path / "origin"
    make_tree(source)
    cluster = Cluster(tmp_path, source)
    try:
        master = cluster.start_master()
        relay = cluster.start_relay("gw", master)
        leaf = cluster.start_peer_of("b1", relay)
        wait_for(lambda: tree_state(tmp_path / "gw") == tree_state(source)
                 and tree_state(tmp_path / "b1") == tree_state(source), 40, "the site synced",
                 master, relay, leaf)
        flip_byte(tmp_path / "gw" / REL, 2 * CHUNK + 5)           # in its third chunk
        wait_for(lambda: "no longer matches its hash" in relay.output(), 30, "the relay's scrub", relay)
        wait_for(lambda: tree_state(tmp_path / "gw") == tree_state(source), 30,
                 "the relay fetched the chunk again", master, relay)
        assert tree_state(tmp_path / "b1") == tree_state(source)
        assert relay.proc.poll() is None and leaf.proc.poll() is None
    finally:
        cluster.close()
