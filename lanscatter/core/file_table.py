"""A manifest's file entries held compactly (pure, no I/O).

A folder of a million files as a million `FileEntry` objects, each with its own path text, hash
texts and tuples, costs several hundred bytes a file before any derived table; here the entries are
columns instead: the paths' UTF-8 in one blob, numbers in `array`s, each distinct chunk hash once
(32 bytes when it is a blake3 hex digest), and per chunk reference only an index and a length,
about 80 bytes a file in all. `FileTable` is an immutable `Sequence[FileEntry]`: an entry is built
when it is read, so code that iterates a manifest's files sees what it always saw.

Rules:
- Distinct hashes are numbered in order of first appearance over the files in their order: that
  numbering is the manifest's `chunk_table()` order (status bitmaps) when the files are sorted.
- Hashes are held as 32 bytes when every one is a 64-digit lowercase hex digest (the case of every
  manifest that passed `manifest.check_hash`), else as the texts they are (manifests made by hand).
- The wire form (`manifest_wire.py`) is these columns; decoding checks every field there.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

HASH_BYTES = 32
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str
    size: int
    mtime_ns: int
    executable: bool
    chunks: tuple[str, ...]
    sizes: tuple[int, ...]            # each chunk's length, in order; they add up to `size`

    def spans(self) -> Iterable[tuple[int, str, int, int]]:
        """(index, hash, offset, length) of each chunk."""
        offset = 0
        for k, (h, length) in enumerate(zip(self.chunks, self.sizes, strict=True)):
            yield k, h, offset, length
            offset += length


def span(ends: Sequence[int], i: int) -> range:
    """Item `i`'s positions in a column of items laid end to end, whose ends are `ends`."""
    return range(ends[i - 1] if i else 0, ends[i])


def text_at(blob: bytes | bytearray, ends: Sequence[int], i: int) -> str:
    """Text `i` of UTF-8 texts laid end to end in `blob` (a path column)."""
    at = span(ends, i)
    return blob[at.start:at.stop].decode("utf-8", "surrogateescape")


def is_hex_digest(value: str) -> bool:
    return len(value) == 2 * HASH_BYTES and _HEX.issuperset(value)


class HashTable(Sequence[str]):
    """Distinct chunk hashes numbered in order of first appearance (hash `d` is `table[d]`);
    `find` gives a hash's number through an open-addressing index of 4 bytes a slot, at most half
    full, built at its first use (a dict of a million hex texts to numbers costs some 220 bytes a
    hash). Slots are chosen by Python's `hash`, salted per process, so hashes a hostile manifest
    chose cannot pile up; a table decoded from the network is checked `distinct` first."""

    __slots__ = ("_blob", "_count", "_distinct", "_slots", "_texts")

    def __init__(self, blob: bytes | None, texts: tuple[str, ...] | None, slots: array[int] | None = None) -> None:
        """`slots`: the index of `blob` made already (`Numbering`), else built at the first `find`."""
        self._blob, self._texts = blob, texts
        self._count = len(texts) if texts is not None else len(blob or b"") // HASH_BYTES
        self._slots = slots
        self._distinct = slots is not None

    @property
    def blob(self) -> bytes | None:
        """The hashes as 32 bytes each, or None for hashes that are not hex digests."""
        return self._blob

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[str, ...]: ...

    def __getitem__(self, i: int | slice) -> str | tuple[str, ...]:
        if isinstance(i, slice):
            return tuple(self[k] for k in range(*i.indices(self._count)))
        if self._texts is not None:
            return self._texts[i]
        assert self._blob is not None
        i = range(self._count)[i]                  # (an IndexError beyond either end)
        return self._blob[i * HASH_BYTES:(i + 1) * HASH_BYTES].hex()

    def __contains__(self, h: object) -> bool:
        return isinstance(h, str) and self.find(h) is not None

    def key(self, i: int) -> bytes | str:
        """Hash `i` as held (32 bytes, or its text): what tells two hashes apart, cheaply."""
        if self._texts is not None:
            return self._texts[i]
        assert self._blob is not None
        return self._blob[i * HASH_BYTES:(i + 1) * HASH_BYTES]

    def find(self, h: str) -> int | None:
        """The number of hash `h` (None: not in the table)."""
        if self._texts is not None:
            key: bytes | str = h
        elif is_hex_digest(h):
            key = bytes.fromhex(h)
        else:
            return None
        slots = self._slots if self._slots is not None else self._index()
        d = slots[_probe(slots, key, self.key)]
        return d if d >= 0 else None

    def distinct(self) -> bool:
        """Whether no hash is listed twice (a hostile manifest could)."""
        if self._slots is None:
            self._index()
        return self._distinct

    def _index(self) -> array[int]:
        self._slots, self._distinct = _slots_of(self.key, self._count)
        return self._slots

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HashTable) and (self._blob, self._texts) == (other._blob, other._texts)

    def __hash__(self) -> int:
        return hash((self._blob, self._texts))


