"""The join handshake as the fuzz tests speak it, in one place: when the handshake changes, this
file is the one to adapt. The master's side is tests/integration/fake_master.py's `join`."""

from __future__ import annotations

import functools
import json
import secrets

from aiohttp import web

from lanscatter.core import protocol as p
from lanscatter.core.auth import Auth
from lanscatter.core.handshake import Channel, PeerHandshake, seal_hello
from tests.fuzz.wire import HOST, RawWs
from tests.integration import fake_master

BINARY = 2


@functools.cache
def swarm_auth(secret: str) -> Auth:
    """The keys of `secret`, derived once (deriving them takes a deliberate tenth of a second)."""
    return Auth(secret)


async def join(port: int, secret: str, name: str = "fuzz") -> tuple[RawWs, Channel]:
    """Join the master on `port` as a peer that serves nothing and downloads nothing (so the
    planner never waits on it); returns the connection after the Welcome, and its channel."""
    ws = await RawWs.open(port)
    hs = PeerHandshake(swarm_auth(secret), p.Hello(name, p.PROTOCOL_VERSION, p.MIN_PROTOCOL_VERSION, "fuzz",
                                             secrets.token_hex(16), HOST, 0, 0, 0))
    ws.send(hs.receive_challenge((await ws.recv())[1]), BINARY)
    welcome = hs.receive_welcome((await ws.recv())[1])
    assert welcome.TYPE == "welcome" and hs.channel is not None
    return ws, hs.channel


async def hello_frame(ws: RawWs, secret: str, body: bytes) -> bytes:
    """`body` sealed as the Hello answering the challenge waiting on `ws` (a holder of the secret
    sending a hostile hello)."""
    _, challenge = await ws.recv()
    return seal_hello(swarm_auth(secret), json.loads(challenge)["nonce"], body)


async def accept(ws: web.WebSocketResponse, secret: str) -> Channel:
    """The fake master's side: challenge the peer on `ws`, check its proof, welcome it."""
    channel = await fake_master.join(ws, swarm_auth(secret))
    assert channel is not None, "the peer did not join"
    return channel
