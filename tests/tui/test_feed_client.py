"""Following an endpoint whose feed goes out of step: the client reconnects for a fresh snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from lanscatter.core.status import StatusDoc
from lanscatter_tui.feed_client import Backoff, Source, follow


@dataclass
class _Endpoint:
    url: str
    connections: int = 0


@contextlib.asynccontextmanager
async def _feed_endpoint(frames: Callable[[int], list[dict[str, Any]]]) -> AsyncIterator[_Endpoint]:
    """A `/status/ws` on 127.0.0.1 that sends its n-th connection (from 1) the frames `frames(n)`,
    then waits until the client goes away."""
    endpoint = _Endpoint("")

    async def status_ws(request: web.Request) -> web.WebSocketResponse:
        endpoint.connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for frame in frames(endpoint.connections):
            await ws.send_str(json.dumps(frame))
        await ws.receive()  # until the client goes away
        return ws

    app = web.Application()
    app.router.add_get("/status/ws", status_ws)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    endpoint.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield endpoint
    finally:
        await runner.cleanup()


async def _follow_until(source: Source,
                        done: Callable[[list[StatusDoc], list[str]], bool]) -> tuple[list[StatusDoc], list[str]]:
    """The documents the client passed on and the reasons it gave for the endpoint being down,
    once `done` says so (within 10 s)."""
    seen: list[StatusDoc] = []
    downs: list[str] = []
    task = asyncio.create_task(follow(source, seen.append, downs.append, backoff=Backoff(first_s=0.05, max_s=0.1)))
    try:
        async with asyncio.timeout(10):
            while not done(seen, downs):
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return seen, downs


def _snapshot(status: dict[str, Any]) -> dict[str, Any]:
    return {"type": "snapshot", "seq": 0, "status": status}


async def test_a_seq_gap_makes_the_client_reconnect_and_start_from_a_snapshot() -> None:
    def frames(connection: int) -> list[dict[str, Any]]:
        first = _snapshot({"generation": "g", "time": float(connection)})
        # seq 2 right after seq 0 on the first connection: the client cannot know what it missed.
        return [first, {"type": "delta", "seq": 2, "set": {"time": 99.0}}] if connection == 1 else [first]

    async with _feed_endpoint(frames) as endpoint:
        seen, downs = await _follow_until(Source("s", endpoint.url), lambda seen, _: len(seen) >= 2)
    assert [s.time for s in seen] == [1.0, 2.0]  # the bad delta was never applied
    assert endpoint.connections == 2
    assert downs == []  # out of step is not down


async def test_a_hostile_status_document_is_refused_and_the_client_keeps_following() -> None:
    """A snapshot that is no status document (out of bounds, escape codes, NaN): the endpoint counts
    as down with the reason, nothing reaches the monitor, and the client tries again."""
    hostile = [{"chunks": -1}, {"nodes": [{"name": "x", "rx_rate": "NaN"}]}, {"nodes": {"name": "\x1b[2J"}}]

    async with _feed_endpoint(lambda connection: [_snapshot(hostile[(connection - 1) % len(hostile)])]) as endpoint:
        seen, downs = await _follow_until(Source("s", endpoint.url), lambda _, downs: len(downs) >= 3)
    assert seen == [] and endpoint.connections >= 3
    assert all(d.startswith("sent no usable status (status.") for d in downs), downs


async def test_a_site_with_standby_gateways_is_followed_at_the_active_one() -> None:
    def gateway(active: bool) -> Callable[[int], list[dict[str, Any]]]:
        status = {"name": f"gw-{active}", "generation": "g", "gateway": {"rank": int(not active), "active": active}}
        return lambda connection: [_snapshot(status)]

    async with _feed_endpoint(gateway(False)) as standby, _feed_endpoint(gateway(True)) as active:
        seen, _ = await _follow_until(Source("s", standby.url, (active.url,)), lambda seen, _: bool(seen))
    assert [s.name for s in seen] == ["gw-True"]
