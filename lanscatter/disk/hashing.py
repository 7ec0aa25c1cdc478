"""The content hash: blake3, hex.

blake3 was measured against hashlib's blake2b on this class of machine (docs/benchmarks.md): about
5x the throughput per core, and its update() releases the GIL, so a thread per core scales. Every
chunk is hashed from bounded pieces (`PIECE`), never from one whole-chunk buffer.
"""

from __future__ import annotations

import os

import blake3

HASH_NAME = "blake3"
PIECE = 1 << 20   # read/hash granularity: big enough to release the GIL usefully, small for RSS


def new_hasher() -> blake3.blake3:
    return blake3.blake3()


def hash_bytes(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def hash_file_range(fd: int, offset: int, length: int, buf: bytearray | None = None) -> str:
    """Hash `length` bytes of open file `fd` from `offset`; raises OSError on a short read."""
    h = blake3.blake3()
    # A buffer no bigger than the range: a fresh PIECE for a few bytes cost 0.4 ms a call in a
    # peer with threads (its pages faulted in, then unmapped), per small file copied locally.
    buf = buf if buf is not None else bytearray(min(PIECE, length))
    view = memoryview(buf)
    end = offset + length
    pos = offset
    while pos < end:
        want = min(len(buf), end - pos)
        n = os.preadv(fd, [view[:want]], pos)
        if n <= 0:
            raise OSError(f"file shrank while reading at offset {pos}")
        h.update(view[:n])
        pos += n
    return h.hexdigest()
