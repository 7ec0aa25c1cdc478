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
from collections.abc import AsyncIterator, Callable, Iterator
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

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


class _StatusCollector(Collector):
    """Turns the status document into metrics at scrape time (no second set of counters)."""

    def __init__(self, status: StatusFn) -> None:
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        st = self.status()
        yield GaugeMetricFamily("lanscatter_chunks", "Distinct chunks in the current generation",
                                value=st.chunks)
        yield GaugeMetricFamily("lanscatter_dataset_bytes", "Bytes of distinct content", value=st.bytes)
        yield GaugeMetricFamily("lanscatter_synced", "1 when every node holds every chunk",
                                value=1 if st.synced else 0)
        yield GaugeMetricFamily("lanscatter_insecure", "1 when this node runs with no swarm secret (--insecure)",
                                value=1 if st.insecure else 0)
        version = GaugeMetricFamily("lanscatter_published_timestamp_seconds",
                                    "When the origin published the version held here", labels=["generation", "label"])
        if (pub := st.published) is not None:
            version.add_metric([pub.generation, pub.label], pub.published_ms / 1000)
        yield version
        have = GaugeMetricFamily("lanscatter_node_chunks", "Chunks each node holds", labels=["node"])
        rx = CounterMetricFamily("lanscatter_node_rx_bytes", "Bytes received", labels=["node"])
        tx = CounterMetricFamily("lanscatter_node_tx_bytes", "Bytes sent", labels=["node"])
        online = GaugeMetricFamily("lanscatter_node_online", "1 while connected", labels=["node"])
        dl = GaugeMetricFamily("lanscatter_node_download_slots_used", "Download slots in use (never above the slots)",
                               labels=["node"])
        ul = GaugeMetricFamily("lanscatter_node_upload_slots_used", "Upload slots in use (never above the slots)",
                               labels=["node"])
        for n in st.nodes:
            have.add_metric([n.name], n.have)
            rx.add_metric([n.name], n.rx_bytes)
            tx.add_metric([n.name], n.tx_bytes)
            online.add_metric([n.name], 1 if n.online else 0)
            dl.add_metric([n.name], n.dl_slots_used)
            ul.add_metric([n.name], n.ul_slots_used)
        yield from (have, rx, tx, online, dl, ul)
        link = CounterMetricFamily("lanscatter_link_bytes", "Bytes carried per WAN link", labels=["link"])
        for ln in st.links:
            link.add_metric([ln.name], ln.bytes)
        yield link


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
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatusCollector(status))

    async def get_status(_request: web.Request) -> web.Response:
        return web.json_response(to_json(status()))

    async def get_metrics(_request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    page = resources.files("lanscatter").joinpath("static/status.html").read_text(encoding="utf-8")
    insecure_page = page.replace("<body>", "<body>" + _INSECURE_BANNER, 1)

    async def get_page(_request: web.Request) -> web.Response:
        return web.Response(text=insecure_page if status().insecure else page, content_type="text/html")

    routes = [web.get("/status", get_status), web.get("/metrics", get_metrics)]
    if html:
        routes.append(web.get("/", get_page))
    return routes
