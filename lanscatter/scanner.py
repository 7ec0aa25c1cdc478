"""Scan a folder into a manifest: walk, chunk, hash on every core, reuse remembered hashes.

Rules:
- Symlinks and special files are skipped (never followed: nothing outside the folder is read), as
  are the part files a peer or relay writes beside its targets (`PART_SUFFIX`).
- A name the protocol cannot carry (not UTF-8, a backslash, longer than `check_relpath` allows) is
  skipped with what is below it, and returned in `ScanStats.refused` (escaped, with the reason)
  for the caller to report; the rest of the folder is scanned as usual.
- Only files whose (size, mtime, inode, ctime) changed since the hash cache saw them are hashed.
- A file that changes while it is hashed is hashed again (a few times) and otherwise left out of
  this scan, so a torn file is never described.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lanscatter.hash_cache import HashCache
from lanscatter.hashing import PIECE, hash_file_range
from lanscatter.manifest import (
    FileEntry,
    Manifest,
    build_manifest,
    chunk_count,
    chunk_span,
    relpath_problem,
    show_path,
)

log = logging.getLogger("lanscatter.scanner")

PART_SUFFIX = ".lsc-part"
_RETRIES = 3

ProgressFn = Callable[[int, int], None]     # (hashed bytes so far, bytes to hash in total)


@dataclass(frozen=True, slots=True)
class RefusedName:
    """A name in the folder the protocol cannot carry: `shown` is escaped and shortened."""

    shown: str
    reason: str


@dataclass(frozen=True, slots=True)
class ScanStats:
    files: int
    hashed_bytes: int
    reused_bytes: int
    seconds: float
    skipped: tuple[str, ...]
    refused: tuple[RefusedName, ...] = ()


@dataclass(frozen=True, slots=True)
class _Found:
    rel: str
    st: os.stat_result


@dataclass(slots=True)
class _Walk:
    files: list[_Found]
    dirs: list[str]
    skipped: list[str]
    refused: list[RefusedName]


def _walk(root: Path) -> _Walk:
    out = _Walk([], [], [], [])
    stack = [("", str(root))]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            it = os.scandir(abs_dir)
        except OSError as exc:
            if not rel_dir or not _passing(exc, rel_dir, out):
                raise
            continue
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
                    stack.append((rel, entry.path))
                elif stat.S_ISREG(st.st_mode):
                    out.files.append(_Found(rel, st))
                else:
                    out.skipped.append(rel)
    return out


def _passing(exc: OSError, rel: str, out: _Walk) -> bool:
    """Whether the scan goes on past an entry it could not read: one removed while we walked (the
    next scan sees the change) or one whose absolute path the OS cannot take (refused, like any
    name that cannot be carried). Anything else (unreadable) fails the scan: a manifest without
    that part of the folder would make every peer delete it."""
    if exc.errno == errno.ENAMETOOLONG:
        out.refused.append(RefusedName(show_path(rel), "path too long below this folder"))
        return True
    return isinstance(exc, (FileNotFoundError, NotADirectoryError))


class _Hasher:
    """Hashes chunks on a thread pool, one reusable buffer per thread."""

    def __init__(self, root: Path, workers: int, progress: ProgressFn | None, total: int) -> None:
        self.root = root
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lanscatter-hash")
        self.local = threading.local()
        self.progress = progress
        self.total = total
        self.done = 0
        self.lock = threading.Lock()
        self._open: dict[int, int] = {}

    def _chunk(self, fd: int, offset: int, length: int) -> str:
        buf = getattr(self.local, "buf", None)
        if buf is None:
            buf = self.local.buf = bytearray(PIECE * 4)
        digest = hash_file_range(fd, offset, length, buf)
        with self.lock:
            self.done += length
            if self.progress:
                self.progress(self.done, self.total)
        return digest

    def submit_file(self, rel: str, size: int, chunk_size: int) -> list[Future[str]]:
        """Queue every chunk of a file; the caller collects the futures in order."""
        fd = os.open(self.root / rel, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        futures = [
            self.pool.submit(self._chunk, fd, *chunk_span(size, chunk_size, k))
            for k in range(chunk_count(size, chunk_size))
        ]
        self._open[id(futures)] = fd
        return futures

    def collect(self, futures: list[Future[str]]) -> tuple[str, ...]:
        try:
            return tuple(f.result() for f in futures)
        finally:
            os.close(self._open.pop(id(futures)))

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def scan_folder(
    root: Path,
    chunk_size: int,
    cache: HashCache,
    *,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> tuple[Manifest, ScanStats]:
    """Scan `root` (blocking; run it in a thread from asyncio). Raises OSError if root is unreadable."""
    started = time.monotonic()
    walk = _walk(root)
    found, dirs, skipped = walk.files, walk.dirs, walk.skipped
    todo = [f for f in found if cache.get(f.rel, f.st, chunk_size) is None]
    total = sum(f.st.st_size for f in todo)
    hasher = _Hasher(root, workers or os.cpu_count() or 1, progress, total)
    entries: list[FileEntry] = []
    hashed = reused = 0
    # Chunks of several files are queued at once so every core stays busy even on small files;
    # the queue is bounded in bytes so a huge folder does not pile up futures.
    limit = 4 * chunk_size * (workers or os.cpu_count() or 1)
    queue: deque[tuple[_Found, list[Future[str]]]] = deque()
    queued = 0
    try:
        for f in found:
            chunks = cache.get(f.rel, f.st, chunk_size)
            if chunks is not None:
                reused += f.st.st_size
                entries.append(_entry(f.rel, f.st, chunks))
                continue
            try:
                queue.append((f, hasher.submit_file(f.rel, f.st.st_size, chunk_size)))
            except OSError as exc:
                log.warning("skipping %s: %s", f.rel, exc)
                skipped.append(f.rel)
                continue
            queued += f.st.st_size
            while queued > limit and queue:
                done = queue.popleft()
                queued -= done[0].st.st_size
                hashed += _finish(hasher, root, done, cache, chunk_size, entries, skipped)
        while queue:
            hashed += _finish(hasher, root, queue.popleft(), cache, chunk_size, entries, skipped)
    finally:
        hasher.close()
    cache.retain({e.path for e in entries})
    manifest = build_manifest(chunk_size, entries, dirs)
    stats = ScanStats(len(entries), hashed, reused, time.monotonic() - started, tuple(skipped),
                      tuple(walk.refused))
    return manifest, stats


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ino, a.st_ctime_ns) == (b.st_size, b.st_mtime_ns, b.st_ino, b.st_ctime_ns)


def _entry(rel: str, st: os.stat_result, chunks: tuple[str, ...]) -> FileEntry:
    return FileEntry(rel, st.st_size, st.st_mtime_ns, bool(st.st_mode & 0o111), chunks)


def _finish(hasher: _Hasher, root: Path, item: tuple[_Found, list[Future[str]]], cache: HashCache,
            chunk_size: int, entries: list[FileEntry], skipped: list[str]) -> int:
    """Collect a file's hashes; re-hash it if it changed meanwhile. Returns bytes hashed."""
    f, futures = item
    st = f.st
    try:
        for _ in range(_RETRIES):
            chunks = hasher.collect(futures)
            after = os.stat(root / f.rel, follow_symlinks=False)
            if _same(after, st):
                cache.put(f.rel, st, chunk_size, chunks)
                entries.append(_entry(f.rel, st, chunks))
                return st.st_size
            st = after
            futures = hasher.submit_file(f.rel, st.st_size, chunk_size)
        hasher.collect(futures)
        log.warning("skipping %s this round: it keeps changing while being hashed", f.rel)
    except OSError as exc:
        log.warning("skipping %s: %s", f.rel, exc)
    skipped.append(f.rel)
    return 0
