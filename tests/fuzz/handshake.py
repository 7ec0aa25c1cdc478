"""The join handshake as the fuzz tests speak it, both sides, in one place: when the handshake
changes, this file is the one to adapt."""

from __future__ import annotations

import json

from aiohttp import web

from lanscatter import protocol as p
from lanscatter.auth import Auth
from tests.fuzz.wire import RawWs


async def join(port: int, secret: str, name: str = "fuzz") -> RawWs:
    """Join the master on `port` as a peer that serves nothing and downloads nothing (so the
    planner never waits on it); returns the connection after the Welcome."""
    ws = await RawWs.open(port)
    _, challenge = await ws.recv()
    nonce = json.loads(challenge)["nonce"]
    ws.send(p.encode(p.Hello(name=name, protocol=p.PROTOCOL_VERSION, min_protocol=p.MIN_PROTOCOL_VERSION,
                             software="fuzz", proof=Auth(secret).join_proof(nonce), port=0, dl_slots=0,
                             ul_slots=0)).encode())
    _, welcome = await ws.recv()
    assert json.loads(welcome)["t"] == "welcome", welcome[:200]
    return ws


async def accept(ws: web.WebSocketResponse, secret: str) -> p.Hello:
    """A fake master's side: challenge the peer on `ws`, check its proof, welcome it."""
    nonce = Auth.new_nonce()
    await ws.send_str(p.encode(p.Challenge(nonce, p.PROTOCOL_VERSION, p.MIN_PROTOCOL_VERSION, "fake")))
    hello = p.decode(await ws.receive_str(timeout=10), "peer")
    assert isinstance(hello, p.Hello) and Auth(secret).check_join(nonce, hello.proof)
    await ws.send_str(p.encode(p.Welcome(hello.name, p.PROTOCOL_VERSION)))
    return hello
