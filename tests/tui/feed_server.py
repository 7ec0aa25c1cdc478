"""Real status endpoints on 127.0.0.1 serving a recorded feed, for the monitor's tests.

Each site gets an aiohttp server on its own port (bound to port 0 the first time, the same port
after a restart) with `GET /status` and `GET /status/ws`, speaking the real feed protocol
(`lanscatter.core.status_feed`). The servers run on an event loop in a thread of their own, so both
async pilot tests and the synchronous snapshot fixture can use them; the test moves the shown
moment of the recording with `show(t)` and takes a site down and back with `stop`/`start`.
`Recording` finds the moments the tests need (a node down and back, the end) in the file, so the
tests follow a new recording without edits.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from aiohttp import WSCloseCode, web

from lanscatter.core.status_feed import FeedDecoder, FeedEncoder

FEEDS = Path(__file__).with_name("feeds")
PUSH_INTERVAL_S = 0.05


def load_feed(path: Path) -> dict[str, list[tuple[float, dict[str, Any]]]]:
    """Per site, the (time, status) after each recorded message, decoded with the real client."""
    decoders: dict[str, FeedDecoder] = {}
    frames: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        status = decoders.setdefault(record["site"], FeedDecoder()).receive(record["message"])
        frames.setdefault(record["site"], []).append((float(record["t"]), status))
    return frames


class Recording:
    """The statuses of a recorded feed, by site, and the moments in it."""

    def __init__(self, feed: Path = FEEDS / "rehearsal.jsonl") -> None:
        self.frames = load_feed(feed)

    @property
    def end(self) -> float:
        return max(frames[-1][0] for frames in self.frames.values())

    def at(self, site: str, t: float) -> dict[str, Any]:
        """The status of `site` as served at `t` (what `FeedServers.show(t)` serves)."""
        return _current(self.frames[site], t)

    def node_names(self, site: str, t: float) -> list[str]:
        return [node["name"] for node in self.at(site, t)["nodes"]]

    def outage(self, site: str, node: str) -> tuple[float, float, float]:
        """When `node` was last seen online, first seen down, and first seen back after that."""
        last_up = went_down = None
        for t, status in self.frames[site]:
            online = next((n["online"] for n in status["nodes"] if n["name"] == node), None)
            if went_down is None and online:
                last_up = t
            elif went_down is None and online is False and last_up is not None:
                went_down = t
            elif went_down is not None and online:
                return last_up, went_down, t
        raise AssertionError(f"{node} does not go down and come back in the recording of {site}")

    def progress(self, t: float) -> float:
        """The share of chunk copies the receiving nodes of every site hold at `t`."""
        held = wanted = 0
        for site in self.frames:
            status = self.at(site, t)
            for node in status["nodes"]:
                if node["role"] != "master" and node["site"] == site:
                    held += node["have"]
                    wanted += status["chunks"]
        return held / wanted if wanted else 0.0     # before the first generation: nothing wanted yet

    def when_progress(self, share: float) -> float:
        """The first moment the receiving nodes hold `share` of their chunk copies."""
        times = sorted({t for frames in self.frames.values() for t, _ in frames})
        return next(t for t in times if self.progress(t) >= share)


def _current(frames: list[tuple[float, dict[str, Any]]], t: float) -> dict[str, Any]:
    chosen = frames[0][1]
    for at, status in frames:
        if at > t:
            break
        chosen = status
    return chosen


class SiteServer:
    def __init__(self, frames: list[tuple[float, dict[str, Any]]], websocket: bool) -> None:
        self.frames = frames
        self.t = 0.0
        self.websocket = websocket
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    def current(self) -> dict[str, Any]:
        return _current(self.frames, self.t)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/status", self._status)
        app.router.add_get("/status/ws", self._status_ws)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.current())

    async def _status_ws(self, request: web.Request) -> web.StreamResponse:
        if not self.websocket:
            raise web.HTTPNotFound()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        encoder = FeedEncoder()
        try:
            while not ws.closed:
                message = encoder.message(self.current())
                if message is not None:
                    await ws.send_str(json.dumps(message))
                await asyncio.sleep(PUSH_INTERVAL_S)
        except ConnectionResetError:
            pass  # the client went away: nothing left to send to
        finally:
            self._sockets.discard(ws)
        return ws


class FeedServers:
    """The sites of one recording, served from a background event loop."""

    def __init__(self, feed: Path, websocket: bool = True) -> None:
        self.sites = {site: SiteServer(frames, websocket) for site, frames in load_feed(feed).items()}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="feed-servers", daemon=True)

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=10)

    def url(self, site: str) -> str:
        return f"http://127.0.0.1:{self.sites[site].port}"

    def show(self, t: float) -> None:
        """Serve every site as recorded at `t` seconds into the recording."""
        for server in self.sites.values():
            server.t = t

    def stop(self, site: str) -> None:
        self._call(self.sites[site].stop())

    def start(self, site: str) -> None:
        self._call(self.sites[site].start())

    def __enter__(self) -> Self:
        self._thread.start()
        for site in self.sites:
            self.start(site)
        return self

    def __exit__(self, *exc: object) -> None:
        for site in self.sites:
            self.stop(site)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextmanager
def serve(feed: str = "rehearsal.jsonl", *, at: float = 0.0, websocket: bool = True) -> Iterator[FeedServers]:
    with FeedServers(FEEDS / feed, websocket=websocket) as servers:
        servers.show(at)
        yield servers
