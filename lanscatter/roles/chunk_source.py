"""What a node serving chunks from its folder needs of whatever holds them: where a chunk's bytes
are (`locate`), which chunks are held (`held_chunks`), and what to do when a downloader found a served
chunk corrupt (`verify`). A relay's downstream side (its chunk server and its swarm's seed) sees its
upstream peer through this and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from lanscatter.disk.store import Location


class ChunkSource(Protocol):
    def locate(self, chunk: str) -> Location | None:
        """Where the verified bytes of `chunk` are (None: not held)."""

    def held_chunks(self) -> Iterator[str]:
        """The chunks held and verified, of the current generation, one at a time (a set of a
        million hex texts would cost 150 MB)."""

    async def verify(self, chunks: Iterable[str], why: str = ...) -> None:
        """These chunks did not match their hashes where they were served: check them again."""
