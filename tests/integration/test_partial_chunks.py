"""Cut-through below the chunk: a chunk is served while it arrives, never completed from a copy
that fails here, and a relay chain adds about a round trip per hop, not a chunk's time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from aiohttp import web

from lanscatter.core.auth import Auth
from lanscatter.core.chunking import FIXED
from lanscatter.disk.hashing import new_hasher
from lanscatter.disk.store import Location
from lanscatter.net.chunk_arrivals import ChunkArrivals
from lanscatter.net.chunk_fetch import Fetcher
from lanscatter.net.chunk_http import ChunkServer, TrafficCounters
from lanscatter.net.server import bind_site
from lanscatter.net.upload_pace import Pace
from lanscatter.roles.master import MasterNode, MasterOptions
from lanscatter.roles.peer import PeerNode, PeerOptions
from lanscatter.roles.relay import RelayNode, RelayOptions
from tests.integration.nodes import flip_byte
from tests.ports import free_port

HOST = "127.0.0.1"


@contextlib.asynccontextmanager
async def _server(server: ChunkServer) -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes(server.routes())
    runner, port = await bind_site(app, HOST, 0, None)
    try:
        yield f"http://{HOST}:{port}"
    finally:
        await runner.cleanup()


def _hash(data: bytes) -> str:
    h = new_hasher()
    h.update(data)
    return h.hexdigest()


@contextlib.asynccontextmanager
async def _hop(tmp: Path, served: bytes, chunk: str) -> AsyncIterator[tuple[str, str, ChunkArrivals, Fetcher, int]]:
    """An upstream serving `served` as `chunk`; a middle node (part file, arrivals, its own chunk
    server that has nothing but what arrives); the URLs of both."""
    (tmp / "up.bin").write_bytes(served)
    upstream = ChunkServer(lambda h: Location(tmp / "up.bin", 0, len(served)) if h == chunk else None,
                           Auth(None), TrafficCounters(), compress=False)
    arrivals = ChunkArrivals()
    middle = ChunkServer(lambda h: None, Auth(None), TrafficCounters(), arrivals=arrivals)
    fetcher = Fetcher(TrafficCounters(), local_addr=HOST, threads=4)
    fd = os.open(tmp / "middle.part", os.O_RDWR | os.O_CREAT)
    try:
        async with _server(upstream) as up_url, _server(middle) as mid_url:
            yield up_url, mid_url, arrivals, fetcher, fd
    finally:
        os.close(fd)
        fetcher.close()


async def _wait(cond: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout} s") from None


async def test_a_chunk_is_served_while_it_arrives_and_completes_once_verified(tmp_path: Path) -> None:
    data = os.urandom(2 << 20)
    chunk = _hash(data)
    async with _hop(tmp_path, data, chunk) as (up_url, mid_url, arrivals, fetcher, fd):
        # The middle node downloads at 1 MB/s: about 2 s for the chunk.
        arrival = arrivals.begin(chunk, fd, 0, len(data))
        upward = asyncio.create_task(fetcher.fetch(up_url, chunk, len(data), token="", fd=fd, offset=0,
                                                   timeout_s=30, buckets=[], pace=Pace(rate=1e6),
                                                   progress=arrival.advance))
        await _wait(lambda: arrivals.get(chunk) is not None, "the first bytes in the middle")
        heard: list[float] = []
        out = os.open(tmp_path / "down.part", os.O_RDWR | os.O_CREAT)
        try:
            downward = asyncio.create_task(fetcher.fetch(mid_url, chunk, len(data), token="", fd=out, offset=0,
                                                         timeout_s=30, buckets=[],
                                                         receiving=lambda: heard.append(time.monotonic())))
            async with asyncio.timeout(30):
                up = await upward
            up_done = time.monotonic()
            assert up.ok, up.error
            arrivals.end(arrival, ok=True)
            async with asyncio.timeout(30):
                down = await downward
            down_done = time.monotonic()
            assert down.ok, down.error
            assert os.pread(out, len(data) + 1, 0) == data
        finally:
            os.close(out)
    # The downstream had bytes long before the middle held the chunk, and was done right after.
    assert heard and up_done - heard[0] > 1.0, (up_done - heard[0]) if heard else None
    assert down_done - up_done < 1.0, down_done - up_done


async def test_a_chunk_that_arrives_corrupt_is_cut_for_its_downstream(tmp_path: Path) -> None:
    data = os.urandom(2 << 20)
    chunk = _hash(data)
    rotten = bytearray(data)
    rotten[-5] ^= 0xFF                     # the damage shows only once the whole is hashed
    async with _hop(tmp_path, bytes(rotten), chunk) as (up_url, mid_url, arrivals, fetcher, fd):
        arrival = arrivals.begin(chunk, fd, 0, len(data))
        upward = asyncio.create_task(fetcher.fetch(up_url, chunk, len(data), token="", fd=fd, offset=0,
                                                   timeout_s=30, buckets=[], pace=Pace(rate=2e6),
                                                   progress=arrival.advance))
        await _wait(lambda: arrivals.get(chunk) is not None, "the first bytes in the middle")
        out = os.open(tmp_path / "down.part", os.O_RDWR | os.O_CREAT)
        try:
            downward = asyncio.create_task(fetcher.fetch(mid_url, chunk, len(data), token="", fd=out, offset=0,
                                                         timeout_s=30, buckets=[]))
            async with asyncio.timeout(30):
                up = await upward
            assert not up.ok and up.corrupt
            arrivals.end(arrival, ok=False)
            async with asyncio.timeout(10):
                down = await downward
            # Cut short, not complete: the downstream never got the whole rotten copy, not even
            # to find it corrupt by itself.
            assert not down.ok and not down.corrupt, down
            assert os.fstat(out).st_size < len(data)
        finally:
            os.close(out)
        assert arrivals.get(chunk) is None


async def test_a_chunk_that_arrives_corrupt_at_a_relay_is_never_announced_or_kept_below_it(tmp_path: Path) -> None:
    # The origin's one chunk rots on its disk in a way no metadata shows (its hash cache still
    # vouches for it): the relay gets the rotten bytes at 2 MB/s, its site's peer gets them as they
    # arrive, and the damage shows only when the relay hashes the whole.
    data = os.urandom(4 << 20)
    (tmp_path / "origin").mkdir()
    src = tmp_path / "origin" / "a.bin"
    src.write_bytes(data)
    master = MasterNode(MasterOptions(folder=tmp_path / "origin", state_dir=tmp_path / "ms", host=HOST, port=0,
                                      chunk_size=8 << 20, chunking=FIXED, watch=False))
    await master.start()
    nodes: list[asyncio.Task[None]] = []
    relay: RelayNode | None = None
    peer: PeerNode | None = None
    try:
        assert master.manifest is not None
        (chunk, _size), = master.manifest.chunk_table()
        flip_byte(src, len(data) - 10)
        entry = master.manifest.file("a.bin")
        assert entry is not None
        master.cache.put("a.bin", src.stat(), master.manifest.chunking, entry.chunks, entry.sizes)
        relay = _relay(tmp_path, "r1", master.port, 2e6)
        nodes.append(asyncio.create_task(relay.run()))
        await _wait(lambda: relay is not None and relay._runner is not None, "the relay serving its site")
        peer = PeerNode(PeerOptions(master=HOST, master_port=relay.port, folder=tmp_path / "p",
                                    state_dir=tmp_path / "ps", host=HOST, port=0, name="p", scrub_rate=0))
        nodes.append(asyncio.create_task(peer.run()))
        announced: set[str] = set()
        kept: set[str] = set()

        def watch() -> bool:
            assert relay is not None and peer is not None
            index = relay.swarm.manifest.chunk_index() if relay.swarm.manifest is not None else {}
            if chunk in index and index[chunk] in relay.swarm.seed_have:
                announced.add(chunk)
            if peer.store.has(chunk) or relay.upstream.store.has(chunk):
                kept.add(chunk)
            return peer.complete()

        # The relay finds the rotten copy, the origin reads its file again and publishes what it
        # holds now; the peer ends with that.
        await _wait(watch, "the peer synced after the rot", timeout=60)
        assert (tmp_path / "p" / "a.bin").read_bytes() == src.read_bytes() != data
        assert announced == set() and kept == set()
        # The peer was streamed the rotten copy while it arrived, and that stream was cut.
        assert peer.counters.rx_bytes > len(data)
        assert peer.downloaded_chunks == 1
    finally:
        for t in nodes:
            t.cancel()
        await asyncio.gather(*nodes, return_exceptions=True)
        if peer is not None:
            await peer.stop()
        if relay is not None:
            await relay.stop()
        await master.stop()


def _relay(tmp: Path, name: str, upstream_port: int, rate: float) -> RelayNode:
    peer = PeerOptions(master=HOST, master_port=upstream_port, folder=tmp / name, state_dir=tmp / f"{name}-state",
                       host=HOST, port=0, name=name, dl_rate=rate, serve=False, role="relay", scrub_rate=0)
    return RelayNode(RelayOptions(peer=peer, port=0))


async def test_a_relay_chain_adds_a_round_trip_per_hop_not_a_chunk(tmp_path: Path) -> None:
    # origin -> relay 1 -> relay 2 -> peer, every download held to 2 MB/s, one chunk of 6 MiB:
    # about 3.1 s on each hop. Forwarding whole chunks, the peer would be done 3 x 3.1 s after the
    # first byte left the origin; below the chunk, about 3.1 s plus a few round trips and plans.
    rate = 2e6
    data = _origin_file(tmp_path, 6 << 20)
    nodes: list[asyncio.Task[None]] = []
    master: MasterNode | None = None
    relays: list[RelayNode] = []
    peer: PeerNode | None = None
    try:
        # The relays and the peer join first, so the measure starts with the origin's generation.
        # (Each relay's downstream port is known once it runs.)
        master_port = free_port()
        first = _relay(tmp_path, "r1", master_port, rate)
        nodes.append(asyncio.create_task(first.run()))
        relays.append(first)
        await _wait(lambda: first._runner is not None, "relay 1 serving its site")
        second = _relay(tmp_path, "r2", first.port, rate)
        nodes.append(asyncio.create_task(second.run()))
        relays.append(second)
        await _wait(lambda: second._runner is not None and second.upstream.connected, "relay 2 joined")
        peer = PeerNode(PeerOptions(master=HOST, master_port=second.port, folder=tmp_path / "p",
                                    state_dir=tmp_path / "ps", host=HOST, port=0, name="p", dl_rate=rate,
                                    scrub_rate=0))
        nodes.append(asyncio.create_task(peer.run()))
        await _wait(lambda: peer is not None and peer.connected, "the peer joined")
        start = time.monotonic()
        master = _origin(tmp_path, master_port)
        await master.start()
        await _wait(lambda: peer is not None and peer.complete(), "the peer synced", timeout=60)
        took = time.monotonic() - start
        assert (tmp_path / "p" / "a.bin").read_bytes() == data
        assert 3.0 < took < 6.5, took
    finally:
        stopping: list[PeerNode | RelayNode] = [*relays]
        if peer is not None:
            stopping.insert(0, peer)
        await _stop(nodes, stopping, master)


async def test_peers_of_one_swarm_pass_a_chunk_on_while_it_arrives(tmp_path: Path) -> None:
    # The origin has one upload slot; three peers, every download held to 2 MB/s, one chunk of
    # 6 MiB: about 3.1 s a copy. Passed on only once whole, the second and third copies would
    # start after the first ended (6 s and more); served as it arrives (protocol.SERVES_ARRIVING),
    # by the peer the origin sends it to, they follow the first a few round trips and plans behind.
    rate = 2e6
    data = _origin_file(tmp_path, 6 << 20)
    nodes: list[asyncio.Task[None]] = []
    master: MasterNode | None = None
    peers: list[PeerNode] = []
    try:
        master_port = free_port()
        for name in ("a", "b", "c"):
            peer = PeerNode(PeerOptions(master=HOST, master_port=master_port, folder=tmp_path / name,
                                        state_dir=tmp_path / f"{name}-state", host=HOST, port=0, name=name,
                                        dl_rate=rate, scrub_rate=0))
            nodes.append(asyncio.create_task(peer.run()))
            peers.append(peer)
        start = time.monotonic()
        master = _origin(tmp_path, master_port, slots=1)
        await master.start()
        await _wait(lambda: all(p.complete() for p in peers), "every peer synced", timeout=60)
        took = time.monotonic() - start
        for name in ("a", "b", "c"):
            assert (tmp_path / name / "a.bin").read_bytes() == data
        assert master.counters.tx_bytes < 2 * len(data)             # one copy left the origin
        assert took < 5.5, took
    finally:
        await _stop(nodes, peers, master)


def _origin_file(tmp: Path, size: int) -> bytes:
    """The origin's one file of `size` random bytes, in tmp/origin."""
    data = os.urandom(size)
    (tmp / "origin").mkdir()
    (tmp / "origin" / "a.bin").write_bytes(data)
    return data


def _origin(tmp: Path, port: int, slots: int = 3) -> MasterNode:
    """A master over tmp/origin in one 8 MiB chunk (not started)."""
    return MasterNode(MasterOptions(folder=tmp / "origin", state_dir=tmp / "ms", host=HOST, port=port,
                                    chunk_size=8 << 20, chunking=FIXED, watch=False, slots=slots))


async def _stop(tasks: list[asyncio.Task[None]], nodes: Sequence[PeerNode | RelayNode],
                master: MasterNode | None) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for node in nodes:
        await node.stop()
    if master is not None:
        await master.stop()
