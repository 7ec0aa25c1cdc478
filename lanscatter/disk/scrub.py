"""The background scrub: a peer or relay re-reads the chunks it holds, at a set rate, so a copy
that rotted on disk (or was edited under its old size and mtime) stops being served and announced
as good, and is fetched again.

Rules:
- Reading and hashing run in one worker thread of the scrub's own; the event loop only paces.
- Never while the folder is reconciled: a chunk is checked only while the node is not busy (the
  peer also counts downloads under way as busy: a sync has the disk first), and a mismatch counts
  only if no reconcile started meanwhile (the store's `epoch`) and the chunk is still held at the
  place that was read.
- Paced: on average at most `rate` bytes/s are read; a pass over the holdings starts at most every
  `PASS_EVERY_S`, so a small folder is not read over and over.
- A chunk that does not match is handed to `on_rotten` (the peer's verify path: the chunk is
  dropped from the holdings, the master told, the files holding it read afresh, the chunk fetched
  again). A chunk that cannot be read (its file was just renamed or removed) is left to the next
  pass.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from lanscatter.core.manifest import show_path
from lanscatter.disk.hashing import hash_file_range
from lanscatter.disk.store import Location, MirrorStore

log = logging.getLogger("lanscatter.disk.scrub")

DEFAULT_SCRUB_RATE = 20e6      # bytes/s
PASS_EVERY_S = 10.0
_BUSY_POLL_S = 0.5


class Scrubber:
    def __init__(self, store: MirrorStore, rate: float, *, busy: Callable[[], bool],
                 on_rotten: Callable[[list[str]], Awaitable[None]]) -> None:
        if rate <= 0:
            raise ValueError("a scrub needs a positive rate")
        self.store = store
        self.rate = rate
        self.busy = busy
        self.on_rotten = on_rotten

    async def run(self) -> None:
        """Scrub until cancelled."""
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lanscatter-scrub")
        try:
            while True:
                started = loop.time()
                for chunk in self.store.held_chunks():      # (one at a time: no set of them all)
                    await self._check(loop, pool, chunk)
                await asyncio.sleep(max(0.0, started + PASS_EVERY_S - loop.time()))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    async def _check(self, loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor, chunk: str) -> None:
        while self.busy():
            await asyncio.sleep(_BUSY_POLL_S)
        epoch, loc = self.store.epoch, self.store.locate(chunk)
        if loc is None:
            return
        began = loop.time()
        matches = await loop.run_in_executor(pool, _matches, loc, chunk)
        if (matches is False and not self.busy() and self.store.epoch == epoch
                and self.store.locate(chunk) == loc):
            log.warning("chunk %s at offset %d of '%s' no longer matches its hash: fetching it again",
                        chunk[:12], loc.offset, show_path(os.path.relpath(loc.path, self.store.root)))
            await self.on_rotten([chunk])
        await asyncio.sleep(max(0.0, began + loc.length / self.rate - loop.time()))


def _matches(loc: Location, chunk: str) -> bool | None:
    """Whether the bytes at `loc` hash to `chunk` (None: they could not be read). Blocking."""
    try:
        fd = os.open(loc.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        return hash_file_range(fd, loc.offset, loc.length) == chunk
    except OSError:
        return False         # shorter than the chunk: it does not hold it any more
    finally:
        os.close(fd)
