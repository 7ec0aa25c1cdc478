"""The manifest: a folder's content as files and content-hashed chunks (pure, no I/O).

Rules:
- Paths are relative POSIX paths in UTF-8, validated by `check_relpath` on every way in (a manifest
  from the network is hostile until checked): no absolute paths, no `..` or `.`, no empty
  components, no NUL, no backslashes, no text that is not UTF-8, at most `MAX_NAME_BYTES` per
  component and `MAX_PATH_BYTES` in all. A colon is an ordinary character (`a:b.txt`, even `c:`):
  every host that writes a folder is POSIX, where a drive letter means nothing.
- A decoded manifest is bounded: at most `MAX_FILES` files, `MAX_DIRS` directories and
  `MAX_CHUNKS` chunk references, chunk size up to `MAX_CHUNK_SIZE`, file sizes up to
  `MAX_FILE_SIZE` and mtimes in the signed 64-bit nanoseconds the OS takes.
- Paths reach logs, events and status only through `show_path` (escaped and shortened).
- A file lists its chunks' hashes and lengths; chunk k starts where chunk k-1 ends. The lengths
  follow the manifest's chunking (lanscatter/core/chunking.py: fixed offsets or content-defined, a
  target `chunk_size`), checked on decoding. A 0-byte file has no chunks. Chunks are identified
  by content hash, so identical content is listed (and moved) once:
  `chunk_table()` is the distinct chunks in order of first appearance, and that index is the one
  status bitmaps use.
- The generation id is a hash of the canonical content, so the same folder gives the same id on
  every node and a relay passes it on without computing anything.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import reprlib
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from lanscatter.core.chunking import FIXED, Chunking, chunking_problem, sizes_problem
from lanscatter.core.errors import ManifestError
from lanscatter.core.file_table import FileEntry, FileTable, HashTable, as_table, pair_paths, same_entry

MANIFEST_FORMAT = 2          # 2: chunk lengths per file and the chunking kind
HASH_HEX_LEN = 64          # blake3, 32 bytes
_HEX = frozenset("0123456789abcdef")

# What every POSIX host can store (NAME_MAX and PATH_MAX of Linux and the BSDs), in UTF-8 bytes.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
# A manifest is one websocket frame (at most 256 MiB): these bound the work a hostile one can ask
# for, far above any real folder (16 MiB chunks x 8 M references is 128 TiB).
MAX_FILES = 2_000_000
MAX_DIRS = 1_000_000
MAX_CHUNKS = 8_000_000
MAX_CHUNK_SIZE = 2**30     # the site tree's bound too
MAX_FILE_SIZE = 2**53      # beyond any file system in use, and exact in every JSON reader
MTIME_RANGE = (-(2**63), 2**63 - 1)    # nanoseconds the OS takes (signed 64 bit)
SHOW_PATH_CHARS = 120


def show_path(path: str, limit: int = SHOW_PATH_CHARS) -> str:
    """A path as it may appear in a log line, an event or a status page: bytes that are not UTF-8
    as `\\xNN`, other unprintable characters escaped, cut to `limit` characters (with `...`)."""
    try:
        raw = path.encode("utf-8", "surrogateescape")       # names read from disk
    except UnicodeEncodeError:
        raw = path.encode("utf-8", "backslashreplace")      # lone surrogates from JSON text
    # A backslash is doubled, so `\\xff` in the output always stands for a byte and never for
    # those four characters.
    text = "".join(c if c.isprintable() else ascii(c)[1:-1]
                   for c in raw.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace"))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def relpath_problem(path: str) -> str | None:
    """Why `path` is not a safe relative POSIX path inside a sync folder (None: it is)."""
    if not isinstance(path, str) or not path:
        return "empty or non-text path"
    try:
        raw = path.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not UTF-8"
    if len(raw) > MAX_PATH_BYTES:
        return f"path longer than {MAX_PATH_BYTES} bytes"
    if "\x00" in path:
        return "name contains a NUL byte"
    if "\\" in path:
        return "name contains a backslash"
    if path.startswith("/"):
        return "absolute path"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return "path with an empty, '.' or '..' component"
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            return f"name longer than {MAX_NAME_BYTES} bytes"
    return None


def check_relpath(path: str) -> str:
    """Return `path` if it is a safe relative POSIX path inside a sync folder, else raise
    (the message shows the path escaped and shortened)."""
    problem = relpath_problem(path)
    if problem is not None:
        shown = show_path(path) if isinstance(path, str) else show_path(reprlib.repr(path))
        raise ManifestError(f"{problem}: '{shown}'")
    return path


def check_counts(files: int, dirs: int, chunks: int) -> None:
    """Raise if a manifest of this many files, directories and chunk references is out of bounds."""
    for what, n, most in (("files", files, MAX_FILES), ("directories", dirs, MAX_DIRS),
                          ("chunk references", chunks, MAX_CHUNKS)):
        if n > most:
            raise ManifestError(f"a manifest lists {n} {what}, more than the {most} allowed")


def check_hash(value: str) -> str:
    if not isinstance(value, str) or len(value) != HASH_HEX_LEN or not _HEX.issuperset(value):
        raise ManifestError(f"malformed chunk hash: {show_path(reprlib.repr(value), 80)}")
    return value


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


@dataclass(frozen=True, slots=True)
class ChunkLocation:
    path: str
    offset: int
    length: int


@dataclass(frozen=True)
class Manifest:
    chunk_size: int                        # fixed: every chunk's size; cdc: the target size
    files: FileTable                       # (any sequence of FileEntry given is made a FileTable)
    dirs: tuple[str, ...]                  # every directory, empty ones included, sorted
    chunking_kind: str = FIXED
    generation: str = field(default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", as_table(self.files))
        if not self.generation:
            object.__setattr__(self, "generation", _generation_id(self))

    @property
    def chunking(self) -> Chunking:
        return Chunking(self.chunking_kind, self.chunk_size)

    # Derived tables are cached: a manifest is immutable and may list a million files.
    def chunk_table(self) -> ChunkTable:
        """Distinct chunks (hash, size) in order of first appearance; the bitmap index order."""
        cached = self.__dict__.get("_chunk_table")
        if cached is None:
            cached = self.__dict__["_chunk_table"] = ChunkTable(self.files)
        return cached

    def chunk_index(self) -> Mapping[str, int]:
        """Each distinct chunk's position in `chunk_table()`."""
        return self.chunk_table().numbers

    def locations(self) -> _Locations:
        """Every place each chunk hash occurs (identical content can occur many times)."""
        cached = self.__dict__.get("_locations")
        if cached is None:
            cached = _Locations(self)
            self.__dict__["_locations"] = cached
        return cached

    @property
    def total_bytes(self) -> int:
        """Bytes of distinct content: what a peer has to receive at most."""
        return sum(self.chunk_table().sizes)

    @property
    def file_bytes(self) -> int:
        return sum(self.files.columns.sizes)

    def file(self, path: str) -> FileEntry | None:
        i = self.files.position(path)
        return None if i is None else self.files.entry(i)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "generation": self.generation,
            "chunking": self.chunking_kind,
            "chunk_size": self.chunk_size,
            "dirs": list(self.dirs),
            "files": [[f.path, f.size, f.mtime_ns, int(f.executable), list(f.chunks), list(f.sizes)]
                      for f in self.files],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


