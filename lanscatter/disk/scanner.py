"""Scan a folder into a manifest: walk, chunk, hash on every core, reuse remembered hashes.

Rules:
- The walk (`folder_walk.py`) skips symlinks and special files (never followed: nothing outside
  the folder is read) and the part files a peer or relay writes beside its targets (`PART_SUFFIX`).
- A name the protocol cannot carry (not UTF-8, a backslash, longer than `check_relpath` allows) is
  skipped with what is below it, and returned in `ScanStats.refused` (escaped, with the reason)
  for the caller to report; the rest of the folder is scanned as usual.
- The walk's columns are taken block by block as the table fills (not both held whole).
- Only files whose (size, mtime, inode, ctime) or chunking changed since the hash cache saw them
  are hashed.
- Fixed chunks are hashed each as its own task (one file spreads over every core). A file with
  content-defined chunks is cut in segments (`segment_size`), one task each, so one big file too
  spreads over every core: a task reads its segment once, in windows, finds the boundaries and
  hashes each piece as it is cut; the tasks' chunks are put together into exactly the chunks of
  one sequential cut (`chunking.stitch`), cutting on where a segment's own first cuts differ.
- `chunk_size` AUTO is resolved from the walk's total bytes (`auto_chunk_size`), keeping the size
  the previous version used while it still fits.
- A file that changes while it is hashed is hashed again (a few times) and otherwise left out of
  this scan, so a torn file is never described.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from pathlib import Path
from typing import Any, TypeVar

import blake3

from lanscatter.core.chunking import (
    AUTO,
    FIXED,
    CdcCutter,
    Chunking,
    Span,
    auto_chunk_size,
    fixed_sizes,
    stitch,
)
from lanscatter.core.file_table import FileTable, TableBuilder, holds
from lanscatter.core.manifest import FileEntry, Manifest, build_manifest
from lanscatter.disk.folder_walk import Found, RefusedName, walk
from lanscatter.disk.hash_cache import FileStat, HashCache
from lanscatter.disk.hashing import PIECE, hash_file_range

log = logging.getLogger("lanscatter.disk.scanner")
_Hashes = tuple[tuple[str, ...], tuple[int, ...]]     # a file's chunk hashes and lengths

_RETRIES = 3
_MAX_QUEUED_FILES = 1024
_INLINE_MAX = 64 << 10      # bytes: a file this small is hashed by the scanning thread itself
_WINDOW_MIN = 8 << 20       # bytes read at once for content-defined chunking (more if it needs)
_SEGMENT_MIN = 64 << 20     # a content-defined file is cut in segments of this size at least ...
_SEGMENT_CHUNKS = 64        # ... and of this many target sizes: a segment's join costs a chunk or two

T = TypeVar("T")
ProgressFn = Callable[[int, int], None]     # (hashed bytes so far, bytes to hash in total)


@dataclass(frozen=True, slots=True)
class ScanStats:
    files: int
    hashed_bytes: int
    reused_bytes: int
    seconds: float
    skipped: tuple[str, ...]
    refused: tuple[RefusedName, ...] = ()
    # Per file of the `expected` table: 1 where the folder's file is that entry (left out of the
    # manifest returned).
    same: bytes = b""


@dataclass(slots=True)
class _Job:
    """One file queued for hashing: per-chunk futures (fixed) or one per segment (content-defined)."""

    fd: int
    size: int
    sizes: tuple[int, ...] = ()
    chunk_futures: list[Future[str]] = field(default_factory=list)
    bounds: list[int] = field(default_factory=list)      # content-defined: where segments start
    segment_futures: list[Future[list[Span]]] = field(default_factory=list)


def segment_size(chunking: Chunking) -> int:
    """Bytes of a content-defined file cut by one task."""
    return max(_SEGMENT_MIN, _SEGMENT_CHUNKS * chunking.size)


class _Hasher:
    """Hashes files on a thread pool, one reusable buffer per thread."""

    def __init__(self, root: Path, chunking: Chunking, workers: int, progress: ProgressFn | None,
                 total: int, segment: int) -> None:
        self.base = os.path.join(root, "")      # each file's path is this + its relative path
                                                # (a Path joined per file costs more)
        self.chunking = chunking
        self.segment = segment
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lanscatter-hash")
        self.local = threading.local()
        self.progress = progress
        self.total = total
        self.done = 0
        self.lock = threading.Lock()

    def _advance(self, n: int) -> None:
        with self.lock:
            self.done += n
            if self.progress:
                self.progress(self.done, self.total)

    def _chunk(self, fd: int, offset: int, length: int) -> str:
        buf = getattr(self.local, "buf", None)
        if buf is None:
            buf = self.local.buf = bytearray(PIECE * 4)
        digest = hash_file_range(fd, offset, length, buf)
        self._advance(length)
        return digest

    def _cdc_run(self, fd: int, size: int, start: int, until: int, sync: Collection[int],
                 counted: bool) -> list[Span]:
        """The chunks a cutter started at `start` finds, up to and including the first that ends
        in `sync` or at or past `until` (chunking.RunFn), hashed as they are cut. `counted`: the
        bytes of [start, until) go to the progress (a segment's own run, not a join's)."""
        cutter = CdcCutter(self.chunking.size)
        # The chunk that crosses `until` ends within a maximum of it and is certain once a base
        # maximum lies beyond it: nothing past that is read.
        stop = min(size, until + cutter.max_size + cutter.base_max)
        full = max(_WINDOW_MIN, 2 * cutter.window_min)
        buf: bytearray | None = None
        if stop == size and stop - start < full:
            buf = bytearray(stop - start)     # the rest of the file fits: no window of megabytes each
        else:
            buf = getattr(self.local, "window", None)
            if buf is None or len(buf) < full:     # one window per thread, reused
                buf = self.local.window = bytearray(full)
        view = memoryview(buf)
        spans: list[Span] = []
        h = blake3.blake3()
        chunk_start = pos = start      # pos: file offset of buf[0]
        filled = 0                     # bytes of buf that hold file data
        while True:
            while filled < len(buf) and pos + filled < stop:
                n = os.preadv(fd, [view[filled:min(len(buf), stop - pos)]], pos + filled)
                if n <= 0:
                    raise OSError(f"file shrank while reading at offset {pos + filled}")
                filled += n
            eof = pos + filled >= size
            at = 0
            for piece in cutter.cut(view[:filled], eof):
                if piece:
                    h.update(view[at:at + piece])
                    at += piece
                    continue
                end = pos + at
                spans.append((chunk_start, end - chunk_start, h.hexdigest()))
                if counted:
                    self._advance(min(end, until) - chunk_start)
                h = blake3.blake3()
                chunk_start = end
                if end >= until or end in sync:
                    return spans
            if eof:
                return spans
            buf[:filled - at] = buf[at:filled]
            pos += at
            filled -= at

    def submit_file(self, rel: str, size: int) -> _Job:
        """Queue a file's hashing; the caller collects the job's result."""
        fd = os.open(self.base + rel, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        # A small file is hashed here and now: handing it to a worker and back costs more than
        # hashing it (100,000 files of a few bytes: 25 s through the pool, 15 s here).
        run = self._now if size <= _INLINE_MAX else self.pool.submit
        if self.chunking.kind == FIXED:
            sizes = fixed_sizes(size, self.chunking.size)
            offsets = accumulate(sizes, initial=0)
            return _Job(fd, size, sizes, [run(self._chunk, fd, off, n) for off, n in zip(offsets, sizes)])
        bounds = [*range(0, size, self.segment), size]
        return _Job(fd, size, bounds=bounds, segment_futures=[
            run(self._cdc_run, fd, size, a, b, (), True) for a, b in pairwise(bounds)])

    @staticmethod
    def _now(fn: Callable[..., T], *args: Any) -> Future[T]:
        """`fn(*args)` run in this thread, as a done future (or one holding its OSError)."""
        done: Future[T] = Future()
        try:
            done.set_result(fn(*args))
        except OSError as exc:       # (to be raised where the job is collected, as a worker's)
            done.set_exception(exc)
        return done

    def collect(self, job: _Job) -> tuple[tuple[str, ...], tuple[int, ...]]:
        try:
            if self.chunking.kind == FIXED:
                return tuple(f.result() for f in job.chunk_futures), job.sizes
            spans = stitch(job.bounds, [f.result() for f in job.segment_futures],
                           lambda start, until, sync: self._cdc_run(job.fd, job.size, start, until, sync, False))
            return tuple(h for _, _, h in spans), tuple(n for _, n, _ in spans)
        finally:
            # A failed task must not leave others reading a descriptor whose number is reused.
            wait(job.chunk_futures)
            wait(job.segment_futures)
            os.close(job.fd)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def scan_folder(
    root: Path,
    chunking: Chunking,
    cache: HashCache,
    *,
    keep_size: int = AUTO,
    auto_floor: int = 0,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    segment: int | None = None,
    expected: FileTable | None = None,
) -> tuple[Manifest, ScanStats]:
    """Scan `root` (blocking; run it in a thread from asyncio). Raises OSError if root is unreadable.
    A chunking of size AUTO gets one from the data's size, no smaller than `auto_floor`,
    `keep_size` if that still fits.
    `segment`: bytes of a content-defined file cut by one task (default `segment_size`); the
    manifest does not depend on it. `expected`: a version the folder may hold (sorted); its files
    found as they are listed there are only marked (`ScanStats.same`), not put in the manifest
    (a folder holding a million of them is not described twice, in two tables)."""
    started = time.monotonic()
    walked = walk(root)
    found, dirs, skipped, refused = walked.files, walked.dirs, walked.skipped, walked.refused
    del walked
    if chunking.size == AUTO:
        chunking = Chunking(chunking.kind, auto_chunk_size(sum(found.sizes()), keep_size, auto_floor))
    chunk_size = chunking.size
    total = sum(f.st.st_size for f in found if not cache.remembers(f.rel, f.st, chunking))
    segment = segment or segment_size(chunking)
    hasher = _Hasher(root, chunking, workers or os.cpu_count() or 1, progress, total, segment)
    entries = _Entries(expected)
    hashed = reused = 0
    # Chunks of several files are queued at once so every core stays busy even on small files;
    # the queue is bounded in bytes so a huge folder does not pile up futures, and in files (each
    # holds a descriptor: 100,000 small files would otherwise all be open at once).
    limit = 2 * segment * (workers or os.cpu_count() or 1)
    # A remembered file waits in the queue behind the files being hashed, so entries come out in
    # the (sorted) order found and the manifest is built without sorting a copy of them.
    queue: deque[tuple[Found, _Job | _Hashes]] = deque()
    queued = 0
    with cache.batched(), contextlib.closing(hasher):
        for f in found.drain():       # (the walk's columns go as the table's fill)
            remembered = cache.get(f.rel, f.st, chunking)
            if remembered is not None:
                reused += f.st.st_size
                if not queue:
                    entries.add(_entry(f.rel, f.st, *remembered))
                    continue
                queue.append((f, remembered))
            else:
                try:
                    queue.append((f, hasher.submit_file(f.rel, f.st.st_size)))
                except OSError as exc:
                    log.warning("skipping %s: %s", f.rel, exc)
                    skipped.append(f.rel)
                    continue
                queued += f.st.st_size
            while (queued > limit or len(queue) > _MAX_QUEUED_FILES) and queue:
                done = queue.popleft()
                queued -= done[0].st.st_size if isinstance(done[1], _Job) else 0
                hashed += _finish(hasher, done, cache, entries, skipped)
        while queue:
            hashed += _finish(hasher, queue.popleft(), cache, entries, skipped)
    del found
    table = entries.builder.table()
    cache.retain_sorted(entries.paths(table))
    cache.compact_if_due()
    manifest = build_manifest(chunk_size, table, dirs, chunking.kind)
    same = bytes(entries.same)
    stats = ScanStats(len(manifest.files) + same.count(1), hashed, reused, time.monotonic() - started,
                      tuple(skipped), tuple(refused), same)
    return manifest, stats


class _Entries:
    """The files a scan found, in path order: put in the table being built, except those that
    are their entry of `expected` (marked in `same`)."""

    def __init__(self, expected: FileTable | None) -> None:
        self.builder = TableBuilder()
        # (a table not in path order is not walked beside the files: nothing is matched)
        self.expected = expected if expected is not None and expected.is_sorted() else None
        self.same = bytearray(len(expected) if expected is not None else 0)
        self._at = 0

    def add(self, f: FileEntry) -> None:
        exp = self.expected
        if exp is not None:
            j = self._at
            while j < len(exp) and exp.path(j) < f.path:
                j += 1
            self._at = j
            if j < len(exp) and holds(exp, j, f):
                self.same[j] = 1
                return
        self.builder.add(f)

    def paths(self, table: FileTable) -> Iterator[str]:
        """Every file found, in path order: the table's and the expected ones matched."""
        exp, same = self.expected, self.same
        matched = () if exp is None else (exp.path(j) for j in range(len(exp)) if same[j])
        return heapq.merge((table.path(i) for i in range(len(table))), matched)