def _probe(slots: array[int], key: bytes | str, key_of: Callable[[int], bytes | str]) -> int:
    """The slot of `key` in an open-addressing index (linear probing; a size a power of two, never
    full): the slot holding its number, else the empty one where it would go."""
    mask = len(slots) - 1
    s = hash(key) & mask
    while (d := slots[s]) >= 0 and key_of(d) != key:
        s = (s + 1) & mask
    return s


def _slots_of(key_of: Callable[[int], bytes | str], count: int) -> tuple[array[int], bool]:
    """An open-addressing index of keys 0 .. `count` - 1, at most half full, and whether they are
    distinct (a key met twice keeps its first number)."""
    size = 8
    while size < 2 * count:
        size *= 2
    slots = array("i", [-1]) * size
    distinct = True
    for d in range(count):
        s = _probe(slots, key_of(d), key_of)
        if slots[s] >= 0:
            distinct = False
        else:
            slots[s] = d
    return slots, distinct


class Numbering:
    """Distinct hashes numbered as they come (a table being built): hex digests as 32 bytes each
    in a blob with `HashTable`'s index, grown as it fills (a dict of a million hex texts to
    numbers cost some 190 bytes a hash while a scan ran); from the first hash that is not a hex
    digest (a manifest made by hand) every hash is a text in a dict."""

    def __init__(self) -> None:
        self._blob = bytearray()
        self._slots = array("i", [-1]) * 8
        self._texts: dict[str, int] | None = None

    def number(self, h: str) -> int:
        if self._texts is None and is_hex_digest(h):
            key, blob, slots = bytes.fromhex(h), self._blob, self._slots
            s = _probe(slots, key, self._key)
            if (d := slots[s]) >= 0:
                return d
            d = slots[s] = len(blob) // HASH_BYTES
            blob += key
            if 2 * (d + 1) > len(slots):
                self._slots, _ = _slots_of(self._key, d + 1)
            return d
        if self._texts is None:
            self._texts = {self._key(k).hex(): k for k in range(len(self._blob) // HASH_BYTES)}
        return self._texts.setdefault(h, len(self._texts))

    def _key(self, d: int) -> bytes:
        return bytes(self._blob[d * HASH_BYTES:(d + 1) * HASH_BYTES])

    def hashes(self) -> HashTable:
        if self._texts is None:
            return HashTable(bytes(self._blob), None, self._slots)
        return HashTable(None, tuple(self._texts))


@dataclass(frozen=True, slots=True)
class Columns:
    """The raw columns of a `FileTable` (what the wire form carries); `FileTable.of_columns`
    trusts them: decoding checks them first."""

    paths: bytes               # every path's UTF-8, one after another
    path_ends: array[int]      # 'q': where each path ends in `paths`
    sizes: array[int]          # 'q'
    mtimes: array[int]         # 'q'
    executable: bytes          # 0 or 1 per file
    ref_ends: array[int]       # 'q': where each file's chunk references end in `refs`
    refs: array[int]           # 'I': per chunk reference, its index in `hashes`
    lengths: array[int]        # 'q': per chunk reference, the chunk's length
    hashes: HashTable


class TableBuilder:
    """The columns of a `FileTable`, one entry at a time (a scan adds each file as it is hashed)."""

    def __init__(self) -> None:
        self._paths, self._path_ends = bytearray(), array("q")
        self._sizes, self._mtimes, self._executable = array("q"), array("q"), bytearray()
        self._ref_ends, self._refs, self._lengths = array("q"), array("I"), array("q")
        self._numbering = Numbering()

    def add(self, f: FileEntry) -> None:
        if len(f.chunks) != len(f.sizes):
            raise ValueError(f"{len(f.chunks)} chunk hashes and {len(f.sizes)} chunk sizes")
        self._paths += f.path.encode("utf-8", "surrogateescape")
        self._path_ends.append(len(self._paths))
        self._sizes.append(f.size)
        self._mtimes.append(f.mtime_ns)
        self._executable.append(1 if f.executable else 0)
        for h, length in zip(f.chunks, f.sizes, strict=True):
            self._refs.append(self._numbering.number(h))
            self._lengths.append(length)
        self._ref_ends.append(len(self._refs))

    def table(self) -> FileTable:
        return FileTable(Columns(bytes(self._paths), self._path_ends, self._sizes, self._mtimes,
                                 bytes(self._executable), self._ref_ends, self._refs, self._lengths,
                                 self._numbering.hashes()))


class FileTable(Sequence[FileEntry]):
    """A manifest's files, in their order, held as columns (see the module header)."""

    __slots__ = ("_c", "_index", "_sorted")

    def __init__(self, columns: Columns) -> None:
        self._c = columns
        self._index: dict[str, int] | None = None     # path -> position, for a table not sorted
        self._sorted: bool | None = None

    @classmethod
    def of_entries(cls, entries: Iterable[FileEntry]) -> FileTable:
        builder = TableBuilder()
        for f in entries:
            builder.add(f)
        return builder.table()

    def in_path_order(self) -> FileTable:
        """This table sorted by path (itself when it is sorted already)."""
        if self.is_sorted():
            return self
        builder = TableBuilder()
        for i in sorted(range(len(self)), key=self.path):
            builder.add(self.entry(i))
        return builder.table()

    @property
    def columns(self) -> Columns:
        return self._c

    @property
    def hashes(self) -> HashTable:
        return self._c.hashes

    def __len__(self) -> int:
        return len(self._c.sizes)

    def path(self, i: int) -> str:
        return text_at(self._c.paths, self._c.path_ends, i)

    def ref_range(self, i: int) -> range:
        """The positions of file `i`'s chunk references (in `columns.refs` and `columns.lengths`)."""
        return span(self._c.ref_ends, i)

    def entry(self, i: int) -> FileEntry:
        c = self._c
        span = self.ref_range(i)
        return FileEntry(self.path(i), c.sizes[i], c.mtimes[i], bool(c.executable[i]),
                         tuple(c.hashes[c.refs[r]] for r in span), tuple(c.lengths[span.start:span.stop]))

    @overload
    def __getitem__(self, i: int) -> FileEntry: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[FileEntry, ...]: ...

    def __getitem__(self, i: int | slice) -> FileEntry | tuple[FileEntry, ...]:
        if isinstance(i, slice):
            return tuple(self.entry(k) for k in range(*i.indices(len(self))))
        n = len(self)
        if not -n <= i < n:
            raise IndexError("file index out of range")
        return self.entry(i % n)

    def __iter__(self) -> Iterator[FileEntry]:
        for i in range(len(self)):
            yield self.entry(i)

    def position(self, path: str) -> int | None:
        """Where the file `path` is in the table (None: not listed)."""
        n = len(self)
        if self._index is None and self.is_sorted():
            i = bisect.bisect_left(range(n), path, key=self.path)
            return i if i < n and self.path(i) == path else None
        if self._index is None:
            self._index = {self.path(i): i for i in range(n)}
        return self._index.get(path)

    def is_sorted(self) -> bool:
        """Whether the paths are in strictly increasing order (checked once, remembered)."""
        if self._sorted is None:
            self._sorted = all(self.path(i - 1) < self.path(i) for i in range(1, len(self)))
        return self._sorted

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FileTable):
            return self._c == other._c
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._c.paths, self._c.hashes, bytes(self._c.refs), bytes(self._c.sizes)))

    def __repr__(self) -> str:
        return f"FileTable({len(self)} files)"


