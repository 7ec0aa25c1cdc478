"""A peer learns how early to say Ending from its own downloads: on loopback the next transfer's
first bytes follow an Ending within milliseconds, so the lead drops from the default 0.1 s to
about that, and the sync is whole."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from lanscatter.core.chunking import FIXED
from lanscatter.core.ending_lead import LAN_LEAD_S, MIN_LEAD_S
from lanscatter.roles.master import MasterNode, MasterOptions
from lanscatter.roles.peer import PeerNode, PeerOptions
from tests.integration.nodes import HOST, tree_state


async def test_a_peer_learns_its_ending_lead_from_the_gaps_it_measures(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    (origin / "data.bin").write_bytes(os.urandom(12 << 20))
    # 1 MiB chunks from an upload of 8 MB/s: two at a time, each about a quarter of a second,
    # long enough for its Ending to be said ahead of its end
    master = MasterNode(MasterOptions(folder=origin, state_dir=tmp_path / "ms", host=HOST, port=0,
                                      chunk_size=1 << 20, chunking=FIXED, watch=False, ul_rate=8e6))
    await master.start()
    peer = PeerNode(PeerOptions(master=HOST, master_port=master.port, folder=tmp_path / "p",
                                state_dir=tmp_path / "ps", host=HOST, port=0, name="p1"))
    assert peer.link.ending_lead(False) == LAN_LEAD_S
    task = asyncio.create_task(peer.run())
    try:
        async with asyncio.timeout(30):
            while not (master.swarm.peers and master.swarm.synced()):
                await asyncio.sleep(0.05)
        learnt = peer.link.ending_lead(False)
        assert MIN_LEAD_S <= learnt < LAN_LEAD_S / 2, learnt
        assert tree_state(tmp_path / "p") == tree_state(origin)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await master.stop()