def _same(a: FileStat, b: FileStat) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ino, a.st_ctime_ns) == (b.st_size, b.st_mtime_ns, b.st_ino, b.st_ctime_ns)


def _entry(rel: str, st: FileStat, chunks: tuple[str, ...], sizes: tuple[int, ...]) -> FileEntry:
    return FileEntry(rel, st.st_size, st.st_mtime_ns, bool(st.st_mode & 0o111), chunks, sizes)


def _finish(hasher: _Hasher, item: tuple[Found, _Job | _Hashes], cache: HashCache,
            entries: _Entries, skipped: list[str]) -> int:
    """Collect a file's hashes (or take its remembered ones); re-hash it if it changed meanwhile.
    Returns bytes hashed."""
    f, job = item
    st = f.st
    if not isinstance(job, _Job):
        entries.add(_entry(f.rel, st, *job))
        return 0
    try:
        for _ in range(_RETRIES):
            chunks, sizes = hasher.collect(job)
            after = FileStat.of(os.stat(hasher.base + f.rel, follow_symlinks=False))
            if _same(after, st):
                cache.put(f.rel, st, hasher.chunking, chunks, sizes)
                entries.add(_entry(f.rel, st, chunks, sizes))
                return st.st_size
            st = after
            job = hasher.submit_file(f.rel, st.st_size)
        hasher.collect(job)
        log.warning("skipping %s this round: it keeps changing while being hashed", f.rel)
    except OSError as exc:
        log.warning("skipping %s: %s", f.rel, exc)
    skipped.append(f.rel)
    return 0
