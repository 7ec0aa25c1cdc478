"""Upload pacing: rates shared among uploads are re-shared as uploads start and end (real sockets)."""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Iterator
from urllib.parse import parse_qsl

import pytest

from lanscatter.net import upload_pace
from lanscatter.net.upload_pace import WIRE_SHARE, Pace, UploadPacer

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kernel pacing is Linux only")
_SO_MAX_PACING_RATE = getattr(socket, "SO_MAX_PACING_RATE", 47)


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Connected TCP sockets on 127.0.0.1 (the server ends, as an upload would use them)."""
    listener = socket.create_server(("127.0.0.1", 0))
    clients, served = [], []
    for _ in range(3):
        clients.append(socket.create_connection(listener.getsockname()))
        served.append(listener.accept()[0])
    yield served
    for s in (*clients, *served, listener):
        s.close()


def paced_at(sock: socket.socket) -> int | None:
    """The limit this socket keeps on the wire (its pacing rate leaves room for the headers)."""
    value = struct.unpack("=Q", sock.getsockopt(socket.SOL_SOCKET, _SO_MAX_PACING_RATE, 8))[0]
    return None if value in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF) else round(value / WIRE_SHARE)


def test_node_limit_shared_by_the_uploads_under_way(sockets: list[socket.socket]) -> None:
    a, b, c = sockets
    pacer = UploadPacer(limit=1200)
    assert pacer.add(a, Pace())
    assert paced_at(a) == 1200                     # alone: the whole limit
    pacer.add(b, Pace())
    pacer.add(c, Pace(rate=80))
    # c keeps to its rate; the other two share the rest of the limit (not a third each)
    assert (paced_at(a), paced_at(b), paced_at(c)) == (560, 560, 80)
    pacer.remove(c)
    # c keeps its pace while its last bytes drain; its next upload on the kept-alive socket resets it
    assert (paced_at(a), paced_at(b), paced_at(c)) == (600, 600, 80)
    pacer.remove(a)
    assert paced_at(b) == 1200
    pacer2 = UploadPacer()
    pacer2.add(c, Pace())
    assert paced_at(c) is None


def test_planner_rates_follow_the_transfer(sockets: list[socket.socket]) -> None:
    a, b, c = sockets
    pacer = UploadPacer(limit=1000)
    pacer.add(a, Pace(rate=300, transfer=7))
    pacer.add(b, Pace(rate=300, transfer=8))
    assert (paced_at(a), paced_at(b)) == (300, 300)
    pacer.set_rates({7: 160, 8: 600})              # a port on 7's way got busier, 8's freed up
    assert (paced_at(a), paced_at(b)) == (160, 600)
    pacer.set_rates({8: 2000, 7: -1.0})            # never beyond the node's own limit; nonsense ignored
    assert (paced_at(a), paced_at(b)) == (160, 840)
    # a rate that comes before its transfer's request is kept for it
    pacer.set_rates({9: 120})
    pacer.add(c, Pace(rate=400, transfer=9))
    assert paced_at(c) == 120
    pacer.remove(a)
    assert (paced_at(b), paced_at(c)) == (880, 120)


def test_wan_group_paced_as_a_whole_the_rest_untouched(sockets: list[socket.socket]) -> None:
    a, b, c = sockets
    pacer = UploadPacer()
    pacer.add(a, Pace(group="wan:hub>far", group_rate=5000))
    pacer.add(b, Pace(group="wan:hub>far", group_rate=5000))
    pacer.add(c, Pace())
    assert (paced_at(a), paced_at(b), paced_at(c)) == (2500, 2500, None)
    pacer.remove(a)                                # one ends: the other takes the whole link at once
    assert paced_at(b) == 5000 and pacer.rate_of(b) == pytest.approx(5000 * WIRE_SHARE)


def test_pace_travels_in_the_query() -> None:
    pace = Pace(rate=1234.4, group="wan:a>b", group_rate=99, transfer=42)
    q = pace.query()
    assert q == "?rate=1234&group=wan%3Aa%3Eb&group_rate=99&t=42"
    assert Pace.from_query(dict(parse_qsl(q[1:]))) == Pace(1234.0, "wan:a>b", 99.0, 42)
    assert Pace().query() == ""
    assert Pace.from_query({"group": "x"}) == Pace()     # a group without its rate means nothing


@pytest.mark.parametrize("query", [
    {"rate": "-5"}, {"rate": "0"}, {"rate": "1e30"}, {"rate": "nan"}, {"rate": "inf"}, {"rate": "x"},
    {"group": "x", "group_rate": "inf"}, {"group": "g" * 300, "group_rate": "5"}, {"t": "-1"},
    {"t": "1" * 40}, {"t": "١٢"}, {"rate": "1" * 100},
])
def test_nonsense_in_the_query_is_refused_whole(query: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        Pace.from_query(query)


def test_rates_beyond_the_kernels_range_are_clamped_not_raised() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        pacer = UploadPacer()
        assert pacer.add(s, Pace(rate=1e30)) in (True, False)
        pacer.set_rates({1: 1e30, 2: float("nan")})
        pacer.remove(s)


def test_a_withdrawn_transfers_upload_is_cut_and_the_others_take_its_share(sockets: list[socket.socket]) -> None:
    a, b, _ = sockets
    pacer = UploadPacer(limit=1000)
    pacer.add(a, Pace(transfer=7))
    pacer.add(b, Pace(transfer=8))
    assert paced_at(b) == 500
    assert pacer.cut({7, 99}) == 1
    assert paced_at(b) == 1000                     # b has the whole limit again
    with pytest.raises(OSError):                   # a's socket is shut: its upload ends in an error
        for _ in range(1000):
            a.send(b"x" * 65536)
    assert pacer.cut({7}) == 0                     # once only


def test_withdrawn_transfers_are_remembered_boundedly_for_requests_still_to_come() -> None:
    pacer = UploadPacer()
    pacer.set_rates({5: 1000.0})                   # a rate that came before its request
    pacer.cut({5})
    assert pacer.withdrawn(5) and not pacer.withdrawn(6) and not pacer.withdrawn(None)
    assert 5 not in pacer._early                   # its early rate is dropped with it
    pacer.cut(range(100, 100 + upload_pace._WITHDRAWN))
    assert not pacer.withdrawn(5) and pacer.withdrawn(100) and len(pacer._withdrawn) == upload_pace._WITHDRAWN
