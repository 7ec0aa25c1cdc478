"""A scan's walk of a folder: its regular files in path order, with what `stat` said of each.

Rules:
- Symlinks and special files are skipped (never followed), as are the part files a peer or relay
  writes beside its targets (`PART_SUFFIX`); a name the protocol cannot carry is refused with what
  is below it (`RefusedName`, escaped, with the reason).
- What the walk found is held as columns in blocks of `BLOCK` files (about 70 bytes a file, no
  object per file); a scan `drain`s them, each block freed once its files are taken, so the walk's
  columns go while the scan's table fills and the two are never both whole. A block is large
  enough that its columns are mapped pages of their own (past the heap's mmap threshold,
  `heap.py`), given back to the system when freed.
"""

from __future__ import annotations

import errno
import os
import stat
from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lanscatter.core.manifest import relpath_problem, show_path
from lanscatter.disk.hash_cache import FileStat

PART_SUFFIX = ".lsc-part"
BLOCK = 16384


@dataclass(frozen=True, slots=True)
class RefusedName:
    """A name in the folder the protocol cannot carry: `shown` is escaped and shortened."""

    shown: str
    reason: str


@dataclass(frozen=True, slots=True)
class Found:
    rel: str
    st: FileStat


class _Block:
    """Up to `BLOCK` found files as columns (a path's text is made when it is read)."""

    __slots__ = ("ends", "inodes", "rels", "stats")

    def __init__(self) -> None:
        self.rels = bytearray()          # every path's UTF-8, one after another
        self.ends = array("q")
        self.stats = array("q")          # size, mtime_ns, ctime_ns, mode of each file
        self.inodes = array("Q")

    def add(self, rel: str, st: FileStat) -> None:
        self.rels += rel.encode("utf-8", "surrogateescape")
        self.ends.append(len(self.rels))
        self.stats.extend((st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode))
        self.inodes.append(st.st_ino)

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, i: int) -> Found:
        size, mtime_ns, ctime_ns, mode = self.stats[4 * i:4 * i + 4]
        rel = self.rels[(self.ends[i - 1] if i else 0):self.ends[i]].decode("utf-8", "surrogateescape")
        return Found(rel, FileStat(size, mtime_ns, self.inodes[i], ctime_ns, mode))


class FoundFiles:
    """The regular files a walk found, in path order (see the module header)."""

    def __init__(self) -> None:
        self._blocks: deque[_Block] = deque()
        self._count = 0

    def add(self, rel: str, st: FileStat) -> None:
        if not self._blocks or len(self._blocks[-1]) >= BLOCK:
            self._blocks.append(_Block())
        self._blocks[-1].add(rel, st)
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Found]:
        """Every file, the blocks kept."""
        return (block[i] for block in tuple(self._blocks) for i in range(len(block)))

    def sizes(self) -> Iterator[int]:
        """Every file's size (no `Found` made)."""
        return (block.stats[k] for block in tuple(self._blocks) for k in range(0, len(block.stats), 4))

    def drain(self) -> Iterator[Found]:
        """Every file, each block dropped once its files are taken: afterwards none are held."""
        while self._blocks:
            block = self._blocks.popleft()
            self._count -= len(block)
            for i in range(len(block)):
                yield block[i]
            del block


@dataclass(slots=True)
class Walk:
    files: FoundFiles
    dirs: list[str]
    skipped: list[str]
    refused: list[RefusedName]


def walk(root: Path) -> Walk:
    """The folder's files in path order (the manifest's): a folder's entries are visited sorted
    by name, a subfolder's as `name/` (so `a-b` comes before the files in `a/`, as their paths
    sort), depth first; nothing is sorted afterwards."""
    out = Walk(FoundFiles(), [], [], [])
    # (rel, absolute path, stat of a file / None for a folder still to be listed)
    stack: list[tuple[str, str, FileStat | None]] = [("", str(root), None)]
    while stack:
        rel_dir, abs_dir, found = stack.pop()
        if found is not None:
            out.files.add(rel_dir, found)
            continue
        try:
            it = os.scandir(abs_dir)
        except OSError as exc:
            if not rel_dir or not _passing(exc, rel_dir, out):
                raise
            continue
        children: list[tuple[str, str, str, FileStat | None]] = []
        with it:
            for entry in it:
                if entry.name.endswith(PART_SUFFIX):
                    continue
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if (problem := relpath_problem(rel)) is not None:
                    out.refused.append(RefusedName(show_path(rel), problem))
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    if not _passing(exc, rel, out):
                        raise
                    continue
                if stat.S_ISDIR(st.st_mode):
                    out.dirs.append(rel)
                    children.append((entry.name + "/", rel, entry.path, None))
                elif stat.S_ISREG(st.st_mode):
                    children.append((entry.name, rel, entry.path, FileStat.of(st)))
                else:
                    out.skipped.append(rel)
        children.sort(key=lambda c: c[0])
        stack.extend((rel, path, st) for _, rel, path, st in reversed(children))
    return out


def folder_bytes(root: Path) -> int:
    """Bytes of the files a scan of `root` would describe (their sizes alone: nothing is read)."""
    return sum(walk(root).files.sizes())


def _passing(exc: OSError, rel: str, out: Walk) -> bool:
    """Whether the scan goes on past an entry it could not read: one removed while we walked (the
    next scan sees the change) or one whose absolute path the OS cannot take (refused, like any
    name that cannot be carried). Anything else (unreadable) fails the scan: a manifest without
    that part of the folder would make every peer delete it."""
    if exc.errno == errno.ENAMETOOLONG:
        out.refused.append(RefusedName(show_path(rel), "path too long below this folder"))
        return True
    return isinstance(exc, (FileNotFoundError, NotADirectoryError))
