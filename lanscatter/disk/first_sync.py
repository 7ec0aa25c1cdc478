"""A folder this node has not synced before: what a sync would do to it, and the marker that says
it did.

Rules:
- A peer or relay deletes nothing from a folder it has not synced before unless told (`--adopt`):
  a folder full of unrelated files must not be wiped by a mistyped path. "Synced before" is the
  marker `SYNCED_MARKER` in the node's state folder, naming the folder, written after its first
  complete sync.
- The preview reads the folder only (names, and with hashes the content, through the hash cache);
  it never writes into it. What counts as deleted is what the store's reconcile removes: every
  file or symlink the version does not list, except part files (`.lsc-part`: a node's own
  unfinished downloads, never the operator's files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lanscatter.core.file_table import pair_paths
from lanscatter.core.manifest import Manifest, show_path
from lanscatter.disk.atomic_file import write_text_atomic
from lanscatter.disk.folder_walk import PART_SUFFIX
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.scanner import scan_folder

SYNCED_MARKER = "synced-before"
SHOWN_PATHS = 10             # paths named in a refusal; the rest as a count


@dataclass(frozen=True, slots=True)
class SyncPreview:
    download: tuple[str, ...]        # listed files the folder lacks
    overwrite: tuple[str, ...]       # listed files present with other content (empty unless hashed)
    delete: tuple[str, ...]          # present files and symlinks the version does not list

    def listing(self) -> str:
        """One line per path, `download|overwrite|delete PATH`, then a summary line."""
        lines = [f"{what} {show_path(path)}" for what, paths in
                 (("download", self.download), ("overwrite", self.overwrite), ("delete", self.delete))
                 for path in paths]
        lines.append(f"{len(self.download)} to download, {len(self.overwrite)} to overwrite, "
                     f"{len(self.delete)} to delete")
        return "\n".join(lines)


def preview_sync(root: Path, manifest: Manifest, cache: HashCache | None, *, downloads: bool = True) -> SyncPreview:
    """What reconciling `root` with `manifest` would do. Without `cache` nothing is hashed, and a
    present file is not told apart from an overwritten one; without `downloads` the files to
    download are not listed (the check of a first sync needs only what it would delete, and a
    version of a million files would list a million paths). Blocking: run in a worker thread."""
    files = manifest.files
    present = _present_files(root)
    overwrite: list[str] = []
    if cache is not None:
        local, _ = scan_folder(root, manifest.chunking, cache)
        for path, i, j in pair_paths(local.files, files):
            if i is not None and j is not None:
                have, want = local.files.entry(i), files.entry(j)
                if (have.size, have.chunks) != (want.size, want.chunks):
                    overwrite.append(path)
    delete = sorted(p for p, link in present.items()
                    if (link or files.position(p) is None) and not p.endswith(PART_SUFFIX))
    download = sorted(p for p in map(files.path, range(len(files))) if p not in present) if downloads else []
    return SyncPreview(tuple(download), tuple(sorted(overwrite)), tuple(delete))


def _present_files(root: Path) -> dict[str, bool]:
    """Every file and symlink below `root` (relative POSIX path -> is a symlink)."""
    found: dict[str, bool] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in filenames + links:
            found[f"{rel_dir}/{name}" if rel_dir else name] = os.path.islink(os.path.join(dirpath, name))
    return found


def refusal_text(folder: Path, preview: SyncPreview) -> str:
    shown = ", ".join(f"'{show_path(p, 120)}'" for p in preview.delete[:SHOWN_PATHS])
    more = f" and {len(preview.delete) - SHOWN_PATHS} more" if len(preview.delete) > SHOWN_PATHS else ""
    n = len(preview.delete)
    return (f"{folder} was never synced by this node, and syncing it would delete {n} "
            f"{'file' if n == 1 else 'files'} that the version lacks: {shown}{more}")


ADOPT_HINT = ("check that DIR is the right folder; `--dry-run` lists everything a sync would do; start "
              "with --adopt (or `adopt: true` in the site tree) to make it a mirror, deleting those files")


def synced_before(state_dir: Path, root: Path) -> bool:
    try:
        return (state_dir / SYNCED_MARKER).read_text(encoding="utf-8").strip() == str(root)
    except (OSError, UnicodeDecodeError):
        return False


def mark_synced(state_dir: Path, root: Path) -> None:
    write_text_atomic(state_dir / SYNCED_MARKER, f"{root}\n")
