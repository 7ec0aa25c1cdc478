"""A hand-driven control connection to a master, for tests that send what a real peer would not:
the handshake of lanscatter.core.handshake, then sealed frames in and out. The tree's commits (a
master sends its last one after the manifest at each join) are skipped on receipt: the client
plays a host of host activation, which has nothing to do with them."""

from __future__ import annotations

import json
import secrets
from typing import Any

import aiohttp

from lanscatter.core import protocol as p
from lanscatter.core.auth import Auth
from lanscatter.core.handshake import Channel, PeerHandshake

HOST = "127.0.0.1"


def hello(name: str, *, addr: str = HOST, port: int = 0, dl_slots: int = 2, ul_slots: int = 0,
          protocol: int = p.PROTOCOL_VERSION, min_protocol: int = p.MIN_PROTOCOL_VERSION) -> p.Hello:
    return p.Hello(name, protocol, min_protocol, "test", secrets.token_hex(16), addr, port, dl_slots, ul_slots)


class ControlClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, channel: Channel, welcome: p.Welcome) -> None:
        self.ws = ws
        self.channel = channel
        self.welcome = welcome

    @classmethod
    async def join(cls, ws: aiohttp.ClientWebSocketResponse, said: p.Hello, auth: Auth | None = None) -> ControlClient:
        hs = PeerHandshake(auth or Auth(None), said)
        await ws.send_bytes(hs.receive_challenge((await ws.receive(timeout=5)).data))
        welcome = hs.receive_welcome((await ws.receive(timeout=5)).data)
        assert hs.channel is not None
        return cls(ws, hs.channel, welcome)

    async def send(self, msg: p.Message) -> None:
        await self.ws.send_bytes(self.channel.seal(p.encode(msg).encode()))

    async def receive(self, timeout: float = 5) -> p.Message:
        return p.decode(json.dumps(await self.receive_json(timeout)), "master")

    async def receive_json(self, timeout: float = 5) -> dict[str, Any]:
        while True:
            msg = await self.ws.receive(timeout=timeout)
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
            data: dict[str, Any] = json.loads(self.channel.open(msg.data, "master"))
            if data.get("t") != p.Commit.TYPE:
                return data
