"""`/status/ws` on a real master: a snapshot, then deltas that track GET /status."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from lanscatter.core.status_feed import FeedDecoder
from tests.integration.nodes import local_peer, started_master


async def test_feed_follows_a_sync_to_the_end(tmp_path: Path) -> None:
    master = await started_master(tmp_path)
    peer = local_peer(tmp_path, master, "p1")
    task: asyncio.Task[None] | None = None
    decoder = FeedDecoder()
    kinds = []
    try:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"http://127.0.0.1:{master.port}/status/ws") as ws:
            first = await ws.receive_json(timeout=5)
            assert first["type"] == "snapshot"
            decoder.receive(first)
            task = asyncio.create_task(peer.run())
            async with asyncio.timeout(30):
                while not (decoder.status and decoder.status["synced"] and len(decoder.status["nodes"]) == 2):
                    msg = await ws.receive_json()
                    kinds.append(msg["type"])
                    decoder.receive(msg)
            async with session.get(f"http://127.0.0.1:{master.port}/status") as resp:
                polled = await resp.json()
        assert "delta" in kinds
        assert decoder.status is not None
        live = {n["name"]: n["bitmap"] for n in decoder.status["nodes"]}
        assert live == {n["name"]: n["bitmap"] for n in polled["nodes"]}
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await peer.stop()
        await master.stop()