def build_manifest(chunk_size: int, files: Iterable[FileEntry] | FileTable, dirs: Iterable[str],
                   chunking_kind: str = FIXED) -> Manifest:
    """Canonical manifest: files and dirs sorted, parents of files listed as dirs."""
    table = (files if isinstance(files, FileTable)
             else FileTable.of_entries(sorted(files, key=lambda f: f.path))).in_path_order()
    all_dirs = set(dirs)
    for i in range(len(table)):
        parent = table.path(i).rpartition("/")[0]
        while parent:
            all_dirs.add(parent)
            parent = parent.rpartition("/")[0]
    return Manifest(chunk_size=chunk_size, files=table, dirs=tuple(sorted(all_dirs)), chunking_kind=chunking_kind)


def manifest_from_dict(data: Any) -> Manifest:
    """Decode and fully validate a manifest from untrusted input; raises ManifestError."""
    try:
        if data.get("format") != MANIFEST_FORMAT:
            raise ManifestError(f"unsupported manifest format {show_path(reprlib.repr(data.get('format')))}")
        chunking = decode_chunking(data["chunking"], data["chunk_size"])
        raw_dirs, raw_files = data["dirs"], data["files"]
        if not isinstance(raw_dirs, list) or not isinstance(raw_files, list):
            raise ManifestError("malformed manifest: dirs and files must be lists")
        check_counts(len(raw_files), len(raw_dirs), 0)
        dirs = [check_relpath(d) for d in raw_dirs]
        files = decode_files(raw_files, chunking)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ManifestError(f"malformed manifest: {show_path(str(exc))}") from None
    return checked_manifest(chunking, files, dirs, data.get("generation"))


def decode_chunking(kind: Any, chunk_size: Any) -> Chunking:
    if not _int_in(chunk_size, 1, MAX_CHUNK_SIZE):
        raise ManifestError(f"bad chunk size {show_path(reprlib.repr(chunk_size))}")
    if (problem := chunking_problem(kind, chunk_size)) is not None:
        raise ManifestError(f"bad chunking: {show_path(problem)}")
    return Chunking(kind, chunk_size)


