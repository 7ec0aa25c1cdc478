"""Remembered chunk hashes of files, so a restart does not re-hash gigabytes.

Keyed by relative path and validated by (size, mtime_ns, inode, ctime_ns, chunking): any change
to the file, or to the chunking (kind and target size, `Chunking.key`), invalidates its entry. The ctime matters: a file rewritten in place under its old size
and with its old mtime put back (`cp -p`, builds with a fixed epoch) keeps its inode, and only its
ctime (which no program can set back) says it changed. Lives outside the sync folder (the master
never writes its folder; a peer's folder must end byte-identical to the origin). Written as an
append-only JSON-lines journal, so an entry recorded before a SIGKILL survives it; compacted when
loaded; entries of older versions (no ctime, no chunk sizes) are dropped, so those files are hashed
once more.
Thread-safe: scans run in worker threads while the event loop forgets entries.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from lanscatter.core.chunking import Chunking

log = logging.getLogger("lanscatter.disk.hash_cache")


@dataclass(frozen=True, slots=True)
class CachedFile:
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int
    chunking: str                  # Chunking.key
    chunks: tuple[str, ...]
    sizes: tuple[int, ...]

    def matches(self, st: os.stat_result, chunking: Chunking) -> bool:
        return (self.size, self.mtime_ns, self.inode, self.ctime_ns, self.chunking) == (
            st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, chunking.key)

    def record(self, rel: str) -> dict[str, object]:
        return {"p": rel, "s": self.size, "m": self.mtime_ns, "i": self.inode, "t": self.ctime_ns,
                "c": self.chunking, "h": list(self.chunks), "z": list(self.sizes)}


class HashCache:
    """Path -> CachedFile, persisted in `path` (a journal file)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, CachedFile] = {}
        self._journal: TextIO | None = None
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
                            self._entries.pop(rec["p"], None)
                        else:
                            self._entries[rec["p"]] = CachedFile(
                                rec["s"], rec["m"], rec["i"], rec["t"], str(rec["c"]), tuple(rec["h"]),
                                tuple(rec["z"]))
                    except (ValueError, KeyError, TypeError):
                        continue   # a line torn by a crash: the file gets re-hashed, nothing worse
        except FileNotFoundError:
            pass
        self.compact()

    def get(self, rel: str, st: os.stat_result,
            chunking: Chunking) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
        """The remembered (hashes, sizes) of `rel` if the file is still as it was when they were
        taken with this chunking."""
        e = self._entries.get(rel)
        return (e.chunks, e.sizes) if e is not None and e.matches(st, chunking) else None

    def put(self, rel: str, st: os.stat_result, chunking: Chunking, chunks: tuple[str, ...],
            sizes: tuple[int, ...]) -> None:
        entry = CachedFile(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, chunking.key, chunks,
                           sizes)
        with self._lock:
            if self._entries.get(rel) == entry:
                return
            self._entries[rel] = entry
            self._append(entry.record(rel))

    def forget(self, rel: str) -> None:
        with self._lock:
            if self._entries.pop(rel, None) is not None:
                self._append({"p": rel, "del": 1})

    def retain(self, keep: set[str]) -> None:
        with self._lock:
            for rel in [r for r in self._entries if r not in keep]:
                del self._entries[rel]

    def _append(self, rec: dict[str, object]) -> None:
        if self.path is None:
            return
        if self._journal is None:
            self._journal = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        self._journal.write(json.dumps(rec, separators=(",", ":")) + "\n")
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
                fh.writelines(json.dumps(e.record(rel), separators=(",", ":")) + "\n"
                              for rel, e in self._entries.items())
            os.replace(tmp, self.path)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
