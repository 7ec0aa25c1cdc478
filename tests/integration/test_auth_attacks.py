"""Attacks on the swarm secret, with real nodes on loopback: a fake master, a relayed handshake,
frames forged, replayed or reordered after login, and chunk tokens used where they were not meant
for. Each must leave the victim's folder alone and every node up."""

from __future__ import annotations

import asyncio
import http.client
import os
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from lanscatter.core import protocol as p
from lanscatter.core.auth import TOKEN_HEADER, TOKEN_TTL_S, Auth, new_secret
from lanscatter.core.errors import AuthError
from lanscatter.core.manifest import build_manifest
from lanscatter.disk.hashing import new_hasher
from lanscatter.roles.master import MasterNode, MasterOptions
from lanscatter.roles.peer import PeerNode, PeerOptions
from tests.integration.control_client import ControlClient, hello
from tests.integration.nodes import HOST, make_tree, tree_state

SECRET = new_secret()
VICTIM, INTRUDER = "127.0.0.2", "127.0.0.3"
EMPTY = build_manifest(256 * 1024, [], [])


async def _master(tmp: Path, *, allow_nat: bool = False) -> MasterNode:
    make_tree(tmp / "origin")
    master = MasterNode(MasterOptions(folder=tmp / "origin", state_dir=tmp / "ms", host=HOST, port=0,
                                      chunk_size=256 * 1024, watch=False, secret=SECRET, allow_nat=allow_nat))
    await master.start()
    return master


def _victim(tmp: Path, port: int) -> PeerNode:
    """A peer with the secret whose folder already holds files (an empty manifest would delete them)."""
    make_tree(tmp / "victim", seed=7)
    return PeerNode(PeerOptions(master=INTRUDER, master_port=port, folder=tmp / "victim", state_dir=tmp / "vs",
                                host=VICTIM, port=0, name="victim", secret=SECRET, connect_timeout=10))


