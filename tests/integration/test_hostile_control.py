"""A master facing malformed and out-of-order control messages: it answers with a protocol error,
closes that connection only, and keeps serving everyone else."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from tests.integration.nodes import local_peer, started_master, tree_state


@pytest.mark.parametrize("first", [
    "not json at all",
    json.dumps({"t": "have", "generation": "x", "chunks": []}),          # before hello
    json.dumps({"t": "hello", "name": 5}),                               # mistyped
    json.dumps({"t": "hello", "name": "p", "protocol": 99, "min_protocol": 99, "software": "x",
                "proof": "", "port": 0, "dl_slots": 1, "ul_slots": 0}),  # no common version
])
async def test_bad_first_message_closes_only_that_connection(tmp_path: Path, first: str) -> None:
    master = await started_master(tmp_path)
    peer = local_peer(tmp_path, master, "good")
    task = asyncio.create_task(peer.run())
    try:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"http://127.0.0.1:{master.port}/ws") as ws:
            challenge = await ws.receive_json(timeout=5)
            assert challenge["t"] == "challenge"
            await ws.send_str(first)
            reply = await ws.receive(timeout=5)
            assert reply.type == aiohttp.WSMsgType.TEXT
            error = json.loads(reply.data)
            assert error["t"] == "error" and error["code"] in ("protocol", "version")
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        async with asyncio.timeout(30):
            while not peer.complete():
                await asyncio.sleep(0.1)
        assert tree_state(tmp_path / "p") == tree_state(tmp_path / "origin")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await peer.stop()
        await master.stop()


async def test_garbage_after_joining_drops_the_offender(tmp_path: Path) -> None:
    master = await started_master(tmp_path)
    try:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"http://127.0.0.1:{master.port}/ws") as ws:
            await ws.receive_json(timeout=5)
            await ws.send_str(json.dumps({"t": "hello", "name": "rogue", "protocol": 1, "min_protocol": 1,
                                          "software": "x", "proof": "", "port": 0, "dl_slots": 1,
                                          "ul_slots": 0}))
            assert (await ws.receive_json(timeout=5))["t"] == "welcome"
            assert (await ws.receive_json(timeout=5))["t"] == "manifest"
            await ws.send_str(json.dumps({"t": "download", "transfer": 1, "chunk": "0" * 64, "size": 1,
                                          "source": "x", "url": "http://127.0.0.1:1", "timeout_s": 1.0}))
            error = await ws.receive_json(timeout=5)    # a master's message, from a peer
            assert error["t"] == "error" and "only a master sends" in error["message"]
        async with asyncio.timeout(5):
            while "rogue" in master.swarm.peers:
                await asyncio.sleep(0.05)
        st = master.status()
        assert any("closing rogue" in e["message"] for e in st["events"])
    finally:
        await master.stop()
