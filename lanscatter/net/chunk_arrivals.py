"""Chunks on their way into this node, served while they arrive (cut-through below the chunk).

A download registers its chunk here with the part file it writes into; the chunk server serves the
prefix received so far to a downloader that asks before the chunk is verified here, and sends the
rest as it comes, so a relay's site gets a chunk about a round trip behind the relay, not a whole
chunk's time on the WAN behind it.

Rules:
- Only the prefix written so far is served, and the chunk's last byte only once this node verified
  the whole: a partial stream completes only with a chunk that is good here, and its downloader
  hashes the whole itself before it keeps or announces anything (chunk_fetch.py).
- When the download fails (corrupt, cut short, cancelled), every partial stream of it is cut, so
  their downloaders fail too: nothing of a corrupt copy is kept or announced anywhere.
- The part file is read through a descriptor of its own, duplicated when the download begins (the
  store closes its descriptor once the file is whole; a number reused by another file must never be
  read), closed when the download has ended and the last stream stopped reading.
- The writer is a download thread; it reports progress with `advance`, which only schedules the
  update on the event loop. Everything else runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator


class ArrivalFailed(Exception):
    """The download of an arriving chunk failed: what was streamed of it must not be completed."""


class Arrival:
    """One chunk being received: how much of it is written, and whether it was verified."""

    def __init__(self, chunk: str, fd: int, offset: int, length: int, loop: asyncio.AbstractEventLoop,
                 first_bytes: Callable[[], None] | None) -> None:
        self.chunk = chunk
        self.offset = offset
        self.length = length
        self.received = 0            # bytes of the chunk written to the part file (event loop's view)
        self.verified = False
        self.failed = False
        self._fd = os.dup(fd)
        self._readers = 0
        self._loop = loop
        self._first_bytes = first_bytes
        self._changed = asyncio.Event()

    @property
    def ended(self) -> bool:
        return self.verified or self.failed

    def advance(self, received: int) -> None:
        """From the download thread: `received` bytes of the chunk are written."""
        self._loop.call_soon_threadsafe(self._advanced, received)

    def _advanced(self, received: int) -> None:
        if self.ended or received <= self.received:
            return
        self.received = min(received, self.length)
        if self._first_bytes is not None:
            first, self._first_bytes = self._first_bytes, None
            first()
        self._notify()

    def _end(self, ok: bool) -> None:
        if self.ended:
            return
        self.verified, self.failed = ok, not ok
        self._notify()
        self._close_if_unused()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def servable(self, pos: int) -> int:
        """The end (in chunk bytes) of what may be sent now, once it is beyond `pos`: the prefix
        received, all of it only when verified. Raises ArrivalFailed when the download failed."""
        while True:
            if self.failed:
                raise ArrivalFailed(f"the download of chunk {self.chunk[:8]} here failed")
            end = self.length if self.verified else min(self.received, self.length - 1)
            if end > pos:
                return end
            await self._changed.wait()

    @contextlib.contextmanager
    def reading(self) -> Iterator[int]:
        """The part file's descriptor, open for as long as the block runs."""
        if self._fd < 0:
            raise ArrivalFailed(f"the download of chunk {self.chunk[:8]} here has ended")
        self._readers += 1
        try:
            yield self._fd
        finally:
            self._readers -= 1
            self._close_if_unused()

    def _close_if_unused(self) -> None:
        if self.ended and not self._readers and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class ChunkArrivals:
    """The chunks this node is receiving now, by hash (one download per chunk at a time)."""

    def __init__(self) -> None:
        self._by_chunk: dict[str, Arrival] = {}

    def begin(self, chunk: str, fd: int, offset: int, length: int, *,
              first_bytes: Callable[[], None] | None = None) -> Arrival:
        """A download of `chunk` into `fd` at `offset` starts (on the event loop). `first_bytes`
        is called on the event loop when its first bytes are written."""
        old = self._by_chunk.pop(chunk, None)
        if old is not None:
            old._end(False)
        arrival = Arrival(chunk, fd, offset, length, asyncio.get_running_loop(), first_bytes)
        self._by_chunk[chunk] = arrival
        return arrival

    def end(self, arrival: Arrival, *, ok: bool) -> None:
        """The download ended: verified and held here (ok), or failed. Idempotent. A verified
        chunk must already be in the store, so that a new request finds it there."""
        if self._by_chunk.get(arrival.chunk) is arrival:
            del self._by_chunk[arrival.chunk]
        arrival._end(ok)

    def get(self, chunk: str) -> Arrival | None:
        """The chunk's download under way, if its first bytes are written."""
        arrival = self._by_chunk.get(chunk)
        return arrival if arrival is not None and arrival.received else None
