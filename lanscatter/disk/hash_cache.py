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
import struct
import threading
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TextIO

from lanscatter.core.chunking import Chunking

log = logging.getLogger("lanscatter.disk.hash_cache")


# An entry is one bytes object (a million files as a million objects with tuples, texts and numbers
# each would cost over 500 bytes a file; this is about 100 with its 1-chunk file): the header, then
# each chunk's length (8 bytes), then each chunk's hash (32 bytes). The file's size is the lengths'
# sum and the chunk count what follows the header holds; the chunking key is a number into the
# cache's own table of them.
_HEAD = struct.Struct("<qQqH")     # mtime_ns, inode, ctime_ns, chunking key number
_HASH = 32
_PER_CHUNK = 8 + _HASH


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
    """Path -> remembered hashes (one packed entry each), persisted in `path` (a journal file)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, bytes] = {}            # rel -> packed entry (see _HEAD)
        self._keys: list[str] = []                      # chunking keys by number
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
                            self._entries[str(rec["p"])] = self._pack(CachedFile(
                                rec["s"], rec["m"], rec["i"], rec["t"], str(rec["c"]), tuple(rec["h"]),
                                tuple(rec["z"])))
                    except (ValueError, KeyError, TypeError, struct.error):
                        continue   # a line torn by a crash: the file gets re-hashed, nothing worse
        except FileNotFoundError:
            pass
        self.compact()

    def get(self, rel: str, st: os.stat_result | FileStat,
            chunking: Chunking) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
        """The remembered (hashes, sizes) of `rel` if the file is still as it was when they were
        taken with this chunking."""
        packed = self._entries.get(rel)
        if packed is None:
            return None
        e = self._unpack(packed)
        same = (e.size, e.mtime_ns, e.inode, e.ctime_ns, e.chunking) == (
            st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, chunking.key)
        return (e.chunks, e.sizes) if same else None

    def put(self, rel: str, st: os.stat_result | FileStat, chunking: Chunking, chunks: tuple[str, ...],
            sizes: tuple[int, ...]) -> None:
        entry = CachedFile(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, chunking.key, chunks,
                           sizes)
        with self._lock:
            packed = self._pack(entry)
            if self._entries.get(rel) == packed:
                return
            self._entries[rel] = packed
            self._append(entry.record(rel))

    def _pack(self, e: CachedFile) -> bytes:
        """Raises ValueError or struct.error for an entry out of range (a hash not hex, a chunk
        count unlike the sizes', sizes that do not add up to the file's)."""
        if len(e.chunks) != len(e.sizes) or sum(e.sizes) != e.size:
            raise ValueError("chunk hashes and sizes do not pair up with the file")
        try:
            key = self._keys.index(e.chunking)
        except ValueError:
            key = len(self._keys)
            self._keys.append(e.chunking)
        return (_HEAD.pack(e.mtime_ns, e.inode, e.ctime_ns, key)
                + array("q", e.sizes).tobytes() + bytes.fromhex("".join(e.chunks)))

    def _unpack(self, packed: bytes) -> CachedFile:
        mtime_ns, inode, ctime_ns, key = _HEAD.unpack_from(packed)
        n = (len(packed) - _HEAD.size) // _PER_CHUNK
        at = _HEAD.size + 8 * n
        sizes = array("q")
        sizes.frombytes(packed[_HEAD.size:at])
        chunks = tuple(packed[at + _HASH * k:at + _HASH * (k + 1)].hex() for k in range(n))
        return CachedFile(sum(sizes), mtime_ns, inode, ctime_ns, self._keys[key], chunks, tuple(sizes))

    def forget(self, rel: str) -> None:
        with self._lock:
            if self._entries.pop(rel, None) is not None:
                self._append({"p": rel, "del": 1})

    def retain_sorted(self, keep: Iterable[str]) -> None:
        """Forget every entry but those of `keep`, paths in increasing order (a scan's files: a
        set of a million paths would cost 100 bytes a file more)."""
        with self._lock:
            wanted = iter(keep)
            next_kept = next(wanted, None)
            for rel in sorted(self._entries):
                while next_kept is not None and next_kept < rel:
                    next_kept = next(wanted, None)
                if rel != next_kept:
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
                fh.writelines(json.dumps(self._unpack(e).record(rel), separators=(",", ":")) + "\n"
                              for rel, e in self._entries.items())
            os.replace(tmp, self.path)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
