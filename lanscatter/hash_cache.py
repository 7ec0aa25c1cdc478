"""Remembered chunk hashes of files, so a restart does not re-hash gigabytes.

Keyed by relative path and validated by (size, mtime_ns, inode, chunk_size): any change to the file
invalidates its entry. Lives outside the sync folder (the master never writes its folder; a peer's
folder must end byte-identical to the origin). Written as an append-only JSON-lines journal, so an
entry recorded before a SIGKILL survives it; compacted when loaded.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

log = logging.getLogger("lanscatter.hash_cache")


@dataclass(frozen=True, slots=True)
class CachedFile:
    size: int
    mtime_ns: int
    inode: int
    chunk_size: int
    chunks: tuple[str, ...]


class HashCache:
    """Path -> CachedFile, persisted in `path` (a journal file)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, CachedFile] = {}
        self._journal: TextIO | None = None
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
                                rec["s"], rec["m"], rec["i"], rec["c"], tuple(rec["h"]))
                    except (ValueError, KeyError, TypeError):
                        continue   # a line torn by a crash: the file gets re-hashed, nothing worse
        except FileNotFoundError:
            pass
        self.compact()

    def get(self, rel: str, st: os.stat_result, chunk_size: int) -> tuple[str, ...] | None:
        e = self._entries.get(rel)
        if e and (e.size, e.mtime_ns, e.inode, e.chunk_size) == (
            st.st_size, st.st_mtime_ns, st.st_ino, chunk_size
        ):
            return e.chunks
        return None

    def put(self, rel: str, st: os.stat_result, chunk_size: int, chunks: tuple[str, ...]) -> None:
        entry = CachedFile(st.st_size, st.st_mtime_ns, st.st_ino, chunk_size, chunks)
        if self._entries.get(rel) == entry:
            return
        self._entries[rel] = entry
        self._append({"p": rel, "s": entry.size, "m": entry.mtime_ns, "i": entry.inode,
                      "c": chunk_size, "h": list(chunks)})

    def forget(self, rel: str) -> None:
        if self._entries.pop(rel, None) is not None:
            self._append({"p": rel, "del": 1})

    def retain(self, keep: set[str]) -> None:
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
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"p": rel, "s": e.size, "m": e.mtime_ns, "i": e.inode,
                                     "c": e.chunk_size, "h": list(e.chunks)},
                                    separators=(",", ":")) + "\n" for rel, e in self._entries.items())
        os.replace(tmp, self.path)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
