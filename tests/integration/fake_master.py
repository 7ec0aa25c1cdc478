"""A master that holds the swarm secret but not the origin's key (an intruder, a rogue relay): it
lets peers join and sends them manifests it chose, signed or not as a test says.

`join` is the one place the tests speak the join handshake as a master: a change of the handshake
changes only this function.
"""

from __future__ import annotations

import secrets

from aiohttp import WSMsgType, web

from lanscatter.core import protocol as p
from lanscatter.core.auth import Auth
from lanscatter.core.handshake import Accepted, Channel, MasterHandshake

HOST = "127.0.0.1"


async def join(ws: web.WebSocketResponse, auth: Auth) -> Channel | None:
    """The master's side of the join, with the right secret: the session's channel, or None when
    the peer did not join."""
    hs = MasterHandshake(auth, secrets.token_hex(16), software="fake")
    await ws.send_str(hs.challenge())
    msg = await ws.receive(timeout=5)
    if msg.type != WSMsgType.BINARY:
        return None
    outcome = hs.receive_hello(msg.data, seen_from=HOST, allow_nat=True, them="peer")
    if not isinstance(outcome, Accepted):
        return None
    welcome, channel = hs.welcome(outcome.hello.name)
    await ws.send_bytes(welcome)
    return channel


class FakeMaster:
    """Serves /ws on 127.0.0.1: the n-th peer to join gets manifests[n % len(manifests)]."""

    def __init__(self, secret: str | None, manifests: list[p.ManifestMsg]) -> None:
        self.auth = Auth(secret)
        self.manifests = manifests
        self.joins = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        channel = await join(ws, self.auth)
        if channel is not None:
            msg = self.manifests[self.joins % len(self.manifests)]
            self.joins += 1
            await ws.send_bytes(channel.seal(p.encode(msg).encode()))
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

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
