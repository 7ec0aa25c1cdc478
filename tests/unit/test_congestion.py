"""Uploads paced at a fair share run under Reno from their first byte, a WAN link's under CUBIC while
their connection loses nothing, others under the system's default."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web

from lanscatter.net.congestion import (
    PACED,
    WAN_CLEAN,
    congestion_of,
    is_lossy,
    pace_from_birth,
    retransmitted,
    set_congestion,
    system_default,
    unpaced_default,
    wan_congestion,
)
from lanscatter.net.server import bind_site
from lanscatter.net.upload_pace import Pace, UploadPacer

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="congestion control is chosen on Linux only")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


def accept_one(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(listener.getsockname())
    return client, listener.accept()[0]


def test_connections_accepted_after_the_listener_is_set_run_under_reno(listener: socket.socket) -> None:
    default = system_default()
    if not pace_from_birth(listener):
        pytest.skip("Reno cannot be set here")
    client, served = accept_one(listener)
    with client, served:
        assert congestion_of(served) == PACED
        assert congestion_of(client) == default          # the other end is not ours to choose


def test_uploads_not_paced_at_a_fair_share_go_back_to_the_system_default(listener: socket.socket) -> None:
    default = system_default()
    if default is None or default == PACED or not pace_from_birth(listener):
        pytest.skip("needs a system default other than Reno, and Reno allowed")
    pacer = UploadPacer(limit=1000)
    (c1, lan), (c2, wan), (c3, free) = accept_one(listener), accept_one(listener), accept_one(listener)
    with c1, lan, c2, wan, c3, free:
        pacer.add(lan, Pace(rate=300, transfer=7))
        pacer.add(wan, Pace(group="wan:hub>far", group_rate=500, transfer=8))
        pacer.add(free, Pace(transfer=9))                 # no link speeds known: no planner rate
        assert (congestion_of(lan), congestion_of(free)) == (PACED, default)
        assert not unpaced_default(free)                  # already there: nothing to change


async def test_every_node_listener_paces_from_birth() -> None:
    async def handler(request: web.Request) -> web.Response:
        sock = request.transport.get_extra_info("socket") if request.transport else None
        return web.Response(body=congestion_of(sock) or b"?")

    app = web.Application()
    app.router.add_get("/", handler)
    runner, port = await bind_site(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as resp:
            assert await resp.read() == PACED            # the connection the upload would go out on
    finally:
        await runner.cleanup()


def test_a_wan_links_uploads_run_under_cubic_while_their_connection_loses_nothing(listener: socket.socket) -> None:
    if not pace_from_birth(listener):
        pytest.skip("Reno cannot be set here")
    pacer = UploadPacer(limit=None)
    client, wan = accept_one(listener)
    with client, wan:
        wan.sendall(b"x" * 100_000)                       # a first upload: segments sent, none lost
        counts = retransmitted(wan)
        assert counts is not None and counts[1] > 0 and not is_lossy(*counts)
        if not set_congestion(client, WAN_CLEAN):         # (the other end: only to learn it is allowed)
            pytest.skip("CUBIC is not allowed here")
        assert congestion_of(wan) == PACED                # the listener's, as every accepted connection
        pacer.add(wan, Pace(group="wan:hub>far", group_rate=5_000_000, transfer=1))
        assert congestion_of(wan) == WAN_CLEAN
        assert not wan_congestion(wan)                    # already there: nothing to change


def test_a_lossy_connection_is_one_with_more_than_one_retransmission_in_ten_thousand() -> None:
    assert not is_lossy(0, 0)
    assert not is_lossy(1, 10)                            # a single retransmission says little
    assert not is_lossy(5, 100_000)
    assert is_lossy(11, 100_000)
    assert is_lossy(2, 100)
