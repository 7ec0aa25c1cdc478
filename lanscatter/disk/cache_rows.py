"""The hash cache's remembered files as sorted columns (no object per file).

A million files as a dict of path texts to packed entries cost over 200 bytes a file; here they are
columns, about 105 bytes a file of one chunk: every path's UTF-8 in one blob with its end, the
stat fields in arrays, each chunk's length and its hash (32 bytes) in two more.

Rules:
- Rows are in increasing path order (Python's order of texts, the manifest's), so a path is found
  by bisection.
- A row is the fields of `Fields`; `pack` and `unpack` turn them into one bytes object (what the
  cache's small overlay of recent changes holds) and back.
- `Rows.merged` builds the rows anew from runs of rows kept and rows added, one group of columns
  at a time, freeing each old group as its new one is made: the peak is the old rows and one new
  group, not two whole copies.
"""

from __future__ import annotations

import bisect
import struct
from array import array
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from lanscatter.core.file_table import span, text_at

HASH = 32
_HEAD = struct.Struct("<qQqH")     # mtime_ns, inode, ctime_ns, chunking key number


class Fields(NamedTuple):
    """One remembered file: its stat fields, chunking key number, chunk lengths ('q' array bytes)
    and chunk hashes (32 bytes each)."""

    mtime_ns: int
    inode: int
    ctime_ns: int
    key: int
    sizes: bytes
    hashes: bytes

    @property
    def chunks(self) -> int:
        return len(self.hashes) // HASH

    def size(self) -> int:
        return sum(array("q", self.sizes))


def pack(f: Fields) -> bytes:
    return _HEAD.pack(f.mtime_ns, f.inode, f.ctime_ns, f.key) + f.sizes + f.hashes


def unpack(packed: bytes) -> Fields:
    mtime_ns, inode, ctime_ns, key = _HEAD.unpack_from(packed)
    n = (len(packed) - _HEAD.size) // (8 + HASH)
    at = _HEAD.size + 8 * n
    return Fields(mtime_ns, inode, ctime_ns, key, packed[_HEAD.size:at], packed[at:])


# A run of kept rows [start, stop), or the path of a row added, in path order.
Item = tuple[int, int] | str


class Rows:
    """Remembered files in path order, as columns (see the module header)."""

    __slots__ = ("cends", "ctime", "ends", "hashes", "ino", "key", "mtime", "paths", "sizes")

    def __init__(self) -> None:
        self.paths, self.ends = bytearray(), array("q")
        self.mtime, self.ino, self.ctime, self.key = array("q"), array("Q"), array("q"), array("H")
        self.cends, self.sizes, self.hashes = array("q"), array("q"), bytearray()

    def __len__(self) -> int:
        return len(self.ends)

    def path(self, i: int) -> str:
        return text_at(self.paths, self.ends, i)

    def find(self, rel: str, lo: int = 0) -> int:
        """Where `rel` is, or would go, among the rows (from `lo` on)."""
        n = len(self)
        if n > lo and rel > self.path(n - 1):
            return n        # after every row: what a first scan, in path order, asks each time
        return bisect.bisect_left(range(n), rel, lo=lo, key=self.path)

    def fields(self, i: int) -> Fields:
        c0, c1 = (at := span(self.cends, i)).start, at.stop
        return Fields(self.mtime[i], self.ino[i], self.ctime[i], self.key[i], self.sizes[c0:c1].tobytes(),
                      bytes(self.hashes[HASH * c0:HASH * c1]))

    def vouches(self, i: int, size: int, mtime_ns: int, inode: int, ctime_ns: int, key: int) -> bool:
        """Whether row `i` was taken of a file with these stat fields and chunking key (its
        fields are not copied out)."""
        if (self.mtime[i], self.ino[i], self.ctime[i], self.key[i]) != (mtime_ns, inode, ctime_ns, key):
            return False
        at = span(self.cends, i)
        return sum(self.sizes[at.start:at.stop]) == size

    def chunk_count(self, i: int) -> int:
        return len(span(self.cends, i))

    def overwrite(self, i: int, f: Fields) -> None:
        """Replace row `i`'s fields by `f`, of as many chunks."""
        c0, c1 = (at := span(self.cends, i)).start, at.stop
        assert c1 - c0 == f.chunks
        self.mtime[i], self.ino[i], self.ctime[i], self.key[i] = f.mtime_ns, f.inode, f.ctime_ns, f.key
        self.sizes[c0:c1] = array("q", f.sizes)
        self.hashes[HASH * c0:HASH * c1] = f.hashes

    def append(self, rel: str, f: Fields) -> None:
        """Add a row after every other (`rel` sorts after them all)."""
        self.paths += rel.encode("utf-8", "surrogateescape")
        self.ends.append(len(self.paths))
        self.mtime.append(f.mtime_ns)
        self.ino.append(f.inode)
        self.ctime.append(f.ctime_ns)
        self.key.append(f.key)
        self.sizes.frombytes(f.sizes)
        self.hashes += f.hashes
        self.cends.append(len(self.sizes))

    def merged(self, items: Sequence[Item], added: Mapping[str, bytes]) -> Rows:
        """New rows made of `items` (runs of these rows and paths of `added`, packed fields by
        path, in path order). These rows are emptied on the way."""
        new = Rows()
        for it in items:
            if isinstance(it, str):
                new.paths += it.encode("utf-8", "surrogateescape")
                new.ends.append(len(new.paths))
            else:
                a, b = it
                start = self.ends[a - 1] if a else 0
                new.ends.extend(map((len(new.paths) - start).__add__, self.ends[a:b]))
                new.paths += self.paths[start:self.ends[b - 1]]
        self.paths, self.ends = bytearray(), array("q")
        for at, (name, typecode) in enumerate((("mtime", "q"), ("ino", "Q"), ("ctime", "q"), ("key", "H"))):
            old: array[int] = getattr(self, name)
            col = array(typecode)
            for it in items:
                if isinstance(it, str):
                    col.append(_HEAD.unpack_from(added[it])[at])
                else:
                    col += old[it[0]:it[1]]
            setattr(new, name, col)
            setattr(self, name, array(typecode))
        for it in items:
            if isinstance(it, str):
                f = unpack(added[it])
                new.sizes.frombytes(f.sizes)
                new.hashes += f.hashes
                new.cends.append(len(new.sizes))
            else:
                a, b = it
                c0, c1 = (self.cends[a - 1] if a else 0), self.cends[b - 1]
                new.cends.extend(map((len(new.sizes) - c0).__add__, self.cends[a:b]))
                new.sizes += self.sizes[c0:c1]
                new.hashes += self.hashes[HASH * c0:HASH * c1]
        self.cends, self.sizes, self.hashes = array("q"), array("q"), bytearray()
        return new

