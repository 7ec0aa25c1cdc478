"""A version that changes a few files of a large folder crosses each link as a manifest delta, not
as the whole manifest again: master -> relay (the WAN link) and relay -> its site's peer. Real
processes; the bytes are the master's (the relay's) control frames each receiver counts. A delta
that does not rebuild what the origin signed is refused, and the whole manifest fetched."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from lanscatter.core import protocol as p
from lanscatter.core.auth import Auth
from lanscatter.core.chunking import CDC, Chunking
from lanscatter.core.manifest import build_manifest
from lanscatter.core.manifest_delta import make_delta
from lanscatter.core.manifest_wire import to_wire
from lanscatter.core.signing import public_key_of, sign_version
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.scanner import scan_folder
from lanscatter.disk.signing_keys import create_signing_key
from tests.integration.fake_master import HOST, join
from tests.integration.nodes import Cluster, Node, tree_state, wait_for
from tests.ports import free_port

FILES = 3000


def _on(node: Node, generation: str) -> bool:
    st = node.status()
    return bool(st and st["generation"] == generation and st["synced"])


def _control(relay: Node, leaf: Node) -> tuple[int, int]:
    """Control bytes the relay received from the master, and the leaf from the relay."""
    up, down = relay.status(), leaf.status()
    assert up is not None and down is not None
    return int(up["links"][0]["control_bytes"]), int(down["control_rx_bytes"])


def test_ten_changed_files_cross_each_link_as_a_delta(tmp_path: Path) -> None:
    source = tmp_path / "origin"
    for k in range(FILES):
        folder = source / f"d{k % 30:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file-{k:05d}.txt").write_bytes(f"group {k % 5}\n".encode())     # few chunks to move
    scanned = scan_folder(source, Chunking(CDC, 4096), HashCache(None))[0]
    whole = len(scanned.to_json())                        # the manifest as a list of entries (format 2)
    sent_whole = len(p.encode(p.ManifestMsg(to_wire(scanned))))    # as it goes whole (format 3)
    c = Cluster(tmp_path, source, chunk_size="4KiB")
    try:
        master = c.start_master()
        relay = c.start_relay("gw", master)
        leaf = c.start_peer_of("leaf", relay)
        first = master.status()["generation"]  # type: ignore[index]
        wait_for(lambda: _on(relay, first) and _on(leaf, first), 90, "first version everywhere", relay, leaf)
        up_before, down_before = _control(relay, leaf)
        assert up_before > sent_whole and down_before > sent_whole       # the first version came whole
        for k in range(0, 10 * 7, 7):
            (source / f"d{k % 30:02d}" / f"file-{k:05d}.txt").write_bytes(os.urandom(300))
        (source / "d00" / "file-00000.txt").unlink()
        (source / "new" / "dir").mkdir(parents=True)
        second = wait_for(lambda: (g := master.status()["generation"]) != first and g, 60,  # type: ignore[index]
                          "the master's second version", master)
        wait_for(lambda: _on(relay, second) and _on(leaf, second), 90, "second version everywhere", relay, leaf)
        up_after, down_after = _control(relay, leaf)
        assert tree_state(tmp_path / "leaf") == tree_state(source)
        # The delta is about a dozen entries; the rest is the chunks' Download commands.
        assert up_after - up_before < whole / 10, (up_after - up_before, whole)
        assert down_after - down_before < whole / 10, (down_after - down_before, whole)
        assert "manifest delta" not in relay.output() + leaf.output()     # none refused
    finally:
        c.close()


SECRET = "swarm-secret-for-these-tests"


async def test_a_delta_that_builds_something_else_is_refused_and_the_whole_manifest_fetched(
        tmp_path: Path) -> None:
    origin = create_signing_key(tmp_path / "keys" / "origin.key")
    v1 = build_manifest(4096, [], ["keep"], CDC)
    v2 = build_manifest(4096, [], ["keep", "more"], CDC)
    other = build_manifest(4096, [], ["keep", "evil"], CDC)
    signed1 = sign_version(v1, origin, published_ms=1)
    signed2 = sign_version(v2, origin, published_ms=2)
    delta = make_delta(v1, other)          # a well-formed delta, to content the origin did not sign
    assert delta is not None
    heard: list[p.Message] = []

    def send(ws: web.WebSocketResponse, channel: object, msg: p.Message) -> Any:
        return ws.send_bytes(channel.seal(p.encode(msg).encode()))  # type: ignore[attr-defined]

    async def until(ws: web.WebSocketResponse, channel: object, want: type[p.Message], gen: str) -> None:
        async for frame in ws:
            if frame.type != WSMsgType.BINARY:
                continue
            msg = p.decode(channel.open(frame.data, "peer"), "peer")  # type: ignore[attr-defined]
            heard.append(msg)
            if isinstance(msg, want) and getattr(msg, "generation", None) == gen and (
                    not isinstance(msg, p.Have) or msg.replace):
                return

    async def serve(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        channel = await join(ws, Auth(SECRET))
        if channel is not None:
            await send(ws, channel, p.ManifestMsg(v1.to_dict(), signed1.statement, signed1.signature))
            await until(ws, channel, p.Have, v1.generation)
            await send(ws, channel, p.ManifestDelta(v1.generation, v2.generation, delta,
                                                    signed2.statement, signed2.signature))
            await until(ws, channel, p.ManifestWanted, v2.generation)
            await send(ws, channel, p.ManifestMsg(v2.to_dict(), signed2.statement, signed2.signature))
            await until(ws, channel, p.Have, v2.generation)
        await ws.close()
        return ws

    app = web.Application()
    app.add_routes([web.get("/ws", serve)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, HOST, 0).start()
    master_port = runner.addresses[0][1]
    port = free_port()
    folder = tmp_path / "host"
    peer = Node(["peer", f"{HOST}:{master_port}", str(folder), "--listen", HOST, "--port", str(port),
                 "--name", "host", "--state-dir", str(tmp_path / "state"),
                 "--origin-key", public_key_of(origin).text], tmp_path / "host.log", port,
                {"LANSCATTER_SECRET": SECRET})
    try:
        async with asyncio.timeout(60):
            while not any(isinstance(m, p.Have) and m.generation == v2.generation for m in heard):
                await asyncio.sleep(0.1)
        assert (folder / "more").is_dir() and not (folder / "evil").exists()
        assert "does not rebuild the generation the origin signed" in peer.output()
        assert sum(isinstance(m, p.ManifestWanted) for m in heard) == 1
    finally:
        peer.stop()
        await runner.cleanup()


