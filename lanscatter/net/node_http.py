"""HTTP endpoints every node serves besides chunks: `/status` (JSON), `/status/ws` (the same
document pushed as a snapshot then deltas, see status_feed.py), `/metrics` (Prometheus) and, on
masters, `/` (a small self-refreshing HTML page with the chunk matrix).

None of them needs the swarm secret, so none of them may carry file names or contents: only
counts, chunk bitmaps, node names, rates and events.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from lanscatter.core.status import StatusDoc, to_json
from lanscatter.core.status_feed import FeedEncoder

log = logging.getLogger("lanscatter.status")

StatusFn = Callable[[], StatusDoc]
_INSECURE_BANNER = ('<p id="insecure" style="background:#c00;color:#fff;padding:4px">INSECURE: this node '
                    'runs with no swarm secret; anyone who reaches it can join and fetch every chunk.</p>')
FEED_TICK_S = 0.25
STATUS_CLIENTS_MAX = 64     # /status/ws clients at once; more are refused with 503


class StatusFeed:
    """Pushes the status to every `/status/ws` client: one diff per tick, whatever their number."""

    def __init__(self, status: StatusFn) -> None:
        self.status = status
        self.encoder = FeedEncoder()
        self.clients: set[web.WebSocketResponse] = set()
        self._connected = 0         # handlers running, clients still joining included

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        if self._connected >= STATUS_CLIENTS_MAX:
            raise web.HTTPServiceUnavailable(text=f"{STATUS_CLIENTS_MAX} status clients already\n",
                                             headers={"Retry-After": "10"})
        # Clients only listen: anything they send is read within a small limit and dropped.
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096)
        self._connected += 1
        try:
            await ws.prepare(request)
            await ws.send_str(json.dumps(self.encoder.join(to_json(self.status()))))
            self.clients.add(ws)
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._connected -= 1
            self.clients.discard(ws)
        return ws

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FEED_TICK_S)
            if not self.clients:
                continue
            message = self.encoder.message(to_json(self.status()))
            if message is None:
                continue
            text = json.dumps(message)
            for ws in list(self.clients):
                try:
                    await ws.send_str(text)
                except (ConnectionError, RuntimeError):
                    self.clients.discard(ws)

    async def context(self, _app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup_ctx: the tick loop lives as long as the app."""
        task = asyncio.create_task(self.run(), name="status-feed")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for ws in list(self.clients):
            await ws.close()


def coordinator_app(ws: Callable[[web.Request], Any], routes: list[web.RouteDef], status: StatusFn) -> web.Application:
    """The HTTP app of a swarm's coordinator (a master, or a relay's downstream side): its control
    websocket at /ws, the chunk routes, and the status endpoints with the HTML page."""
    app = web.Application(client_max_size=2**20)
    app.add_routes([web.get("/ws", ws), *routes])
    add_status_endpoints(app, status, html=True)
    return app


def add_status_endpoints(app: web.Application, status: StatusFn, *, html: bool) -> None:
    """Add /status, /status/ws, /metrics (and / when html) to `app`."""
    feed = StatusFeed(status)
    app.cleanup_ctx.append(feed.context)
    app.add_routes([*_routes(status, html=html), web.get("/status/ws", feed.handle)])


def _routes(status: StatusFn, *, html: bool) -> list[web.RouteDef]:
    async def get_status(_request: web.Request) -> web.Response:
        return web.json_response(to_json(status()))

    async def get_metrics(_request: web.Request) -> web.Response:
        # Loaded at the first scrape, not at start: no node needs it on its way to its first byte.
        from lanscatter.net.metrics_http import metrics_body

        body, content_type = metrics_body(status)
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = content_type
        return resp

    page = resources.files("lanscatter").joinpath("static/status.html").read_text(encoding="utf-8")
    insecure_page = page.replace("<body>", "<body>" + _INSECURE_BANNER, 1)

    async def get_page(_request: web.Request) -> web.Response:
        return web.Response(text=insecure_page if status().insecure else page, content_type="text/html")

    routes = [web.get("/status", get_status), web.get("/metrics", get_metrics)]
    if html:
        routes.append(web.get("/", get_page))
    return routes
