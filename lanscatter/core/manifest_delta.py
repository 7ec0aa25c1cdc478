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

import reprlib
from typing import Any

from lanscatter.core.errors import ManifestError
from lanscatter.core.file_table import FileEntry, FileTable, TableBuilder, pair_paths, same_entry
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
    if not base.files.is_sorted():       # a manifest made by hand
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
    """The files of `base` but those `gone`, and `files` (sorted), in path order: built as one
    table, not as a list of a million entries."""
    out = TableBuilder()
    k = 0
    for i in range(len(base)):
        path = base.path(i)
        while k < len(files) and files[k].path < path:
            out.add(files[k])
            k += 1
        if path in gone:
            continue
        if k < len(files) and files[k].path == path:
            raise ManifestError(f"manifest lists a path twice: '{show_path(path)}'")
        out.add(base.entry(i))
    for f in files[k:]:
        out.add(f)
    return out.table()