def decode_files(raw_files: Any, chunking: Chunking) -> list[FileEntry]:
    """File entries (`Manifest.to_dict`'s lists) from untrusted input, each checked on its own;
    raises ManifestError, or TypeError/ValueError for a malformed shape."""
    if not isinstance(raw_files, list):
        raise ManifestError("malformed manifest: files must be a list")
    files = []
    references = 0
    for path, size, mtime_ns, executable, chunks, lengths in raw_files:
        path = check_relpath(path)
        if not _int_in(size, 0, MAX_FILE_SIZE) or not _int_in(mtime_ns, *MTIME_RANGE):
            raise ManifestError(f"bad size or mtime for '{show_path(path)}'")
        if not isinstance(chunks, list) or not isinstance(lengths, list) or len(chunks) != len(lengths):
            raise ManifestError(f"'{show_path(path)}': chunk hashes and sizes do not pair up")
        references += len(chunks)
        check_counts(0, 0, references)
        if not all(_int_in(n, 1, MAX_CHUNK_SIZE * 4) for n in lengths):
            raise ManifestError(f"'{show_path(path)}': a malformed chunk size")
        sizes = tuple(lengths)
        if (problem := sizes_problem(chunking, size, sizes)) is not None:
            raise ManifestError(f"'{show_path(path)}': {problem}")
        files.append(FileEntry(path, size, mtime_ns, bool(executable),
                               tuple(check_hash(h) for h in chunks), sizes))
    return files


def checked_manifest(chunking: Chunking, files: list[FileEntry], dirs: list[str],
                     claimed: Any = None) -> Manifest:
    """The manifest of entries checked one by one, once the whole holds together: no path twice,
    none both file and directory or below a file, each chunk with one size, the counts bounded, and
    the generation id the one `claimed` (if any). Raises ManifestError."""
    check_counts(len(files), len(dirs), sum(len(f.chunks) for f in files))
    paths = [f.path for f in files]
    path_set = set(paths)
    if len(path_set) != len(paths):
        raise ManifestError("manifest lists a path twice")
    if not path_set.isdisjoint(dirs):
        raise ManifestError("manifest lists a path both as file and as directory")
    for p in paths:   # a file's parent must not be a file (e.g. 'a' and 'a/b')
        parts = p.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in path_set:
                raise ManifestError(f"'{show_path(p)}' lies below the file '{show_path('/'.join(parts[:i]))}'")
    manifest = build_manifest(chunking.size, files, dirs, chunking.kind)
    seen: dict[str, int] = {}
    for f in manifest.files:
        for _, h, _, length in f.spans():
            if seen.setdefault(h, length) != length:
                raise ManifestError(f"chunk {h[:12]} listed with two different sizes")
    if claimed and claimed != manifest.generation:
        raise ManifestError("manifest generation id does not match its content")
    return manifest


def manifest_from_json(text: str | bytes) -> Manifest:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ManifestError(f"manifest is not JSON: {exc}") from None
    return manifest_from_dict(data)


def _generation_id(m: Manifest) -> str:
    h = hashlib.blake2b(digest_size=12)
    h.update(f"{m.chunking_kind} {m.chunk_size}\n".encode())
    for d in m.dirs:
        h.update(f"d {d}\n".encode())
    for f in m.files:
        h.update(f"f {f.path}\0{f.size} {f.mtime_ns} {int(f.executable)} {','.join(f.chunks)}"
                 f" {','.join(map(str, f.sizes))}\n".encode())
    return h.hexdigest()


class ChunkTable(Sequence[tuple[str, int]]):
    """`Manifest.chunk_table()`: the distinct chunks (hash, size) of a file table, an item built
    when it is read from the table's hashes and a size array (8 bytes a chunk, where a tuple of
    a hex text and a number each cost some 180). Equal to the tuple of its items."""

    __slots__ = ("hashes", "sizes")

    def __init__(self, files: FileTable) -> None:
        c = files.columns
        self.hashes = c.hashes                # each chunk's hash, by its number
        self.sizes = array("q")              # each chunk's size, by its number
        for d, length in zip(c.refs, c.lengths, strict=True):
            if d == len(self.sizes):          # numbered in order of first appearance
                self.sizes.append(length)

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def numbers(self) -> ChunkIndex:
        """Each chunk's number by its hash."""
        return ChunkIndex(self.hashes)

    @overload
    def __getitem__(self, i: int) -> tuple[str, int]: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[tuple[str, int], ...]: ...

    def __getitem__(self, i: int | slice) -> tuple[str, int] | tuple[tuple[str, int], ...]:
        if isinstance(i, slice):
            return tuple(self[k] for k in range(*i.indices(len(self))))
        return self.hashes[i], self.sizes[i]

    def __iter__(self) -> Iterator[tuple[str, int]]:
        hashes, sizes = self.hashes, self.sizes
        return ((hashes[d], sizes[d]) for d in range(len(sizes)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChunkTable):
            return self.hashes == other.hashes and self.sizes == other.sizes
        if isinstance(other, tuple):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.hashes, bytes(self.sizes)))

    def __repr__(self) -> str:
        return f"ChunkTable({len(self)} chunks)"


