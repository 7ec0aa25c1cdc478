"""Remembered chunk hashes of files, so a restart does not re-hash gigabytes.

Keyed by relative path and validated by (size, mtime_ns, inode, ctime_ns, chunking): any change
to the file, or to the chunking (kind and target size, `Chunking.key`), invalidates its entry. The ctime matters: a file rewritten in place under its old size
and with its old mtime put back (`cp -p`, builds with a fixed epoch) keeps its inode, and only its
ctime (which no program can set back) says it changed. Lives outside the sync folder (the master
never writes its folder; a peer's folder must end byte-identical to the origin). Written as an
append-only JSON-lines journal, so an entry recorded before a SIGKILL survives it; compacted when
loaded and, by a scan or a staging, once it outgrows the entries (`compact_if_due`); entries of
older versions (no ctime, no chunk sizes) are dropped, so those files are hashed once more.
Thread-safe: scans run in worker threads while the event loop forgets entries.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import threading
import time
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TextIO

from lanscatter.core.chunking import Chunking
from lanscatter.disk.cache_rows import HASH, Fields, Item, Rows, pack, unpack

log = logging.getLogger("lanscatter.disk.hash_cache")
BATCH_FLUSH_S = 0.5


# A cache of a million files holds them as sorted columns (`cache_rows.Rows`, about 105 bytes a
# file of one chunk) and no object per file; a change to a remembered file of as many chunks is
# written into its row, and other changes (new paths, other chunk counts) wait in a small overlay
# (path -> packed fields, about 200 bytes each) merged into the rows once it holds an eighth of
# them: a merge copies the columns, so its cost spreads over the changes that filled the overlay.
_MERGE_MIN = 4096
_MERGE_SHARE = 8
# Every change adds a line to the journal (a hard link's new ctime too: 990,000 links into a staged
# version left 390 MB of journal until the next start); once the lines superseded outnumber half
# the live entries (and a minimum) it is compacted, by the worker thread of a scan or a staging
# (`compact_if_due`), never on the event loop: a compaction writes each entry once, after at least
# half as many changes, so it costs a few lines a change.
_COMPACT_MIN = 65536
_COMPACT_SHARE = 2


class FileStat(NamedTuple):
    """What a scan keeps of a file's `os.stat_result` (which costs over 600 bytes a file)."""

    st_size: int
    st_mtime_ns: int
    st_ino: int
    st_ctime_ns: int
    st_mode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, st.st_mode)


@dataclass(frozen=True, slots=True)
class CachedFile:
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int
    chunking: str                  # Chunking.key
    chunks: tuple[str, ...]
    sizes: tuple[int, ...]

    def record(self, rel: str) -> dict[str, object]:
        return {"p": rel, "s": self.size, "m": self.mtime_ns, "i": self.inode, "t": self.ctime_ns,
                "c": self.chunking, "h": list(self.chunks), "z": list(self.sizes)}