def pair_paths(a: FileTable, b: FileTable) -> Iterator[tuple[str, int | None, int | None]]:
    """Every path of either table with its position in `a` and in `b` (None: not there), in path
    order when both are sorted (walked side by side: no dict of a million entries)."""
    if not (a.is_sorted() and b.is_sorted()):
        for i in range(len(a)):
            path = a.path(i)
            yield path, i, b.position(path)
        for j in range(len(b)):
            path = b.path(j)
            if a.position(path) is None:
                yield path, None, j
        return
    i = j = 0
    while i < len(a) or j < len(b):
        pa = a.path(i) if i < len(a) else None
        pb = b.path(j) if j < len(b) else None
        if pb is None or (pa is not None and pa < pb):
            assert pa is not None
            yield pa, i, None
            i += 1
        elif pa is None or pb < pa:
            yield pb, None, j
            j += 1
        else:
            yield pa, i, j
            i += 1
            j += 1


def same_entry(a: FileTable, i: int, b: FileTable, j: int) -> bool:
    """Whether file `i` of `a` and file `j` of `b` have the same size, mtime, flag and chunks
    (their paths aside), compared in the columns."""
    ca, cb = a.columns, b.columns
    if (ca.sizes[i], ca.mtimes[i], ca.executable[i]) != (cb.sizes[j], cb.mtimes[j], cb.executable[j]):
        return False
    ra, rb = a.ref_range(i), b.ref_range(j)
    return (len(ra) == len(rb) and ca.lengths[ra.start:ra.stop] == cb.lengths[rb.start:rb.stop]
            and all(ca.hashes.key(ca.refs[x]) == cb.hashes.key(cb.refs[y]) for x, y in zip(ra, rb, strict=True)))


def holds(table: FileTable, j: int, f: FileEntry) -> bool:
    """Whether file `j` of `table` is `f` (its path, size, mtime, flag and chunks)."""
    c = table.columns
    if (c.sizes[j], c.mtimes[j], bool(c.executable[j])) != (f.size, f.mtime_ns, f.executable):
        return False
    span = table.ref_range(j)
    return (len(span) == len(f.chunks) and tuple(c.lengths[span.start:span.stop]) == f.sizes
            and all(c.hashes[c.refs[r]] == h for r, h in zip(span, f.chunks, strict=True)) and table.path(j) == f.path)


def as_table(files: Any) -> FileTable:
    return files if isinstance(files, FileTable) else FileTable.of_entries(files)
