"""A master facing malformed and out-of-order control messages: it answers with a protocol error,
closes that connection only, and keeps serving everyone else."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from lanscatter.core import protocol as p
from lanscatter.core.auth import Auth
from lanscatter.core.handshake import seal_hello
from tests.integration.control_client import ControlClient, hello
from tests.integration.nodes import local_peer, started_master, tree_state


@pytest.mark.parametrize(("first", "sealed"), [
    ("not json at all", False),
    (json.dumps({"t": "have", "generation": "x", "chunks": []}), False),         # before hello
    (json.dumps({"t": "hello", "name": 5}), True),                               # mistyped
    (p.encode(hello("p", protocol=99, min_protocol=99)), True),                 # no common version
])
async def test_bad_first_message_closes_only_that_connection(tmp_path: Path, first: str, sealed: bool) -> None:
    master = await started_master(tmp_path)
    peer = local_peer(tmp_path, master, "good")
    task = asyncio.create_task(peer.run())
    try:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"http://127.0.0.1:{master.port}/ws") as ws:
            challenge = await ws.receive_json(timeout=5)
            assert challenge["t"] == "challenge"
            if sealed:
                await ws.send_bytes(seal_hello(Auth(None), challenge["nonce"], first.encode()))
            else:
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
            rogue = await ControlClient.join(ws, hello("rogue", dl_slots=1))
            assert rogue.welcome.name == "rogue"
            assert (await rogue.receive_json())["t"] == "manifest"
            await rogue.send(p.Download(1, "0" * 64, 1, "x", "http://127.0.0.1:1", 1.0))
            error = await rogue.receive_json()    # a master's message, from a peer
            assert error["t"] == "error" and "only a master sends" in error["message"]
        async with asyncio.timeout(5):
            while "rogue" in master.swarm.peers:
                await asyncio.sleep(0.05)
        st = master.status()
        assert any("closing rogue" in e.message for e in st.events)
    finally:
        await master.stop()