class HashCache:
    """Path -> remembered hashes (sorted columns and an overlay), persisted in `path` (a journal)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._rows = Rows()
        self._cursor = -1                               # the row `_row` found last (a hint only)
        self._missed: tuple[str, int] | None = None     # a path `_row` searched for in vain, and where it would go
        self._gone: set[int] = set()                    # rows forgotten, dropped at the next merge
        self._over: dict[str, bytes] = {}               # rel -> packed fields, of no live row
        self._keys: list[str] = []                      # chunking keys by number
        self._journal: TextIO | None = None
        self._lines = 0                                 # lines in the journal
        self._batched = 0                               # scans under way in `batched()`
        self._flushed_at = 0.0                          # monotonic: the journal's last flush
        self._lock = threading.Lock()
        if path is not None:
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                        if rec.get("del"):
                            self._drop(str(rec["p"]))
                        else:
                            self._set(str(rec["p"]), self._fields(CachedFile(
                                rec["s"], rec["m"], rec["i"], rec["t"], str(rec["c"]), tuple(rec["h"]),
                                tuple(rec["z"]))))
                    except (ValueError, KeyError, TypeError, struct.error, OverflowError):
                        continue   # a line torn by a crash: the file gets re-hashed, nothing worse
        except FileNotFoundError:
            pass
        self.compact()

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows) - len(self._gone) + len(self._over)

    def paths(self) -> list[str]:
        """The paths remembered, in increasing order."""
        with self._lock:
            return [rel for rel, _ in self._live()]

    def get(self, rel: str, st: os.stat_result | FileStat,
            chunking: Chunking) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
        """The remembered (hashes, sizes) of `rel` if the file is still as it was when they were
        taken with this chunking."""
        with self._lock:
            f = self._lookup(rel)
            if f is None or not self._vouches(f, st, chunking):
                return None
            e = self._unfields(f)
            return e.chunks, e.sizes

    def remembers(self, rel: str, st: os.stat_result | FileStat, chunking: Chunking) -> bool:
        """Whether `get` would answer, without making its answer (a scan counts the bytes it
        must hash before it hashes any: half of a rescan's lookups)."""
        with self._lock:
            packed = self._over.get(rel)
            if packed is not None:
                return self._vouches(unpack(packed), st, chunking)
            try:
                key = self._keys.index(chunking.key)
            except ValueError:
                return False
            i = self._row(rel)
            return i is not None and self._rows.vouches(i, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, key)

    def _vouches(self, f: Fields, st: os.stat_result | FileStat, chunking: Chunking) -> bool:
        """Whether `f` was taken of a file with these stat fields and this chunking (the size,
        a sum, compared last)."""
        return (f.mtime_ns, f.inode, f.ctime_ns, self._keys[f.key]) == (
            st.st_mtime_ns, st.st_ino, st.st_ctime_ns, chunking.key) and f.size() == st.st_size

    def put(self, rel: str, st: os.stat_result | FileStat, chunking: Chunking, chunks: tuple[str, ...],
            sizes: tuple[int, ...]) -> None:
        entry = CachedFile(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, chunking.key, chunks,
                           sizes)
        with self._lock:
            fields = self._fields(entry)
            if self._lookup(rel) == fields:
                return
            self._set(rel, fields)
            self._append(entry.record(rel))

    def _fields(self, e: CachedFile) -> Fields:
        """Raises ValueError or OverflowError for an entry out of range (a hash not hex, a chunk
        count unlike the sizes', sizes that do not add up to the file's)."""
        if len(e.chunks) != len(e.sizes) or sum(e.sizes) != e.size:
            raise ValueError("chunk hashes and sizes do not pair up with the file")
        hashes = bytes.fromhex("".join(e.chunks))
        if len(hashes) != HASH * len(e.chunks):
            raise ValueError("a chunk hash is not 32 bytes")
        try:
            key = self._keys.index(e.chunking)
        except ValueError:
            key = len(self._keys)
            self._keys.append(e.chunking)
        # (packed once to check every number fits its column)
        return unpack(pack(Fields(e.mtime_ns, e.inode, e.ctime_ns, key, array("q", e.sizes).tobytes(), hashes)))

    def _unfields(self, f: Fields) -> CachedFile:
        sizes = tuple(array("q", f.sizes))
        chunks = tuple(f.hashes[HASH * k:HASH * (k + 1)].hex() for k in range(f.chunks))
        return CachedFile(sum(sizes), f.mtime_ns, f.inode, f.ctime_ns, self._keys[f.key], chunks, sizes)

    # ---- rows and overlay (the lock held) ---------------------------------------------------
    def _row(self, rel: str) -> int | None:
        """The live row of `rel`, if any."""
        rows = self._rows
        # A scan asks in path order, the rows' order: the row after the last one found is looked
        # at before a search (a rescan of 100,000 unchanged files: 7.4 s with a search each time).
        i = self._cursor + 1
        if not (i < len(rows) and rows.path(i) == rel):
            i = rows.find(rel)
            if not (i < len(rows) and rows.path(i) == rel):
                self._missed = (rel, i)
                return None
        self._cursor = i
        return i if i not in self._gone else None

    def _lookup(self, rel: str) -> Fields | None:
        packed = self._over.get(rel)
        if packed is not None:
            return unpack(packed)
        i = self._row(rel)
        return None if i is None else self._rows.fields(i)

    def _set(self, rel: str, f: Fields) -> None:
        if rel in self._over:
            self._over[rel] = pack(f)
            return
        rows = self._rows
        # `put` looked the path up just before (`_lookup`): where that search ended is reused (a
        # peer records its files as they complete, in no order: 100,000 such puts took 4.15 s with
        # a second search each, 3.35 s without).
        i, missed, self._missed = self._cursor, self._missed, None
        if not (0 <= i < len(rows) and rows.path(i) == rel):
            i = missed[1] if missed is not None and missed[0] == rel else rows.find(rel)
        if i < len(rows) and rows.path(i) == rel:
            if rows.chunk_count(i) == f.chunks:
                rows.overwrite(i, f)
                self._gone.discard(i)
                return
            self._gone.add(i)
        elif i == len(rows) and not self._over:
            rows.append(rel, f)            # (a first scan, a compacted journal: in path order)
            return
        self._over[rel] = pack(f)
        self._merge_if_due()

    def _drop(self, rel: str) -> bool:
        """Forget `rel`; whether it was remembered."""
        if self._over.pop(rel, None) is not None:
            return True
        i = self._row(rel)
        if i is None:
            return False
        self._gone.add(i)
        self._merge_if_due()
        return True

    def _merge_if_due(self) -> None:
        if len(self._over) + len(self._gone) > max(_MERGE_MIN, len(self._rows) // _MERGE_SHARE):
            self._merge()

    def _merge(self) -> None:
        """Fold the overlay into the rows and drop the forgotten rows."""
        if not self._over and not self._gone:
            return
        rows = self._rows
        # (position, 0 for a row gone / 1 for a path added, path): a path added goes before the
        # row it would take the place of; a row gone is skipped
        cuts: list[tuple[int, int, str]] = [(i, 0, "") for i in self._gone]
        lo = 0
        for rel in sorted(self._over):
            lo = rows.find(rel, lo)
            cuts.append((lo, 1, rel))
        cuts.sort()
        items: list[Item] = []
        at = 0
        for pos, added, rel in cuts:
            if pos > at:
                items.append((at, pos))
            if added:
                items.append(rel)
                at = max(at, pos)
            else:
                at = pos + 1
        if at < len(rows):
            items.append((at, len(rows)))
        del cuts
        self._rows = rows.merged(items, self._over)
        self._over, self._gone, self._missed = {}, set(), None

    def _live(self) -> Iterator[tuple[str, Fields]]:
        """Every remembered path with its fields, in path order (merged first)."""
        self._merge()
        rows = self._rows
        for i in range(len(rows)):
            yield rows.path(i), rows.fields(i)

    def forget(self, rel: str) -> None:
        with self._lock:
            if self._drop(rel):
                self._append({"p": rel, "del": 1})

    def retain_sorted(self, keep: Iterable[str]) -> None:
        """Forget every entry but those of `keep`, paths in increasing order (a scan's files: a
        set of a million paths would cost 100 bytes a file more). The rows forgotten are merged
        out when due, like any (a staging scan misses the few files the new version changes: a
        merge for those copied every column, 105 MB at a million files)."""
        with self._lock:
            if self._over:
                self._merge()
            rows = self._rows
            wanted = iter(keep)
            next_kept = next(wanted, None)
            for i in range(len(rows)):
                rel = rows.path(i)
                while next_kept is not None and next_kept < rel:
                    next_kept = next(wanted, None)
                if rel != next_kept:
                    self._gone.add(i)
            self._merge_if_due()

    def _append(self, rec: dict[str, object]) -> None:
        if self.path is None:
            return
        if self._journal is None:
            self._journal = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        self._journal.write(json.dumps(rec, separators=(",", ":")) + "\n")
        now = time.monotonic()
        if not self._batched or now - self._flushed_at >= BATCH_FLUSH_S:
            self._journal.flush()
            self._flushed_at = now
        self._lines += 1

    @contextlib.contextmanager
    def batched(self) -> Iterator[None]:
        """Within it, what is recorded reaches the journal's file every BATCH_FLUSH_S rather than
        at each entry, and at its end: a scan of many small files spent a third of its time in a
        write per file. A SIGKILL loses at most that much hashing, which is done again."""
        with self._lock:
            self._batched += 1
        try:
            yield
        finally:
            with self._lock:
                self._batched -= 1
                if self._journal is not None:
                    self._journal.flush()

    def compact(self) -> None:
        """Rewrite the journal with only live entries (atomically)."""
        if self.path is None:
            return
        with self._lock:
            self._close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(self._unfields(f).record(rel), separators=(",", ":")) + "\n"
                              for rel, f in self._live())
            os.replace(tmp, self.path)
            self._lines = len(self._rows)

    def compact_if_due(self) -> bool:
        """Compact the journal if it outgrew the entries (`_COMPACT_SHARE`); whether it did.
        Blocking for a large cache: a worker thread's."""
        with self._lock:
            live = len(self._rows) - len(self._gone) + len(self._over)
            due = self._lines - live > max(_COMPACT_MIN, live // _COMPACT_SHARE)
        if due:
            self.compact()
        return due

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
