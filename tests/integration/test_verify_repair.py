"""A peer told that a chunk it served was corrupt reads its files again and repairs them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.nodes import flip_byte, local_peer, started_master


async def test_a_peer_whose_file_rotted_under_the_same_mtime_fetches_the_bad_chunk_again(tmp_path: Path) -> None:
    master = await started_master(tmp_path)
    peer = local_peer(tmp_path, master, "p1")
    task = asyncio.create_task(peer.run())
    rel = "d2/sub/f5.bin"                                    # 3 chunks and a bit
    good = (tmp_path / "origin" / rel).read_bytes()
    mirror = tmp_path / "p" / rel
    try:
        async with asyncio.timeout(30):
            while not peer.complete():
                await asyncio.sleep(0.05)
        assert mirror.read_bytes() == good
        flip_byte(mirror, 300 * 1024)                         # in its second chunk
        assert master.manifest is not None
        entry = next(f for f in master.manifest.files if f.path == rel)
        master.swarm.suspect("p1", entry.chunks[1])          # as when a downloader reports it corrupt
        async with asyncio.timeout(30):
            while mirror.read_bytes() != good or not peer.complete():
                await asyncio.sleep(0.05)
        assert peer.store.has(entry.chunks[1])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await peer.stop()
        await master.stop()

