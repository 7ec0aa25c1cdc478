"""A master that holds the swarm secret but not the origin's key (an intruder, a rogue relay): it
lets peers join and sends them manifests it chose, signed or not as a test says.

`join` is the one place the tests speak the join handshake as a master: a change of the handshake
changes only this function.
"""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web

from lanscatter import protocol as p
from lanscatter.auth import Auth

HOST = "127.0.0.1"


async def join(ws: web.WebSocketResponse, secret: str | None) -> bool:
    """The master's side of the join, with the right secret; False when the peer did not join."""
    auth = Auth(secret)
    nonce = auth.new_nonce()
    await ws.send_str(p.encode(p.Challenge(nonce, p.PROTOCOL_VERSION, p.MIN_PROTOCOL_VERSION, "fake")))
    msg = await ws.receive(timeout=5)
    if msg.type != WSMsgType.TEXT:
        return False
    hello = p.decode(msg.data, "peer")
    if not isinstance(hello, p.Hello) or not auth.check_join(nonce, hello.proof):
        return False
    await ws.send_str(p.encode(p.Welcome(hello.name, min(hello.protocol, p.PROTOCOL_VERSION))))
    return True


class FakeMaster:
    """Serves /ws on 127.0.0.1: the n-th peer to join gets manifests[n % len(manifests)]."""

    def __init__(self, secret: str | None, manifests: list[p.ManifestMsg]) -> None:
        self.secret = secret
        self.manifests = manifests
        self.joins = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if await join(ws, self.secret):
            msg = self.manifests[self.joins % len(self.manifests)]
            self.joins += 1
            await ws.send_str(p.encode(msg))
            async for _ in ws:        # whatever the peer says, until it leaves
                pass
        await ws.close()
        return ws

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([web.get("/ws", self._ws)])
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def wait_joins(self, n: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while self.joins < n:
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
