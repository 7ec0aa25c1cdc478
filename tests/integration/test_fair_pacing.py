"""Sources are told each transfer's fair share of the ports it crosses, as transfers start and end
(protocol 4: Receiving from the downloader, Rates to the source). Real nodes on loopback."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from lanscatter.core import protocol as p
from lanscatter.core.linkmap import Link, LinkMap
from lanscatter.roles.master import MasterNode, MasterOptions
from lanscatter.roles.peer import PeerNode, PeerOptions
from tests.integration.control_client import ControlClient, hello
from tests.integration.nodes import HOST, make_tree, tree_state

DOWN = 1_500_000.0            # each peer's download port, bytes/s


class _RecordingMaster(MasterNode):
    """A master that notes each set of shares its uploads are given."""

    def __init__(self, opts: MasterOptions, record: Callable[[dict[int, float]], None]) -> None:
        super().__init__(opts)
        self._record = record

    def _pace_uploads(self, rates: dict[int, float]) -> None:
        self._record(rates)
        super()._pace_uploads(rates)


class _RecordingPeer(PeerNode):
    """A peer that notes the rate each download it is sent starts at, and the shares its uploads
    are given."""

    def __init__(self, opts: PeerOptions, *, first: list[float | None], given: list[float]) -> None:
        super().__init__(opts)
        self._first = first
        self._given = given

    async def _handle(self, msg: p.Message) -> None:
        if isinstance(msg, p.Download):
            self._first.append(msg.rate_cap)
        elif isinstance(msg, p.Rates):
            self._given.extend(dict(zip(msg.transfers, msg.rates)).values())
        await super()._handle(msg)


async def test_each_port_is_shared_among_the_transfers_into_it(tmp_path: Path) -> None:
    make_tree(tmp_path / "origin")
    rng = random.Random(5)
    for i in range(3):                        # chunks enough for transfers to overlap and hand over
        (tmp_path / "origin" / f"big{i}.bin").write_bytes(rng.randbytes(2 * 2**20))
    links = LinkMap(links={name: Link(name, cap) for name, cap in (
        ("up:master", 8e6), ("up:a", 8e6), ("up:b", 8e6), ("down:a", DOWN), ("down:b", DOWN))})
    given: dict[str, list[float]] = {"master": [], "a": [], "b": []}
    master = _RecordingMaster(MasterOptions(folder=tmp_path / "origin", state_dir=tmp_path / "ms", host=HOST,
                                            port=0, chunk_size=256 * 1024, watch=False, link_map=links),
                              lambda rates: given["master"].extend(rates.values()))
    await master.start()
    first: list[float | None] = []            # the rates new transfers start at
    peers = [_RecordingPeer(PeerOptions(master=HOST, master_port=master.port, folder=tmp_path / name,
                                        state_dir=tmp_path / f"{name}-state", host=HOST, port=0, name=name),
                            first=first, given=given[name])
             for name in "ab"]
    tasks = [asyncio.create_task(peer.run()) for peer in peers]
    try:
        async with asyncio.timeout(60):
            while not (all(peer.complete() for peer in peers) and master.swarm.synced()
                       and not master.swarm.transfers):
                await asyncio.sleep(0.05)
        want = tree_state(tmp_path / "origin")
        assert all(tree_state(tmp_path / peer.name) == want for peer in peers)
        assert not master.swarm.session.waiting          # every download said its bytes arrived
        # Two transfers into one port start at half of it each; when one ends, or its successor's
        # request is still on its way, the source of the other is told it has the whole port.
        assert first and all(r is not None and r <= DOWN * 1.0001 for r in first)
        assert min(r for r in first if r is not None) <= DOWN * 0.5001
        rates = [r for values in given.values() for r in values]
        assert rates and max(rates) <= DOWN * 1.0001 and max(rates) >= DOWN * 0.95
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for peer in peers:
            await peer.stop()
        await master.stop()


async def test_a_released_transfer_leaves_its_share_when_its_last_byte_is_due(tmp_path: Path) -> None:
    """A downloader that said one of its two downloads ends in 0.2 s: the source of the other is
    told it has the whole port then, without waiting for the first one's report."""
    make_tree(tmp_path / "origin")
    links = LinkMap(links={"up:master": Link("up:master", 8e6), "down:a": Link("down:a", DOWN)})
    calls: list[tuple[float, dict[int, float]]] = []
    master = _RecordingMaster(MasterOptions(folder=tmp_path / "origin", state_dir=tmp_path / "ms", host=HOST,
                                            port=0, chunk_size=256 * 1024, watch=False, link_map=links),
                              lambda rates: calls.append((time.monotonic(), dict(rates))))
    await master.start()
    try:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"http://{HOST}:{master.port}/ws") as ws:
            peer = await ControlClient.join(ws, hello("a"))
            assert peer.welcome.name == "a"
            generation = (await peer.receive_json())["manifest"]["generation"]
            await peer.send(p.Have(generation, [], replace=True))
            first = [await peer.receive_json() for _ in range(2)]
            assert [m["t"] for m in first] == ["download", "download"]
            assert all(m["rate_cap"] == DOWN / 2 for m in first)       # half of a's port each
            ending, other = first[0]["transfer"], first[1]["transfer"]
            for m in first:
                await peer.send(p.Receiving(m["transfer"]))
            await asyncio.sleep(0.2)
            assert not calls                                          # shares unchanged so far
            said = time.monotonic()
            await peer.send(p.Ending(ending, 0.2))
            async with asyncio.timeout(5):
                while not any(rates.get(other) == DOWN for _, rates in calls):
                    await asyncio.sleep(0.01)
            at = next(t for t, rates in calls if rates.get(other) == DOWN)
            assert 0.15 <= at - said < 1.0
    finally:
        await master.stop()
