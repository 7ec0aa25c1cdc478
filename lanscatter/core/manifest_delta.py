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
from typing import Any

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
    out = _Splice(base)
    start, k = 0, 0
    for stop in [*cut, n]:
        while k < len(files) and at[k] <= stop:
            out.copy(start, at[k])
            start = at[k]
            out.add(files[k])
            k += 1
        out.copy(start, stop)
        start = stop + 1
    return out.table()


class _Splice:
    """A table of hex digests made of runs of a base table's files and new entries, its chunks
    numbered in order of first appearance through each base chunk's new number (4 bytes a chunk);
    the paths and hashes joined once from views of the base's blobs."""

    def __init__(self, base: FileTable) -> None:
        self._base = c = base.columns
        self._paths: list[bytes | memoryview] = []
        self._paths_len = 0
        self._path_ends, self._sizes, self._mtimes = array("q"), array("q"), array("q")
        self._executable: list[bytes] = []
        self._ref_ends, self._refs, self._lengths = array("q"), array("I"), array("q")
        self._number = array("i", [-1]) * len(c.hashes)      # a base chunk's new number
        self._fresh: dict[str, int] = {}                       # chunks the base does not list
        self._hashes: list[bytes | memoryview] = []
        self._run = (0, 0)                # base chunks numbered last, one after another
        self._count = 0

    def copy(self, a: int, b: int) -> None:
        """Base files a .. b-1, as they are."""
        if a >= b:
            return
        c = self._base
        p0 = c.path_ends[a - 1] if a else 0
        r0, r1 = (c.ref_ends[a - 1] if a else 0), c.ref_ends[b - 1]
        self._paths.append(memoryview(c.paths)[p0:c.path_ends[b - 1]])
        shift = self._paths_len - p0
        self._path_ends.extend(end + shift for end in c.path_ends[a:b])
        self._paths_len += c.path_ends[b - 1] - p0
        self._sizes.extend(c.sizes[a:b])
        self._mtimes.extend(c.mtimes[a:b])
        self._executable.append(c.executable[a:b])
        shift = len(self._refs) - r0
        self._ref_ends.extend(end + shift for end in c.ref_ends[a:b])
        self._refs.extend(map(self._base_number, c.refs[r0:r1]))
        self._lengths.extend(c.lengths[r0:r1])

    def add(self, f: FileEntry) -> None:
        path = f.path.encode("utf-8", "surrogateescape")
        self._paths.append(path)
        self._paths_len += len(path)
        self._path_ends.append(self._paths_len)
        self._sizes.append(f.size)
        self._mtimes.append(f.mtime_ns)
        self._executable.append(b"\x01" if f.executable else b"\x00")
        hashes = self._base.hashes
        for h in f.chunks:
            d = hashes.find(h)
            self._refs.append(self._base_number(d) if d is not None else self._fresh_number(h))
        self._lengths.extend(f.sizes)
        self._ref_ends.append(len(self._refs))

    def _base_number(self, d: int) -> int:
        number = self._number[d]
        if number < 0:
            number = self._number[d] = self._count
            self._count += 1
            start, stop = self._run
            if d != stop:
                self._flush()
                start = d
            self._run = (start, d + 1)
        return number

    def _fresh_number(self, h: str) -> int:
        number = self._fresh.get(h)
        if number is None:
            number = self._fresh[h] = self._count
            self._count += 1
            self._flush()
            self._hashes.append(bytes.fromhex(h))
        return number

    def _flush(self) -> None:
        start, stop = self._run
        if start < stop:
            blob = self._base.hashes.blob
            assert blob is not None
            self._hashes.append(memoryview(blob)[start * HASH_BYTES:stop * HASH_BYTES])
        self._run = (0, 0)

    def table(self) -> FileTable:
        self._flush()
        return FileTable(Columns(b"".join(self._paths), self._path_ends, self._sizes, self._mtimes,
                                 b"".join(self._executable), self._ref_ends, self._refs, self._lengths,
                                 HashTable(b"".join(self._hashes), None)))
