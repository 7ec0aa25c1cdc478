"""A generation as its changes from an earlier one the receiver holds (pure, no I/O).

Rules:
- A delta names the generation it applies to (`base`) and the one it builds; it lists the paths
  of the files that are gone or changed, the new entries of the files added or changed (in the
  manifest's own list form), and the directories gone and added. Chunking and target size come
  whole: a delta across a change of chunking is never made (every entry changes anyway).
- The receiver decodes a delta with the same checks and bounds as a whole manifest: each new entry
  on its own, then the rebuilt manifest as a whole (`manifest.checked_manifest`), and the
  generation id it claims must be the one rebuilt. What the origin signed is checked after
  that, against the rebuilt manifest, exactly as for a whole one.
- `make_delta` returns None when a delta would not be much smaller than the manifest itself.
"""

from __future__ import annotations

import bisect
import reprlib
from array import array
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from lanscatter.core.errors import ManifestError
from lanscatter.core.file_table import (
    HASH_BYTES,
    Columns,
    FileEntry,
    FileTable,
    HashTable,
        pair_paths,
    same_entry,
)
from lanscatter.core.manifest import (
    Manifest,
    check_counts,
    check_relpath,
    checked_manifest,
    decode_chunking,
    decode_files,
    show_path,
)
from lanscatter.core.manifest_wire import check_table

DELTA_FORMAT = 1
_Column = TypeVar("_Column", bytes, "array[int]")
_WORTH = 0.5       # a delta of more than this share of the new manifest's files is not sent


def make_delta(base: Manifest, new: Manifest) -> dict[str, Any] | None:
    """The changes from `base` to `new`, or None when a whole manifest is about as cheap."""
    if base.chunking != new.chunking:
        return None
    most = _WORTH * max(1, len(new.files))
    changed: list[FileEntry] = []
    removed: list[str] = []
    replaced: list[str] = []
    for path, i, j in pair_paths(base.files, new.files):
        if j is None:
            removed.append(path)
        elif i is None or not same_entry(base.files, i, new.files, j):
            changed.append(new.files.entry(j))
            if len(changed) > most:
                return None
            if i is not None:
                replaced.append(path)
    gone = removed + replaced
    old_dirs, new_dirs = set(base.dirs), set(new.dirs)
    return {
        "format": DELTA_FORMAT, "base": base.generation, "generation": new.generation,
        "chunking": new.chunking_kind, "chunk_size": new.chunk_size,
        "removed": gone,
        "files": [[f.path, f.size, f.mtime_ns, int(f.executable), list(f.chunks), list(f.sizes)] for f in changed],
        "dirs_removed": sorted(old_dirs - new_dirs), "dirs_added": sorted(new_dirs - old_dirs),
    }


def apply_delta(base: Manifest, delta: Any) -> Manifest:
    """The manifest `delta` builds from `base`, checked as a whole manifest is; raises
    ManifestError for a delta that is malformed, out of bounds, for another base, or that does not
    build the generation it claims."""
    try:
        if delta.get("format") != DELTA_FORMAT:
            raise ManifestError(f"unsupported manifest delta format {show_path(reprlib.repr(delta.get('format')))}")
        if delta["base"] != base.generation:
            raise ManifestError("a manifest delta for another generation than the one held")
        chunking = decode_chunking(delta["chunking"], delta["chunk_size"])
        removed, raw_files = delta["removed"], delta["files"]
        dirs_removed, dirs_added = delta["dirs_removed"], delta["dirs_added"]
        if not all(isinstance(x, list) for x in (removed, raw_files, dirs_removed, dirs_added)):
            raise ManifestError("malformed manifest delta: its parts must be lists")
        check_counts(len(raw_files) + len(removed), len(dirs_added) + len(dirs_removed), 0)
        gone = {check_relpath(path) for path in removed}
        files = decode_files(raw_files, chunking)
        dropped_dirs = {check_relpath(d) for d in dirs_removed}
        added_dirs = [check_relpath(d) for d in dirs_added]
        claimed = delta["generation"]
        if not isinstance(claimed, str) or not claimed:
            raise ManifestError("a manifest delta that does not say which generation it builds")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ManifestError(f"malformed manifest delta: {show_path(str(exc))}") from None
    dirs = [d for d in base.dirs if d not in dropped_dirs] + added_dirs
    # A changed file must be named as removed: an entry for a path still held is a second one,
    # which the whole-manifest check refuses.
    if not base.files.is_sorted() or base.files.hashes.blob is None:    # a manifest made by hand
        return checked_manifest(chunking, [f for f in base.files if f.path not in gone] + files, dirs, claimed)
    table = _merged(base.files, gone, sorted(files, key=lambda f: f.path))
    all_dirs = set(dirs)
    check_table(table, chunking, all_dirs)
    check_counts(len(table), len(all_dirs), len(table.columns.refs))
    manifest = Manifest(chunking.size, table, tuple(sorted(all_dirs)), chunking.kind)
    if claimed != manifest.generation:
        raise ManifestError("manifest generation id does not match its content")
    return manifest


