"""Host activation: a new version is assembled beside the active one and switched to in one step.

`StagedStore` is a `MirrorStore` whose root is a version directory (`versions_dir.py`):
- A generation the active version already holds is mirrored in place (a resumed or repaired
  version: same content, nothing mixed).
- Any other generation is staged in its own version directory. Files the active version holds
  with the same content and metadata are hard-linked (`version_plan.link_plan`), chunks of other
  active files are copied locally, the rest is fetched; the active version is only read.
- When the staged version is complete (its last chunk verified, or nothing was missing), the
  folder's symlink is switched to it (`VersionsDir.activate`), unless a rollback holds this host
  off that generation, or (tree activation) the origin has not committed it yet (`may_switch`;
  `switch` shows it once committed). Older versions beyond `keep` are deleted afterwards (`prune`, slow: the
  caller runs it in a worker thread).
- Chunks are served from wherever they are verified, staged or active (`locate`).
- Before staging, the free space is checked: a shortfall is a `NoSpaceError` naming the folder
  and the bytes missing; the active version is untouched and staging resumes on the next try.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from collections.abc import Callable
from itertools import chain
from pathlib import Path

from lanscatter.core.errors import ConfigError, NoSpaceError
from lanscatter.core.file_table import FileTable, pair_paths
from lanscatter.core.manifest import Manifest, build_manifest
from lanscatter.core.sizes import format_bytes
from lanscatter.core.version_plan import COMMIT_MARK_FILE, LinkPlan, VersionRecord, link_plan, version_name
from lanscatter.disk.folder_walk import PART_SUFFIX
from lanscatter.disk.scanner import scan_folder
from lanscatter.disk.store import MirrorStore, Places, ReconcileStats, _remove
from lanscatter.disk.versions_dir import VersionsDir

log = logging.getLogger("lanscatter.disk.store")

DEFAULT_KEEP = 2
# A link that cannot be made leaves the file to be copied or fetched instead.
_NO_LINK = frozenset({errno.EMLINK, errno.EXDEV, errno.EPERM})


class StagedStore(MirrorStore):
    def __init__(self, folder: Path, state_dir: Path, keep: int = DEFAULT_KEEP, *,
                 may_switch: Callable[[str], bool] = lambda generation: True) -> None:
        """`may_switch` says whether a generation staged whole may be shown now (tree activation:
        once the origin committed it)."""
        if keep < 1:
            raise ConfigError(f"keep {keep}: a host keeps at least the active version", "give --keep 1 or more")
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"sync folder {folder} is a file, not a folder",
                              "give a folder path (it is created if missing)")
        self.versions = VersionsDir(folder)
        self.versions.recover()
        self.keep = keep
        self.prune_due = False
        self.last_switch_s = 0.0         # the last switch, from complete to active
        self.label = ""                  # the origin's label of the generation being reconciled ...
        self.published_ms = 0            # ... and its publish time
        self._may_switch = may_switch
        self._filled: bytes | None = None    # `_root_known`: the files linked into a new staging folder
        super().__init__(self.versions.active_root() or self.versions.home, state_dir)
        self.root = self.versions.active_root() or self.versions.home

    @property
    def folder(self) -> Path:
        """The folder as the operator named it: the symlink to the active version."""
        return self.versions.folder

    @property
    def commit_mark(self) -> Path:
        """Where the newest tree commit followed is kept beside the versions (OriginTrust)."""
        return self.versions.home / COMMIT_MARK_FILE

    def newest_kept(self) -> tuple[int, str] | None:
        """(publish time in ms, generation) of the newest version kept here that the origin
        published (a plain folder adopted as a version has no publish time)."""
        kept = [(v.published_ms, v.generation) for v in self.versions.read_index().versions if v.published_ms > 0]
        return max(kept) if kept else None

    # ---- staging -----------------------------------------------------------------------------
    def _prepare_root(self, manifest: Manifest) -> list[Places]:
        name = version_name(manifest.generation)
        index = self.versions.read_index()
        known = index.record(name)
        if known is not None and known.generation not in ("", manifest.generation):
            raise ConfigError(f"version folder {name} of {self.versions.folder} holds another generation",
                              "remove that old version folder")
        active = self.versions.active_root()
        staging = self.versions.path(name)
        self._filled = None
        if active == staging:
            self.root = staging            # resumed or repaired in place: the same content
            return []
        self.versions.adopt_plain(time.time())
        active = self.versions.active_root()
        new = not staging.exists()         # (one there already: a staging resumed, scanned)
        staging.mkdir(parents=True, exist_ok=True)
        self.root = staging
        if active is None:
            return []
        # The active files as the new version lists them are only marked (`same`): `local` holds
        # the others (not a second table of a million files beside the manifest).
        local, scanned = scan_folder(active, manifest.chunking, self.cache, expected=manifest.files)
        linked = self._link_unchanged(active, local, manifest, scanned.same)
        self.cache.compact_if_due()         # (a line a link: as many again as the scan's)
        self._check_space(manifest, linked)
        if new:
            # It holds the links just made and nothing else, each a file with the content and
            # metadata the manifest lists (`same_entry`) and its hashes recorded at its new ctime:
            # the reconcile's scan of it would find just that (100,000 files: 2-3 s).
            filled = bytearray(linked.same)
            for j in linked.moved:
                filled[j] = 1
            self._filled = bytes(filled)
        return [Places(active, _unlinked(local, linked, manifest, scanned.same))]

    def _root_known(self) -> bytes | None:
        filled, self._filled = self._filled, None
        return filled

    def _link_unchanged(self, active: Path, local: Manifest, manifest: Manifest, same: bytes) -> LinkPlan:
        """Hard-link into the staging folder the active files the new version holds unchanged
        (those of `local`, and those marked in `same`, at their paths); returns the plan of the
        links made."""
        plan = link_plan(local.files, manifest, same)
        files = manifest.files
        for j in range(len(files)):       # (no dict of a million entries: one at a time)
            if (old_rel := plan.source(files, j)) is None:
                continue
            new_rel = files.path(j)
            src = active / old_rel
            dst = self._abs(new_rel, make_parents=True)
            try:
                have = os.lstat(dst)
            except FileNotFoundError:
                have = None
            try:
                if have is None or have.st_ino != os.lstat(src).st_ino:
                    if have is not None:
                        _remove(dst)
                    os.link(src, dst, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise
                log.debug("cannot link %s: %s", new_rel, exc.strerror)
                plan.drop(j)
                continue
            # The link changed the inode's ctime: the cache learns it, so nothing is hashed again.
            entry = files.entry(j)
            self.cache.put(new_rel, os.lstat(dst), manifest.chunking, entry.chunks, entry.sizes)
        return plan

    def _check_space(self, manifest: Manifest, linked: LinkPlan) -> None:
        """The bytes the new version's other files still need must fit, or nothing starts."""
        need = 0
        files = manifest.files
        for j in range(len(files)):
            if linked.linked(j):
                continue
            held = 0
            try:
                target = self._abs(files.path(j))
                for p in (target, target.with_name(target.name + PART_SUFFIX)):
                    held = max(held, _allocated(p))
            except FileNotFoundError:      # a file where the version needs a folder: nothing held
                pass
            need += max(files.columns.sizes[j] - held, 0)
        free = shutil.disk_usage(self.versions.home).free
        if need > free:
            raise NoSpaceError(
                f"not enough space to stage generation {manifest.generation[:12]} beside {self.versions.folder}: "
                f"{format_bytes(need - free)} ({need - free} bytes) missing",
                f"free space on the disk of {self.versions.home} (staging resumes by itself); "
                "the active version is left as it is")

    # ---- switching ---------------------------------------------------------------------------
    def _on_complete(self) -> None:
        m = self.manifest
        if m is None or not self.staging():
            return
        if not self._may_switch(m.generation):
            log.info("generation %s is staged whole beside %s: waiting for the tree's commit",
                     m.generation[:12], self.versions.folder)
            return
        self.switch()

    def staging(self) -> bool:
        """Whether the version being reconciled is staged beside the active one (not shown yet)."""
        return self.root.parent == self.versions.home and self.root != self.versions.active_root()

    def switch(self, *, lift_tree_hold: bool = False) -> bool:
        """Show the staged version (complete) now; False when there is none to show, or a rollback
        holds this host off it (a hold the tree's rollback made is lifted with `lift_tree_hold`)."""
        m = self.manifest
        if m is None or not self.complete() or not self.staging():
            return False
        started = time.perf_counter()
        switched = self.versions.activate(self.root.name, m.generation, time.time(), self.label,
                                          self.published_ms, lift_tree_hold=lift_tree_hold)
        self.last_switch_s = time.perf_counter() - started
        if switched:
            self.prune_due = True
            log.info("version %s (generation %s) active in %s", self.root.name, m.generation[:12],
                     self.versions.folder)
        else:
            log.info("generation %s is complete but not activated: a rollback holds %s off it",
                     m.generation[:12], self.versions.folder)
        return switched

    def rollback_to(self, generation: str) -> VersionRecord:
        """Show the kept version of `generation` and hold there (a tree-wide rollback)."""
        record = self.versions.rollback(generation, time.time(), tree=True)
        log.info("rolled back %s to version %s (generation %s)", self.versions.folder, record.name,
                 record.generation[:12])
        return record

    def kept(self) -> frozenset[str]:
        """Generations of the versions kept here."""
        return frozenset(v.generation for v in self.versions.read_index().versions if v.generation)

    def prune(self) -> list[str]:
        """Delete the versions beyond `keep` (blocking: a worker thread)."""
        self.prune_due = False
        dropped = self.versions.prune(self.keep, exclude=(self.root.name,))
        if dropped:
            log.info("dropped old versions of %s: %s", self.versions.folder, ", ".join(dropped))
        return dropped

    def reconcile(self, manifest: Manifest) -> ReconcileStats:
        stats = super().reconcile(manifest)
        if self.prune_due:
            self.prune()
        return stats


def _unlinked(local: Manifest, linked: LinkPlan, manifest: Manifest, same: bytes) -> Manifest:
    """The active version's files not linked into the staged one: the linked ones are read in the
    staging folder as well, so only these are kept as local sources while the version is
    reconciled (not a second table of every file). Those the scan marked `same` and that could
    not be linked are the new version's entries, at the same path in the active folder."""
    files = manifest.files
    used = bytearray(len(local.files))
    for _, i, j in pair_paths(local.files, files):
        if i is not None and j is not None and linked.same[j]:
            used[i] = 1
    for rel in linked.moved.values():
        if (i := local.files.position(rel)) is not None:
            used[i] = 1
    lost = [j for j in range(len(same)) if same[j] and not linked.linked(j)]
    if used.find(1) < 0 and not lost:
        return local
    rest = FileTable.of_entries(chain((local.files.entry(i) for i in range(len(local.files)) if not used[i]),
                                      map(files.entry, lost)))
    return build_manifest(local.chunk_size, rest, (), local.chunking_kind)


def _allocated(path: Path) -> int:
    try:
        return os.lstat(path).st_blocks * 512
    except (FileNotFoundError, NotADirectoryError):
        return 0
