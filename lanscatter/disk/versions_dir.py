"""The versions of a host's folder on disk, and the one atomic step that switches between them.

Layout (for the folder `/srv/build`):

    /srv/build                        -> build.lsc-versions/<name>   (a relative symlink)
    /srv/build.lsc-versions/index.json   which version is active, the kept ones, a rollback's hold
    /srv/build.lsc-versions/lock         flock(2): one process changes the versions at a time
    /srv/build.lsc-versions/<name>/      one directory per version (<name>: generation's first 16 hex)

Rules:
- The versions live beside the folder, in its parent directory: the same file system, so a new
  version hard-links the files it shares with the active one and takes new space only for what
  changed. A folder that is a mount point cannot be versioned (its parent is another file system).
- Switching is: write the index (atomically, by rename) naming the new active version, then
  replace the folder's symlink with rename(2). A reader resolving the folder sees the old version or the
  new one; one that keeps the folder open (cd into it, a directory fd) keeps its version.
- Crash safety (SIGKILL at any point): the index is the intent, the symlink follows it. `recover()`
  (run before anything else) finishes a switch or a migration the index names, and removes a
  temporary link left behind. A version directory enters the index only once complete, so the
  folder never points at a version being assembled. Nothing is fsynced on the switch (an fsync
  behind a busy disk's journal took 30-60 ms, the whole switch budget): a process crash loses
  nothing, and after a power loss the file system's rename ordering leaves the index and the link
  at the old or the new version, which `recover()` makes agree.
- A plain folder (a host synced before versions existed, or in per-file mode) becomes a version
  without copying: it is renamed into the versions folder (`adopted`) and the symlink made. Between
  those two renames the folder path is briefly missing, never mixed.
- Nothing here decides what a version holds: that is the store's (`store.StagedStore`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from lanscatter.core.errors import ConfigError
from lanscatter.core.version_plan import (
    LINK_SUFFIX,
    VERSIONS_SUFFIX,
    Hold,
    IndexError_,
    VersionIndex,
    VersionRecord,
    beside_name,
    index_from_dict,
    strays,
    to_drop,
)

log = logging.getLogger("lanscatter.versions")

ADOPTED = "adopted"
_MAX_INDEX_BYTES = 1 << 20


class VersionsDir:
    def __init__(self, folder: Path) -> None:
        folder = Path(os.path.realpath(os.path.abspath(folder).rsplit("/", 1)[0] or "/")) / folder.name
        if folder.is_symlink() and not self._ours(folder):
            folder = folder.resolve()          # the operator's own link: version what it points at
        self.folder = folder
        self.home = folder.with_name(beside_name(folder.name, VERSIONS_SUFFIX))
        self._index_path = self.home / "index.json"
        self._link_tmp = folder.with_name(beside_name("." + folder.name, LINK_SUFFIX))

    @staticmethod
    def _ours(folder: Path) -> bool:
        target = os.readlink(folder)
        return os.path.dirname(target) == beside_name(folder.name, VERSIONS_SUFFIX)

    def path(self, name: str) -> Path:
        return self.home / name

    # ---- lock and index ----------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the versions folder's lock (another process switching or rolling back waits)."""
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.home / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read_index(self) -> VersionIndex:
        try:
            with open(self._index_path, "rb") as fh:
                raw = fh.read(_MAX_INDEX_BYTES + 1)
        except FileNotFoundError:
            return VersionIndex()
        try:
            if len(raw) > _MAX_INDEX_BYTES:
                raise IndexError_("it is larger than 1 MiB")
            return index_from_dict(json.loads(raw))
        except (ValueError, IndexError_) as exc:
            raise ConfigError(f"the versions index {self._index_path} is damaged: {exc}",
                              "compare it with the version folders beside it and repair or remove it") from None

    def _write_index(self, index: VersionIndex) -> None:
        tmp = self._index_path.with_name("index.json.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(index.to_dict(), fh, indent=1)
        os.replace(tmp, self._index_path)

    # ---- what the folder shows ---------------------------------------------------------------
    def active_root(self) -> Path | None:
        """The directory the folder shows now: a version, the plain folder itself, or None."""
        try:
            if self.folder.is_symlink():
                return self.home / os.path.basename(os.readlink(self.folder))
        except OSError:
            return None
        return self.folder if self.folder.is_dir() else None

    def active_record(self) -> VersionRecord | None:
        index = self.read_index()
        return index.record(index.active) if index.active and self.folder.is_symlink() else None

    # ---- the steps ---------------------------------------------------------------------------
    def recover(self) -> None:
        """Finish what a killed process left half done: a migration, a switch, a temporary link."""
        if not self.home.is_dir():
            return
        with self.locked():
            index = self.read_index()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._link_tmp)
            if index.migrated is not None:
                self._finish_migration(index)
                return
            active = index.active
            if (active is not None and self.path(active).is_dir() and not self._plain()
                    and self.active_root() != self.path(active)):
                log.info("finishing the switch of %s to version %s", self.folder, active)
                self._point_at(active)

    def _plain(self) -> bool:
        return self.folder.is_dir() and not self.folder.is_symlink()

    def adopt_plain(self, now: float) -> None:
        """Turn a plain folder into a version (renamed, not copied) that the symlink then shows."""
        if not self._plain():
            return
        parent = os.stat(self.folder.parent)
        if os.stat(self.folder).st_dev != parent.st_dev:
            raise ConfigError(f"{self.folder} is a mount point: its versions would live on another file system",
                              "sync into a folder below the mount point, or use --activate per-file")
        with self.locked():
            index = self.read_index()
            name = ADOPTED
            n = 1
            while self.path(name).exists() or index.record(name) is not None:
                name, n = f"{ADOPTED}{n}", n + 1
            self._write_index(replace(index, migrated=name))
            self._finish_migration(replace(index, migrated=name), now)

    def _finish_migration(self, index: VersionIndex, now: float | None = None) -> None:
        name = index.migrated
        assert name is not None
        if self._plain() and not self.path(name).exists():
            os.rename(self.folder, self.path(name))
        if self.path(name).is_dir():
            if self.active_root() != self.path(name):
                self._point_at(name)
            log.info("%s is now versioned (its content became version %s)", self.folder, name)
            index = index.with_active(name, "", time.time() if now is None else now)
        self._write_index(replace(index, migrated=None))

    def activate(self, name: str, generation: str, now: float, label: str = "", published_ms: int = 0,
                 *, lift_tree_hold: bool = False) -> bool:
        """Make version `name` (complete, holding `generation`, labelled `label` by the origin,
        which published it at `published_ms`) the active one. False, and nothing changed, when a
        rollback holds this host off that generation, unless the tree's rollback made the hold and
        `lift_tree_hold` (the tree commits that generation again)."""
        with self.locked():
            index = self.read_index()
            hold = index.hold
            if hold is not None and generation in hold.skip and not (lift_tree_hold and hold.tree):
                return False
            if index.active == name and self.active_root() == self.path(name):
                return True
            self._write_index(replace(index.with_active(name, generation, now, label, published_ms), hold=None))
            self._point_at(name)
        return True

    def rollback(self, to: str | None, now: float, *, tree: bool = False) -> VersionRecord:
        """Switch to a kept version (`to`: name or generation; default the previous one) and hold
        there: the generation rolled back from is not activated again by itself (`tree`: the tree's
        rollback, whose next commit lifts the hold)."""
        with self.locked():
            index = self.read_index()
            target = index.previous() if to is None else index.find(to)
            if target is None:
                kept = ", ".join(f"{v.name} ({v.generation[:12] or 'adopted'})" for v in index.versions) or "none"
                raise ConfigError(f"no kept version {to!r} of {self.folder}" if to else
                                  f"{self.folder} has no earlier version to roll back to",
                                  f"versions kept here: {kept}")
            if not self.path(target.name).is_dir():
                raise ConfigError(f"version {target.name} of {self.folder} is listed but missing on disk",
                                  "pick another kept version")
            current = index.record(index.active) if index.active else None
            skip = tuple(dict.fromkeys(
                [*(index.hold.skip if index.hold else ()), *([current.generation] if current else [])]))
            index = index.with_active(target.name, target.generation, now)
            self._write_index(replace(index, hold=replace_hold(skip, target.generation, tree)))
            self._point_at(target.name)
            return target

    def prune(self, keep: int, exclude: tuple[str, ...] = ()) -> list[str]:
        """Delete versions beyond the `keep` most recent, and strays (never the active version nor
        `exclude`). Slow for big versions: run it in a worker thread."""
        with self.locked():
            index = self.read_index()
            drop = to_drop(index, keep, exclude)
            if drop:
                self._write_index(index.without(drop))
            drop += strays(os.listdir(self.home), index, exclude)
        for name in drop:
            _rmtree(self.path(name))
        return drop

    def _point_at(self, name: str) -> None:
        """The atomic step: a new symlink renamed over the folder's path."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._link_tmp)
        os.symlink(os.path.join(self.home.name, name), self._link_tmp)
        try:
            os.rename(self._link_tmp, self.folder)
        except OSError as exc:
            os.unlink(self._link_tmp)
            if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise ConfigError(f"{self.folder} became a plain folder again while it was versioned",
                                  "move it away; the versions beside it are intact") from None
            raise


def replace_hold(skip: tuple[str, ...], target: str, tree: bool = False) -> Hold | None:
    """The hold after a rollback to `target`: every generation rolled back from, minus the target."""
    left = tuple(g for g in skip if g and g != target)
    return Hold(left, tree) if left else None


def _rmtree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=False)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
