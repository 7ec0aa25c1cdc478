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
from lanscatter.core.manifest import (
    Manifest,
    check_counts,
    check_relpath,
    checked_manifest,
    decode_chunking,
    decode_files,
    show_path,
)

DELTA_FORMAT = 1
_WORTH = 0.5       # a delta of more than this share of the new manifest's files is not sent


def make_delta(base: Manifest, new: Manifest) -> dict[str, Any] | None:
    """The changes from `base` to `new`, or None when a whole manifest is about as cheap."""
    if base.chunking != new.chunking:
        return None
    old_files = {f.path: f for f in base.files}
    changed = [f for f in new.files if old_files.get(f.path) != f]
    if len(changed) > _WORTH * max(1, len(new.files)):
        return None
    new_paths = {f.path for f in new.files}
    gone = [f.path for f in base.files if f.path not in new_paths] + [f.path for f in changed if f.path in old_files]
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
    kept = [f for f in base.files if f.path not in gone]
    dirs = [d for d in base.dirs if d not in dropped_dirs] + added_dirs
    # A changed file must be named as removed: an entry for a path still held is a second one,
    # which the whole-manifest check refuses.
    return checked_manifest(chunking, kept + files, dirs, claimed)
