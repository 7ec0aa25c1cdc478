"""The peer's downloads: what it tells the master of a Download it cannot take."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lanscatter.core import protocol as p
from lanscatter.disk.store import MirrorStore
from lanscatter.net.chunk_arrivals import ChunkArrivals
from lanscatter.net.chunk_fetch import Fetcher
from lanscatter.net.chunk_http import TrafficCounters
from lanscatter.roles.peer_downloads import Downloads


class _Link:
    """What the downloads post to the master, recorded."""

    protocol = p.PROTOCOL_VERSION

    def __init__(self) -> None:
        self.posted: list[p.Message] = []

    def post(self, msg: p.Message) -> None:
        self.posted.append(msg)


async def test_a_download_already_in_flight_here_is_refused_with_no_blame_on_its_source(tmp_path: Path) -> None:
    # The master withdrew a download (Cancel) and planned the chunk again before this peer's
    # first download of it had stopped: the second says "not wanted", which is no fault of its source.
    counters = TrafficCounters()
    store = MirrorStore(tmp_path / "folder", tmp_path / "state")
    link = _Link()
    downloads = Downloads(store=store, fetcher=Fetcher(counters, local_addr=None, threads=1),
                          arrivals=ChunkArrivals(), counters=counters, dl_bucket=None, compress=False,
                          link=link, current=lambda: None, verified=lambda chunk: None)  # type: ignore[arg-type]
    try:
        downloads.inflight.add("c" * 64)
        downloads.start(p.Download(7, "c" * 64, 1024, "src", "http://127.0.0.1:1", 5.0))
        async with asyncio.timeout(5):
            while downloads.busy:
                await asyncio.sleep(0.01)
        assert link.posted == [p.Report(7, False, 0.0, "not wanted", blameless=True)]
    finally:
        store.close()