def _merged(base: FileTable, gone: set[str], files: list[FileEntry]) -> FileTable:
    """The files of `base` (sorted, hashes as hex digests) but those `gone`, and `files` (sorted),
    in path order, as one table built column by column (`_Splice`): the runs of `base` kept are
    copied as slices of its columns, not a million entries built and taken apart again (which
    cost about 60 bytes a file beside the two tables, and most of the time)."""
    n = len(base)
    cut = sorted(i for i in map(base.position, gone) if i is not None)
    # Each new file goes before the base file at its place in path order.
    at = [bisect.bisect_left(range(n), f.path, key=base.path) for f in files]
    dropped = set(cut)
    for f, i in zip(files, at, strict=True):
        if i < n and i not in dropped and base.path(i) == f.path:
            raise ManifestError(f"manifest lists a path twice: '{show_path(f.path)}'")
    parts: list[range | FileEntry] = []
    start, k = 0, 0
    for stop in [*cut, n]:
        while k < len(files) and at[k] <= stop:
            parts += [range(start, at[k]), files[k]]
            start = at[k]
            k += 1
        parts.append(range(start, stop))
        start = stop + 1
    return _Splice(base, [part for part in parts if not isinstance(part, range) or part]).table()


class _Splice:
    """A table of hex digests made of runs of a base table's files (ranges of positions) and new
    entries, one column at a time: a column that comes out equal to the base's is the base's own
    (a version that changes ten files of a million shares its paths and most other columns with
    the one before, rather than a second copy of each), and only one new column is transient at a
    time. Chunks are numbered in order of first appearance through each base chunk's new number
    (4 bytes a chunk); the path and hash blobs are joined once from views of the base's."""

    def __init__(self, base: FileTable, parts: list[range | FileEntry]) -> None:
        self._base, self._parts = base.columns, parts

    def table(self) -> FileTable:
        c = self._base
        refs, hashes = self._refs()
        return FileTable(Columns(
            _kept(c.paths, self._paths()), _kept(c.path_ends, self._ends(c.path_ends, _path_bytes)),
            _kept(c.sizes, self._numbers(c.sizes, lambda f: (f.size,))),
            _kept(c.mtimes, self._numbers(c.mtimes, lambda f: (f.mtime_ns,))),
            _kept(c.executable, b"".join(c.executable[part.start:part.stop] if isinstance(part, range)
                                         else b"\x01" if part.executable else b"\x00" for part in self._parts)),
            _kept(c.ref_ends, self._ends(c.ref_ends, lambda f: len(f.chunks))),
            _kept(c.refs, refs), _kept(c.lengths, self._numbers(c.lengths, lambda f: f.sizes, refs=True)),
            hashes))

    def _paths(self) -> bytes:
        c, view = self._base, memoryview(self._base.paths)
        return b"".join(view[_at(c.path_ends, part.start):_at(c.path_ends, part.stop)] if isinstance(part, range)
                        else part.path.encode("utf-8", "surrogateescape") for part in self._parts)

    def _ends(self, ends: array[int], length: Callable[[FileEntry], int]) -> array[int]:
        """A column of where each file's items end (paths' bytes, chunk references)."""
        out, end = array("q"), 0
        for part in self._parts:
            if isinstance(part, range):
                shift = end - _at(ends, part.start)
                out.extend(x + shift for x in ends[part.start:part.stop])
                end = _at(ends, part.stop) + shift
            else:
                end += length(part)
                out.append(end)
        return out

    def _numbers(self, column: array[int], values: Callable[[FileEntry], Iterable[int]], *,
                 refs: bool = False) -> array[int]:
        """A column of numbers per file (or, `refs`, per chunk reference)."""
        ends = self._base.ref_ends
        out = array(column.typecode)
        for part in self._parts:
            if not isinstance(part, range):
                out.extend(values(part))
            elif refs:
                out.extend(column[_at(ends, part.start):_at(ends, part.stop)])
            else:
                out.extend(column[part.start:part.stop])
        return out

    def _refs(self) -> tuple[array[int], HashTable]:
        """Each reference's chunk number, renumbered in order of first appearance, and the hashes."""
        c = self._base
        blob = c.hashes.blob
        assert blob is not None
        number = array("i", [-1]) * len(c.hashes)         # a base chunk's new number
        fresh: dict[str, int] = {}                          # chunks the base does not list
        pieces: list[bytes | memoryview] = []
        run = [0, 0]                     # base chunks numbered last, one after another
        count = 0

        def flush() -> None:
            if run[0] < run[1]:
                pieces.append(memoryview(blob)[run[0] * HASH_BYTES:run[1] * HASH_BYTES])
            run[:] = [0, 0]

        def base_number(d: int) -> int:
            nonlocal count
            if (k := number[d]) >= 0:
                return k
            k = number[d] = count
            count += 1
            if d != run[1]:
                flush()
                run[0] = d
            run[1] = d + 1
            return k

        out = array("I")
        for part in self._parts:
            if isinstance(part, range):
                out.extend(map(base_number, c.refs[_at(c.ref_ends, part.start):_at(c.ref_ends, part.stop)]))
                continue
            for h in part.chunks:
                if (d := c.hashes.find(h)) is not None:
                    out.append(base_number(d))
                elif (k := fresh.get(h)) is not None:
                    out.append(k)
                else:
                    k = fresh[h] = count
                    count += 1
                    flush()
                    pieces.append(bytes.fromhex(h))
                    out.append(k)
        flush()
        joined = b"".join(pieces)
        return out, c.hashes if joined == blob else HashTable(joined, None)


def _at(ends: array[int], i: int) -> int:
    """Where item `i` starts in a column of items laid end to end whose ends are `ends`."""
    return ends[i - 1] if i else 0


def _path_bytes(f: FileEntry) -> int:
    return len(f.path.encode("utf-8", "surrogateescape"))


def _kept(old: _Column, new: _Column) -> _Column:
    """The base's column where the new one is the same (one object for both tables)."""
    return old if new == old else new
