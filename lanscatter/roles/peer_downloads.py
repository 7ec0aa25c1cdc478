"""A peer's downloads: each Download the master commands runs as one task, fetches its chunk into
the folder's part file while hashing it, and reports the outcome before the new holding.

A chunk already held, or already on its way, is reported at once without a fetch. A chunk is
served while it arrives (its prefix, to downloaders that verify the whole; chunk_arrivals.py) and
the stream is cut unless it is verified and held here at the end; `arriving` hears of its first
bytes with when it is due, `arrival_failed` of one of those that did not arrive whole. A download
finishing after its generation was replaced reports nothing (the master planned it for the old
one). Cancelled tasks say nothing either: the master withdrew them, or the node reports them.
Logs as the peer role (`lanscatter.roles.peer`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from lanscatter.core import protocol as p
from lanscatter.core.manifest import Manifest
from lanscatter.core.safe_text import safe_text
from lanscatter.disk.store import MirrorStore
from lanscatter.net.chunk_arrivals import ChunkArrivals
from lanscatter.net.chunk_fetch import Fetcher
from lanscatter.net.chunk_http import TrafficCounters
from lanscatter.net.ratelimit import TokenBucket
from lanscatter.net.upload_pace import Pace
from lanscatter.roles.master_link import MasterLink

log = logging.getLogger("lanscatter.roles.peer")

# The master withdraws a download past its time (Cancel), and may give one more time where the
# downloader's own port needs it (Planner.expire): the download's own deadline is only a backstop
# for a master that says nothing, well past the time the Download names.
BACKSTOP_FACTOR = 10.0
BACKSTOP_EXTRA_S = 300.0


def backstop_s(timeout_s: float) -> float:
    """How long a download may run before the downloader gives up on its own."""
    return max(timeout_s * BACKSTOP_FACTOR, timeout_s + BACKSTOP_EXTRA_S)


class Downloads:
    """The downloads under way, by transfer id. `current` is the generation held (downloads are
    for it); `verified` hears of each chunk verified here once the master is told."""

    def __init__(self, *, store: MirrorStore, fetcher: Fetcher, arrivals: ChunkArrivals,
                 counters: TrafficCounters, dl_bucket: TokenBucket | None, compress: bool, link: MasterLink,
                 current: Callable[[], Manifest | None], verified: Callable[[str], None],
                 arriving: Callable[[str, float], None] | None = None,
                 arrival_failed: Callable[[str], None] | None = None) -> None:
        self._store = store
        self._fetcher = fetcher
        self._arrivals = arrivals
        self._counters = counters
        self._dl_bucket = dl_bucket
        self._compress = compress
        self._link = link
        self._current = current
        self._verified = verified
        self._arriving = arriving            # (chunk, due by: monotonic) at a download's first bytes
        self._arrival_failed = arrival_failed    # ... and when that download failed
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self.inflight: set[str] = set()      # chunks on their way
        self.sources: dict[str, int] = {}    # downloads in flight by source (for the progress line)
        self.chunks = 0                      # fetched over the network (for tests and reports)
        self.bytes = 0                       # their content, before any compression in flight

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    def start(self, d: p.Download) -> None:
        """Run a Download (once per transfer id)."""
        if d.transfer not in self._tasks:
            task = asyncio.create_task(self._download(d), name=f"download of chunk {d.chunk[:8]}")
            task.add_done_callback(log_crash)
            self._tasks[d.transfer] = task

    def cancel(self, transfer: int) -> None:
        """The master withdrew a transfer."""
        if (running := self._tasks.get(transfer)) is not None:
            del self._tasks[transfer]
            running.cancel()

    async def cancel_all(self) -> list[int]:
        """Stop every download (a new generation, a lost master, a folder read again); the
        transfers that were under way."""
        transfers = list(self._tasks)
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return transfers

    async def _download(self, d: p.Download) -> None:
        try:
            await self._download_inner(d)
        finally:
            self._tasks.pop(d.transfer, None)

    async def _download_inner(self, d: p.Download) -> None:
        m = self._current()
        gen = m.generation if m else ""
        target = self._store.chunk_target(d.chunk)
        if target is None or d.chunk in self.inflight:
            ok = self._store.has(d.chunk)
            # (one still in flight here after the master withdrew it: no fault of the source)
            self._link.post(p.Report(d.transfer, ok, 0.0, "" if ok else "not wanted", blameless=not ok))
            return
        fd, offset, length = target
        log.debug("fetching %s from %s", d.chunk[:8], d.source)
        self.inflight.add(d.chunk)
        self._counters.downloads += 1
        self.sources[d.source] = self.sources.get(d.source, 0) + 1
        due = time.monotonic() + d.timeout_s
        # Served while it arrives (its prefix, to downloaders that verify the whole); the stream
        # is cut unless it is verified and held here at the end.
        arrival = self._arrivals.begin(d.chunk, fd, offset, length,
                                       first_bytes=lambda: self._first_bytes(d.chunk, due))
        verified = False
        try:
            try:
                result = await self._fetcher.fetch(
                    d.url, d.chunk, length, token=d.token, fd=fd, offset=offset,
                    timeout_s=d.timeout_s,
                    buckets=[b for b in (self._dl_bucket,) if b],
                    pace=Pace(d.rate_cap, d.group, d.group_rate, d.transfer),
                    ending=self._link.ending_notice(d.transfer), receiving=self._link.receiving_notice(d.transfer),
                    ending_receives=self._link.protocol >= p.ENDING_RECEIVES,
                    progress=arrival.advance, accept_lz4=self._compress, deadline_s=backstop_s(d.timeout_s))
            finally:
                self.inflight.discard(d.chunk)
                self._counters.downloads -= 1
                if (left := self.sources.pop(d.source, 1) - 1) > 0:
                    self.sources[d.source] = left
            now = self._current()
            if now is None or now.generation != gen:
                return
            if result.ok:
                self.chunks += 1
                self.bytes += length
                self._store.chunk_verified(d.chunk, fd, offset)
                verified = True
                self._arrivals.end(arrival, ok=True)
            else:
                log.info("chunk %s from %s failed: %s", d.chunk[:8], d.source, result.error)
        finally:
            if not verified:
                self._arrivals.end(arrival, ok=False)
                if arrival.received and self._arrival_failed is not None:
                    self._arrival_failed(d.chunk)
        # Report first: the planner learns the outcome of its transfer, then the new holding (which
        # an ok Report says itself from protocol 10 on).
        self._link.post(p.Report(d.transfer, result.ok, result.seconds, safe_text(result.error), result.corrupt,
                                 result.blameless))
        if result.ok:
            if self._link.protocol < p.REPORT_HOLDS:
                self._link.post(p.Have(gen, [d.chunk]))
            self._verified(d.chunk)

    def _first_bytes(self, chunk: str, due: float) -> None:
        if self._arriving is not None:
            self._arriving(chunk, due)


def log_crash(task: asyncio.Task[None]) -> None:
    """A background task (a download, the scrub, a prune) that dies of a bug must say so, by its
    name (the swarm would otherwise just stall)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s failed: %r", task.get_name(), exc, exc_info=exc)
