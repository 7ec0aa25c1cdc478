"""Following an endpoint whose feed goes out of step: the client reconnects for a fresh snapshot."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from lanscatter.core.status import StatusDoc
from lanscatter_tui.feed_client import Backoff, Source, follow


async def test_a_seq_gap_makes_the_client_reconnect_and_start_from_a_snapshot() -> None:
    connections = 0

    async def status_ws(request: web.Request) -> web.WebSocketResponse:
        nonlocal connections
        connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = {"type": "snapshot", "seq": 0, "status": {"generation": "g", "time": float(connections)}}
        await ws.send_str(json.dumps(first))
        if connections == 1:
            # seq 2 right after seq 0: the client cannot know what it missed.
            await ws.send_str(json.dumps({"type": "delta", "seq": 2, "set": {"time": 99.0}}))
        await ws.receive()  # until the client goes away
        return ws

    app = web.Application()
    app.router.add_get("/status/ws", status_ws)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    seen: list[StatusDoc] = []
    downs: list[str] = []
    task = asyncio.create_task(
        follow(Source("s", url), seen.append, downs.append, backoff=Backoff(first_s=0.05, max_s=0.1))
    )
    try:
        async with asyncio.timeout(10):
            while len(seen) < 2:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.cleanup()
    assert [s.time for s in seen] == [1.0, 2.0]  # the bad delta was never applied
    assert connections == 2
    assert downs == []  # out of step is not down


async def test_a_hostile_status_document_is_refused_and_the_client_keeps_following() -> None:
    """A snapshot that is no status document (out of bounds, escape codes, NaN): the endpoint counts
    as down with the reason, nothing reaches the monitor, and the client tries again."""
    connections = 0
    hostile = [{"chunks": -1}, {"nodes": [{"name": "x", "rx_rate": "NaN"}]}, {"nodes": {"name": "\x1b[2J"}}]

    async def status_ws(request: web.Request) -> web.WebSocketResponse:
        nonlocal connections
        connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        status = hostile[(connections - 1) % len(hostile)]
        await ws.send_str(json.dumps({"type": "snapshot", "seq": 0, "status": status}))
        await ws.receive()
        return ws

    app = web.Application()
    app.router.add_get("/status/ws", status_ws)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    seen: list[StatusDoc] = []
    downs: list[str] = []
    task = asyncio.create_task(
        follow(Source("s", url), seen.append, downs.append, backoff=Backoff(first_s=0.05, max_s=0.1))
    )
    try:
        async with asyncio.timeout(10):
            while len(downs) < 3:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.cleanup()
    assert seen == [] and connections >= 3
    assert all(d.startswith("sent no usable status (status.") for d in downs), downs


async def test_a_site_with_standby_gateways_is_followed_at_the_active_one() -> None:
    async def serve(active: bool) -> tuple[web.AppRunner, str]:
        async def status_ws(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            status = {"name": f"gw-{active}", "generation": "g", "gateway": {"rank": int(not active), "active": active}}
            await ws.send_str(json.dumps({"type": "snapshot", "seq": 0, "status": status}))
            await ws.receive()
            return ws

        app = web.Application()
        app.router.add_get("/status/ws", status_ws)
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

    standby, standby_url = await serve(False)
    active, active_url = await serve(True)
    seen: list[StatusDoc] = []
    task = asyncio.create_task(follow(Source("s", standby_url, (active_url,)), seen.append, lambda _: None,
                                      backoff=Backoff(first_s=0.05, max_s=0.1)))
    try:
        async with asyncio.timeout(10):
            while not seen:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await standby.cleanup()
        await active.cleanup()
    assert [s.name for s in seen] == ["gw-True"]
