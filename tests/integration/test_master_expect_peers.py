"""A master told to expect peers publishes its first generation once they joined (or a bounded wait
passed): peers started together with it get that generation from its first moment."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from lanscatter.roles.master import MasterNode, MasterOptions
from lanscatter.roles.peer import PeerNode, PeerOptions
from tests.integration.nodes import make_tree


def _master(tmp: Path, expect: int, wait_s: float) -> MasterNode:
    make_tree(tmp / "origin")
    return MasterNode(MasterOptions(folder=tmp / "origin", state_dir=tmp / "ms", host="127.0.0.1", port=0,
                                    chunk_size=256 * 1024, watch=False, expect_peers=expect, expect_wait_s=wait_s))


async def test_first_generation_waits_for_the_expected_peer(tmp_path: Path) -> None:
    master = _master(tmp_path, expect=1, wait_s=30)
    starting = asyncio.create_task(master.start())
    peer_task: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(10):
            while not master.port:                  # set once it listens
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert master.manifest is None and not starting.done()      # listening, not yet published
        peer = PeerNode(PeerOptions(master="127.0.0.1", master_port=master.port, folder=tmp_path / "p",
                                    state_dir=tmp_path / "ps", host="127.0.0.1", port=0, name="p1"))
        joined_at = time.monotonic()
        peer_task = asyncio.create_task(peer.run())
        async with asyncio.timeout(10):
            await starting
        assert master.manifest is not None and time.monotonic() - joined_at < 5
        async with asyncio.timeout(30):
            while not master.swarm.synced():
                await asyncio.sleep(0.05)
    finally:
        for t in (peer_task, starting):
            if t is not None:
                t.cancel()
        await asyncio.gather(*(t for t in (peer_task, starting) if t is not None), return_exceptions=True)
        await master.stop()


async def test_no_peer_comes_the_master_publishes_after_the_wait(tmp_path: Path) -> None:
    master = _master(tmp_path, expect=2, wait_s=0.5)
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(10):
            await master.start()
        assert master.manifest is not None and time.monotonic() - t0 >= 0.5
    finally:
        await master.stop()