_RECENT_LOOKUPS = 4096     # hashes a ChunkIndex remembers: a transfer looks its chunk up about five times


class ChunkIndex(Mapping[str, int]):
    """A chunk table's index (`Manifest.chunk_index()`): a hash's number found in the hash table
    (`HashTable.find`), no dict of every hex text held; the hashes looked up lately are (the
    master looks each transfer's chunk up some five times, at 3 us each in the table)."""

    __slots__ = ("_hashes", "_recent")

    def __init__(self, hashes: HashTable) -> None:
        self._hashes = hashes
        self._recent: dict[str, int] = {}

    def get(self, chunk: object, default: int | None = None) -> int | None:  # type: ignore[override]
        if not isinstance(chunk, str):
            return default
        d = self._recent.get(chunk)
        if d is None:
            d = self._hashes.find(chunk)
            if d is None:
                return default
            if len(self._recent) >= _RECENT_LOOKUPS:
                self._recent.clear()
            self._recent[chunk] = d
        return d

    def __getitem__(self, chunk: str) -> int:
        d = self.get(chunk)
        if d is None:
            raise KeyError(chunk)
        return d

    def __contains__(self, chunk: object) -> bool:
        return self.get(chunk) is not None

    def __iter__(self) -> Iterator[str]:
        return (self._hashes[d] for d in range(len(self._hashes)))

    def __len__(self) -> int:
        return len(self._hashes)


class _Locations(Mapping[str, tuple[ChunkLocation, ...]]):
    """`Manifest.locations()` without a ChunkLocation per reference held: each distinct chunk's
    references chained through one array (8 bytes a reference), the places built when asked. It
    holds the manifest's table, not the manifest: the manifest caches it, and a cycle between the
    two would keep a dropped manifest of a million files until the collector's next full pass."""

    def __init__(self, manifest: Manifest) -> None:
        self._files = manifest.files
        c = manifest.files.columns
        self._first = array("q", [-1]) * len(c.hashes)
        self._next = array("q", [-1]) * len(c.refs)
        for r in range(len(c.refs) - 1, -1, -1):
            d = c.refs[r]
            self._next[r], self._first[d] = self._first[d], r

    def refs(self, d: int) -> Iterator[int]:
        """The references to distinct chunk `d` (its number), in table order."""
        r = self._first[d]
        while r >= 0:
            yield r
            r = self._next[r]

    def place(self, r: int) -> tuple[int, int, int]:
        """(file position, offset, length) of chunk reference `r`."""
        table, c = self._files, self._files.columns
        i = bisect.bisect_right(c.ref_ends, r)       # the file holding reference r
        span = table.ref_range(i)
        return i, sum(c.lengths[span.start:r]), c.lengths[r]

    def first(self, chunk: str) -> ChunkLocation | None:
        """The first place of `chunk` in table order (None: not listed)."""
        d = self._files.hashes.find(chunk)
        if d is None:
            return None
        i, offset, length = self.place(self._first[d])
        return ChunkLocation(self._files.path(i), offset, length)

    def __getitem__(self, chunk: str) -> tuple[ChunkLocation, ...]:
        d = self._files.hashes.find(chunk) if isinstance(chunk, str) else None
        if d is None:
            raise KeyError(chunk)
        places = map(self.place, self.refs(d))
        return tuple(ChunkLocation(self._files.path(i), offset, length) for i, offset, length in places)

    def __iter__(self) -> Iterator[str]:
        return iter(self._files.hashes)

    def __len__(self) -> int:
        return len(self._first)


@dataclass(frozen=True, slots=True)
class ManifestDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    new_chunks: int            # distinct chunks in `new` that `old` did not have
    new_bytes: int

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_manifests(old: Manifest, new: Manifest) -> ManifestDiff:
    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []
    for path, i, j in pair_paths(old.files, new.files):
        if i is None:
            added.append(path)
        elif j is None:
            removed.append(path)
        elif not same_entry(old.files, i, new.files, j):
            changed.append(path)
    old_chunks = old.chunk_index()
    fresh = [(h, s) for h, s in new.chunk_table() if h not in old_chunks]
    return ManifestDiff(tuple(added), tuple(removed), tuple(changed), len(fresh), sum(s for _, s in fresh))