async def _serve(handler: web.RequestHandler, host: str = INTRUDER) -> tuple[web.AppRunner, int]:  # type: ignore[type-arg]
    app = web.Application()
    app.add_routes([web.get("/ws", handler)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    return runner, runner.addresses[0][1]


@pytest.mark.parametrize("welcome", ["plain", "forged"])
async def test_a_fake_master_is_refused_before_it_can_say_anything(tmp_path: Path, welcome: str) -> None:
    """It does not know the secret: its Welcome (unsealed, or sealed with a made-up MAC) is
    refused, and its empty manifest never empties the folder."""

    async def fake_master(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(p.encode(p.Challenge(os.urandom(16).hex(), p.PROTOCOL_VERSION,
                                               p.MIN_PROTOCOL_VERSION, "fake")))
        await ws.receive(timeout=5)                                  # the Hello: it cannot check it
        for msg in (p.Welcome("victim", p.PROTOCOL_VERSION), p.ManifestMsg(EMPTY.to_dict())):
            if welcome == "plain":
                await ws.send_str(p.encode(msg))
            else:
                await ws.send_bytes(os.urandom(32) + p.encode(msg).encode())
        await ws.receive(timeout=10)
        return ws

    runner, port = await _serve(fake_master)
    peer = _victim(tmp_path, port)
    before = tree_state(tmp_path / "victim")
    try:
        with pytest.raises(AuthError) as info:
            async with asyncio.timeout(15):
                await peer.run()
        assert "swarm secret" in info.value.message and info.value.hint
        assert tree_state(tmp_path / "victim") == before
    finally:
        await peer.stop()
        await runner.cleanup()


async def test_a_relayed_handshake_gives_the_intruder_nothing(tmp_path: Path) -> None:
    """The intruder gets a peer to connect to it and relays the peer's join to the real master:
    the master sees the intruder's address, not the one the peer says it connects from, and
    refuses; the intruder gets no Welcome, no manifest, no token."""
    master = await _master(tmp_path)
    from_master: list[aiohttp.WSMessage] = []

    async def intruder(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connector = aiohttp.TCPConnector(local_addr=(INTRUDER, 0))
        async with aiohttp.ClientSession(connector=connector) as session, \
                session.ws_connect(f"http://{HOST}:{master.port}/ws") as up:
            await ws.send_str((await up.receive(timeout=5)).data)          # the master's challenge
            await up.send_bytes((await ws.receive(timeout=5)).data)       # the victim's hello
            async for msg in up:
                from_master.append(msg)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
        await ws.close()
        return ws

    runner, port = await _serve(intruder)
    peer = _victim(tmp_path, port)
    before = tree_state(tmp_path / "victim")
    try:
        with pytest.raises(AuthError) as info:
            async with asyncio.timeout(15):
                await peer.run()
        assert VICTIM in info.value.message and INTRUDER in info.value.message
        assert info.value.hint and "--allow-nat" in info.value.hint
        assert [m.type for m in from_master] == [aiohttp.WSMsgType.TEXT]          # one Error, nothing sealed
        error = p.decode(from_master[0].data)
        assert isinstance(error, p.Error) and error.code == "address"
        assert not master.swarm.peers
        assert any("refused" in e.message for e in master.status().events)
        assert tree_state(tmp_path / "victim") == before
    finally:
        await peer.stop()
        await runner.cleanup()
        await master.stop()


@pytest.mark.parametrize("injected", ["unsealed", "forged"])
async def test_an_intruder_in_the_middle_cannot_inject_frames(tmp_path: Path, injected: str) -> None:
    """Even where the master accepts translated addresses (--allow-nat) and the relayed join
    succeeds, the intruder cannot speak in the session: the victim closes the connection at the
    first frame not sealed under its session key, acts on none, and stays up."""
    master = await _master(tmp_path, allow_nat=True)
    relayed = asyncio.Event()
    closed_by_victim = asyncio.Event()

    async def intruder(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connector = aiohttp.TCPConnector(local_addr=(INTRUDER, 0))
        async with aiohttp.ClientSession(connector=connector) as session, \
                session.ws_connect(f"http://{HOST}:{master.port}/ws") as up:
            await ws.send_str((await up.receive(timeout=5)).data)
            await up.send_bytes((await ws.receive(timeout=5)).data)
            welcome = await up.receive(timeout=5)
            assert welcome.type == aiohttp.WSMsgType.BINARY
            await ws.send_bytes(welcome.data)                              # the master's own proof
            relayed.set()
            bogus = p.encode(p.ManifestMsg(EMPTY.to_dict()))
            if injected == "unsealed":
                await ws.send_str(bogus)
            else:
                await ws.send_bytes(os.urandom(32) + bogus.encode())
            async for _msg in ws:
                pass
            closed_by_victim.set()
        return ws

    runner, port = await _serve(intruder)
    peer = _victim(tmp_path, port)
    before = tree_state(tmp_path / "victim")
    task = asyncio.create_task(peer.run())
    try:
        async with asyncio.timeout(15):
            await relayed.wait()
            await closed_by_victim.wait()
        assert not task.done()                      # reconnecting, not dead
        assert peer.manifest is None and tree_state(tmp_path / "victim") == before
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await peer.stop()
        await runner.cleanup()
        await master.stop()


@pytest.mark.parametrize("attack", ["forged", "replayed", "reordered", "unsealed"])
async def test_frames_after_login_that_are_not_the_next_sealed_one_close_only_that_connection(
        tmp_path: Path, attack: str) -> None:
    master = await _master(tmp_path)
    try:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"http://{HOST}:{master.port}/ws") as ws:
            peer = await ControlClient.join(ws, hello("p1"), Auth(SECRET))
            assert "p1" in master.swarm.peers
            manifest = await peer.receive()
            assert isinstance(manifest, p.ManifestMsg)
            generation = manifest.manifest["generation"]
            have = p.encode(p.Have(generation, [], replace=True)).encode()
            stats = p.encode(p.Stats(1, 2, 0, False)).encode()
            if attack == "forged":
                await ws.send_bytes(bytes(32) + have)
            elif attack == "replayed":
                frame = peer.channel.seal(stats)
                await ws.send_bytes(frame)
                await ws.send_bytes(frame)
            elif attack == "reordered":
                first, second = peer.channel.seal(stats), peer.channel.seal(have)
                await ws.send_bytes(second)
                await ws.send_bytes(first)
            else:
                await ws.send_str(p.encode(p.Have(generation, [], replace=True)))
            async with asyncio.timeout(5):
                async for _msg in ws:                # Downloads, then the Error; then closed
                    pass
        async with asyncio.timeout(5):
            while "p1" in master.swarm.peers:
                await asyncio.sleep(0.05)
        events = " ".join(e.message for e in master.status().events)
        assert "closing p1" in events and ("MAC" in events or "unsealed" in events)
        # the master is still up for everyone else
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"http://{HOST}:{master.port}/ws") as ws:
            again = await ControlClient.join(ws, hello("p2"), Auth(SECRET))
            assert again.welcome.name == "p2"
    finally:
        await master.stop()


def _get(port: int, chunk: str, token: str | None, source_ip: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10, source_address=(source_ip, 0))
    try:
        conn.request("GET", f"/chunks/{chunk}", headers={TOKEN_HEADER: token} if token else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


async def test_chunk_tokens_work_for_their_chunk_requester_source_and_time_only(tmp_path: Path) -> None:
    master = await _master(tmp_path)
    try:
        assert master.manifest is not None
        table = [h for h, size in master.manifest.chunk_table() if size > 0]
        chunk, other = table[0], table[1]
        source = f"{HOST}:{master.port}"
        now = int(time.time())
        auth = master.auth
        cases = {
            "right": (chunk, auth.chunk_token(chunk, HOST, source, now + TOKEN_TTL_S), 200),
            "expired": (chunk, auth.chunk_token(chunk, HOST, source, now - 3600), 403),
            "wrong requester": (chunk, auth.chunk_token(chunk, VICTIM, source, now + TOKEN_TTL_S), 403),
            "wrong source": (chunk, auth.chunk_token(chunk, HOST, f"{HOST}:{master.port + 1}", now + 60), 403),
            "wrong chunk": (other, auth.chunk_token(chunk, HOST, source, now + TOKEN_TTL_S), 403),
            "no token": (chunk, None, 403),
        }
        for case, (want, token, status) in cases.items():
            got, body = await asyncio.to_thread(_get, master.port, want, token, HOST)
            assert got == status, (case, body)
            if status == 200:
                h = new_hasher()
                h.update(body)
                assert h.hexdigest() == chunk
            else:
                assert body.strip(), case                    # the refusal says why
        # the same right token, observed and used from another address
        got, body = await asyncio.to_thread(_get, master.port, chunk, cases["right"][1], INTRUDER)
        assert got == 403 and INTRUDER.encode() in body
    finally:
        await master.stop()
