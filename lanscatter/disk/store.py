"""A peer's (or relay's) sync folder: a mirror assembled chunk by chunk, safely.

Rules:
- Every path comes from a validated manifest and is resolved by `_abs`, which refuses to pass
  through a symlink or a non-directory: nothing outside the folder is touched.
- A file is assembled in a part file beside it (`<name>.lsc-part`) and renamed over the target only
  when every chunk is verified, then given the origin's mtime and exec bit. Readers never see a torn
  file; no second copy of the folder is kept.
- A chunk counts as had only after its hash is verified. Verified part chunks are journaled outside
  the folder (with the part file's inode), and finished files enter the hash cache, so a node
  killed with SIGKILL resumes without downloading or hashing again what it had verified. The
  journal keeps the chunks of files still assembled: rewritten at each reconcile and emptied once
  the mirror is complete.
- Content already present anywhere in the folder (same hash) is copied locally, not downloaded.
- What is had and needed is held as positions in the manifest's own tables, never per chunk as
  a hex text or a path (a million distinct chunks cost some 700 bytes each that way): per distinct
  chunk (its number in the manifest's hash table) the chunk reference it is read from, the file
  holding that reference giving the path (its part file while it is assembled), and per chunk
  reference whether that place still waits for its chunk.
- A chunk found rotten (`forget_chunks`) stops being had at once, in memory and in the journals;
  the next reconcile reads the files holding it afresh.
- POSIX hosts only: names are POSIX names (`a:b.txt`, `c:` are ordinary names here; on Windows
  they would name a drive or a data stream).
"""

from __future__ import annotations

import bisect
import errno
import json
import logging
import os
import shutil
import stat
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from lanscatter.core.bitmap import Bitmap
from lanscatter.core.errors import ConfigError, NoSpaceError
from lanscatter.core.file_table import TableBuilder
from lanscatter.core.manifest import FileEntry, FileTable, Manifest
from lanscatter.disk.assemblies import Assemblies
from lanscatter.disk.folder_walk import PART_SUFFIX
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.hashing import PIECE, hash_file_range
from lanscatter.disk.scanner import scan_folder

log = logging.getLogger("lanscatter.disk.store")


@dataclass(frozen=True, slots=True)
class Location:
    path: Path
    offset: int
    length: int


class Places:
    """Chunks readable in a scanned folder (a source of local copies): the first place of each in
    the scan's table, found when asked (no Location per chunk held)."""

    def __init__(self, root: Path, scanned: Manifest) -> None:
        self.root, self.scanned = root, scanned

    def get(self, chunk: str) -> Location | None:
        loc = self.scanned.locations().first(chunk)
        return None if loc is None else Location(self.root / loc.path, loc.offset, loc.length)


@dataclass(slots=True)
class ReconcileStats:
    kept_files: int = 0
    copied_chunks: int = 0
    deleted: list[str] = field(default_factory=list)
    resumed_chunks: int = 0


class MirrorStore:
    def __init__(self, root: Path, state_dir: Path) -> None:
        if os.name != "posix":
            raise ConfigError("peers and relays run on POSIX hosts only (Linux, macOS, the BSDs)",
                              "run this node on a POSIX host")
        if root.exists() and not root.is_dir():
            raise ConfigError(f"sync folder {root} is a file, not a folder",
                              "give a folder path (it is created if missing)")
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        state_dir.mkdir(parents=True, exist_ok=True)
        self.cache = HashCache(state_dir / "hashes.jsonl")
        self._parts_path = state_dir / "parts.jsonl"
        self.manifest: Manifest | None = None
        self._asm = Assemblies.none()          # the files being assembled
        # Per distinct chunk of the manifest (its number): the chunk reference it is verified at
        # (`_place`), -1: not had. Empty while a reconcile starts (nothing had).
        self._held = array("q")
        self._held_bits = Bitmap(0)       # the same holdings as bits (and their count): a status page's, copied
        self._held_bytes = 0
        self._needed = bytearray()        # per chunk reference: 1 while that place waits for its chunk
        self._journal: TextIO | None = None
        self._reconciled = False        # the last reconcile ran to its end (one that failed is not complete)
        self.epoch = 0          # reconciles started: a reader of held chunks checks it is unchanged

    # ---- paths -------------------------------------------------------------------------------
    def _abs(self, rel: str, *, make_parents: bool = False) -> Path:
        """Absolute path of a validated relative path, never through a symlink or a file."""
        cur = self.root
        parts = rel.split("/")
        for part in parts[:-1]:
            cur = cur / part
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                if not make_parents:
                    return self.root.joinpath(*parts)
                os.mkdir(cur)
                continue
            if not stat.S_ISDIR(st.st_mode):
                if not make_parents:
                    raise FileNotFoundError(cur)
                _remove(cur)            # a file or symlink where the mirror needs a folder
                os.mkdir(cur)
        return cur / parts[-1]

    @property
    def folder(self) -> Path:
        """The folder as the operator named it (where a plain mirror writes)."""
        return self.root

    # ---- status ------------------------------------------------------------------------------
    def held_numbers(self) -> Iterator[int]:
        """The numbers of the chunks had (positions in the manifest's chunk table), in order."""
        held = self._held
        return (d for d in range(len(held)) if held[d] >= 0)

    def held_chunks(self) -> Iterator[str]:
        """The hashes of the chunks had, in chunk table order, one at a time (a set of a million
        hex texts would cost 150 MB)."""
        m = self.manifest
        return iter(()) if m is None else map(m.files.hashes.__getitem__, self.held_numbers())

    def have_bitmap(self) -> Bitmap:
        """The chunks had, as a bitmap over the manifest's chunk table (a copy: a status page is
        asked for every half second, and a walk over a million chunks each time kept the node's
        loop busy)."""
        held = self._held_bits
        bm = Bitmap(held.size)
        bm.bits[:], bm.count = held.bits, held.count
        return bm

    def held_count(self) -> int:
        return self._held_bits.count

    def held_bytes(self) -> int:
        """Bytes of the distinct chunks had."""
        return self._held_bytes

    def has(self, chunk: str) -> bool:
        d = self._number(chunk)
        return d is not None and self._held[d] >= 0

    def complete(self) -> bool:
        return self.manifest is not None and self._reconciled and not self._asm

    def missing_chunks(self) -> set[str]:
        assert self.manifest is not None
        held = self._held
        return {h for d, (h, _) in enumerate(self.manifest.chunk_table()) if d >= len(held) or held[d] < 0}

    def locate(self, chunk: str) -> Location | None:
        m, held, asms = self.manifest, self._held, self._asm
        d = self._number(chunk)
        if m is None or d is None or d >= len(held) or (r := held[d]) < 0 or asms.files is not m.files:
            return None
        i, _k, off, length = self._place(r)
        path = asms.part_name(i) if i in asms else f"{asms.root}/{m.files.path(i)}"
        return Location(Path(path), off, length)

    def _number(self, chunk: str) -> int | None:
        """The chunk's number in the manifest's hash table, if it is one of the chunks held now."""
        m, held = self.manifest, self._held
        d = None if m is None else m.files.hashes.find(chunk)
        return d if d is not None and d < len(held) else None

    def _hold(self, r: int) -> None:
        """The chunk of reference `r` is verified there (kept where it was had first)."""
        assert self.manifest is not None
        d = self.manifest.files.columns.refs[r]
        if self._held[d] < 0:
            self._held[d] = r
            self._held_bits.set(d)
            self._held_bytes += self.manifest.files.columns.lengths[r]

    def _drop(self, d: int) -> None:
        if self._held[d] >= 0:
            assert self.manifest is not None
            self._held_bytes -= self.manifest.files.columns.lengths[self._held[d]]
            self._held[d] = -1
            self._held_bits.clear(d)

    def files_holding(self, chunks: set[str]) -> list[str]:
        """The manifest's files (relative paths) that hold any of `chunks`, in table order: found
        through each chunk's references (not a walk of every file's entry)."""
        m = self.manifest
        if m is None:
            return []
        files, places = m.files, m.locations()
        found = {bisect.bisect_right(files.columns.ref_ends, r)
                 for d in map(files.hashes.find, chunks) if d is not None for r in places.refs(d)}
        return [files.path(i) for i in sorted(found)]

    def forget_chunks(self, chunks: set[str]) -> list[str]:
        """`chunks` no longer match their hashes here: stop having them, forget the cached hashes
        of the files holding them and the journaled part chunks, so the next reconcile reads those
        files afresh and fetches what no longer matches. Returns the files holding them."""
        files = self.files_holding(chunks)
        for rel in files:
            self.cache.forget(rel)
        for h in chunks:
            if (d := self._number(h)) is not None:
                self._drop(d)
        touched = False
        asms = self._asm
        for i in asms:
            for k, h in enumerate(asms.files.entry(i).chunks):
                if h in chunks and not asms.lacks(i, k):
                    asms.lose(i, k)
                    touched = True
        if touched:
            self._journal_rewrite()
        return files

    # ---- reconcile ---------------------------------------------------------------------------
    def reconcile(self, manifest: Manifest) -> ReconcileStats:
        """Make the folder a (partial) mirror of `manifest`. Blocking: run in a worker thread."""
        self.epoch += 1
        self._reconciled = False
        self._close_parts()
        self._held, self._held_bytes = array("q"), 0     # nothing had meanwhile
        self._held_bits = Bitmap(0)
        self._needed = bytearray()
        self.manifest = manifest
        stats = ReconcileStats()
        self._asm = Assemblies.none()
        sources = self._prepare_root(manifest)
        table = manifest.files
        self._asm = asms = Assemblies(table, str(self.root))
        self._held = array("q", [-1]) * len(table.hashes)
        self._held_bits = Bitmap(len(table.hashes))
        wanted_dirs = set(manifest.dirs)
        known = self._root_known()
        if known is None:
            self._remove_conflicts(map(table.path, range(len(table))), wanted_dirs, stats)
            # The files already as the manifest lists them are only marked (`same`): `local` holds
            # the others, a source of local copies (the chunks of those marked are had, read in place).
            local, scanned = scan_folder(self.root, manifest.chunking, self.cache, expected=table)
            same = scanned.same
        else:
            local, same = Manifest(manifest.chunk_size, TableBuilder().table(), (), manifest.chunking_kind), known
        sources.append(Places(self.root, local))
        fresh = bytearray(len(table))        # 1: a part file made or resized now (nothing to resume)
        for i, (entry, have) in enumerate(_pairs(table, local.files)):
            if same[i] or have is not None and have.size == entry.size and have.chunks == entry.chunks:
                self._fix_metadata(entry)
                stats.kept_files += 1
                for r in table.ref_range(i):
                    self._hold(r)
                continue
            self._start_assembly(table, i, fresh)
        self._resume_parts(table, fresh, stats)
        del fresh
        self._journal_rewrite()
        needed = self._needed = bytearray(len(table.columns.refs))
        for i in asms:
            for k, r in enumerate(table.ref_range(i)):
                if asms.lacks(i, k):
                    needed[r] = 1
        # Local copies before anything is deleted: old versions are sources too.
        for i in asms:
            for k, h, off, length in table.entry(i).spans():
                if not asms.lacks(i, k):
                    continue
                src = self.locate(h) or next((loc for s in sources if (loc := s.get(h)) is not None), None)
                if src is not None and self._copy_verified(src, i, k, h, off, length):
                    stats.copied_chunks += 1
                    needed[table.ref_range(i)[k]] = 0
            # Its descriptor is freed now, opened again when a download needs it; one complete here
            # is renamed in the pass below (a version copied locally whole would otherwise hold
            # a descriptor a file until then, past the process's limit).
            asms.close(i)
        for i in asms:
            if not asms.missing_any(i):
                self._finalize(i)
        del local
        if known is None:                   # (a folder known to hold only the manifest's files has nothing else)
            self._delete_extraneous(table, wanted_dirs, stats)
        for d in manifest.dirs:
            folder = self._abs(d, make_parents=True)   # its parents, checked on the way
            if not folder.is_dir():
                folder.mkdir()
        self._reconciled = True
        if not self._asm:
            self._completed()
        return stats

    def _prepare_root(self, manifest: Manifest) -> list[Places]:
        """Before a reconcile: choose the directory that receives `manifest` (`self.root`) and
        return chunks readable elsewhere (copied locally rather than fetched). A plain mirror
        writes its folder in place and knows no other source."""
        return []

    def _root_known(self) -> bytes | None:
        """After `_prepare_root`: per file of the manifest, 1 where the root holds it as listed,
        when nothing else is in the root (a folder it just made and filled), so it needs neither a
        scan nor a pass for conflicts or files to delete; None: it does."""
        return None

    def _on_complete(self) -> None:
        """The mirror just became complete (a staged store activates it here)."""

    def _remove_conflicts(self, files: Iterable[str], dirs: set[str], stats: ReconcileStats) -> None:
        for rel in files:
            try:
                p = self._abs(rel)
            except FileNotFoundError:
                continue
            if p.is_symlink() or p.is_dir():
                _remove(p)
                stats.deleted.append(rel)
        for rel in dirs:
            try:
                p = self._abs(rel)
            except FileNotFoundError:
                continue
            if p.is_symlink() or (p.exists() and not p.is_dir()):
                _remove(p)
                stats.deleted.append(rel)

    def _start_assembly(self, table: FileTable, index: int, fresh: bytearray) -> None:
        """A part file for file `index`, made (or resized, marked in `fresh`) unless one of its
        size is there; its chunks all missing until `_resume_parts`."""
        entry = table.entry(index)
        target = self._abs(entry.path, make_parents=True)
        part = target.with_name(target.name + PART_SUFFIX)
        fd = os.open(part, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        st = os.fstat(fd)
        if st.st_size != entry.size:
            fresh[index] = 1
            os.ftruncate(fd, entry.size)
            if entry.size:
                try:   # real blocks up front: writes in rarest-first order then allocate nothing
                    os.posix_fallocate(fd, 0, entry.size)
                except OSError as exc:
                    if exc.errno == errno.ENOSPC:
                        raise NoSpaceError(f"no space left for {entry.path} ({entry.size} bytes) in {self.root}",
                                           "free some space on that disk") from None
                    # file systems without fallocate: sparse is fine
        os.close(fd)
        self._asm.start(index, st.st_ino)

    def _copy_verified(self, src: Location, i: int, k: int, h: str, off: int, length: int) -> bool:
        """Copy a chunk from elsewhere in the folder, verifying it on the way (it may have changed)."""
        try:
            with open(src.path, "rb") as fh:
                if hash_file_range(fh.fileno(), src.offset, length) != h:
                    return False
                pos = 0
                while pos < length:
                    data = os.pread(fh.fileno(), min(PIECE * 4, length - pos), src.offset + pos)
                    if not data:
                        return False
                    os.pwrite(self._asm.open(i), data, off + pos)
                    pos += len(data)
        except OSError as exc:
            log.debug("local copy of %s failed: %s", h[:12], exc)
            return False
        self._mark(i, k, h, off, length)
        return True

    def _mark(self, i: int, k: int, h: str, off: int, length: int) -> None:
        asms = self._asm
        asms.got(i, k)
        self._hold(asms.files.ref_range(i)[k])
        self._journal_append({"p": asms.path(i), "i": asms.ino(i), "o": off, "h": h})

    def _fix_metadata(self, entry: FileEntry) -> None:
        p = self._abs(entry.path)
        st = os.lstat(p)
        mode = st.st_mode & 0o7777
        want = (mode | ((mode & 0o444) >> 2)) if entry.executable else (mode & ~0o111)
        if want != mode:
            os.chmod(p, want)
        if st.st_mtime_ns != entry.mtime_ns:
            os.utime(p, ns=(st.st_atime_ns, entry.mtime_ns))
        if (want != mode or st.st_mtime_ns != entry.mtime_ns) and self.manifest is not None:
            self.cache.put(entry.path, os.lstat(p), self.manifest.chunking, entry.chunks, entry.sizes)

    def _finalize(self, i: int) -> None:
        assert self.manifest is not None
        asms = self._asm
        entry, part = asms.files.entry(i), Path(asms.part_name(i))
        asms.finish(i)
        target = self._abs(entry.path, make_parents=True)
        os.replace(part, target)            # (a chunk had in it is read at `target` from now: `locate`)
        mode = 0o666 & ~_UMASK
        os.chmod(target, (mode | ((mode & 0o444) >> 2)) if entry.executable else mode)
        os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns))
        self.cache.put(entry.path, os.lstat(target), self.manifest.chunking, entry.chunks, entry.sizes)

    def _delete_extraneous(self, files: FileTable, dirs: set[str], stats: ReconcileStats) -> None:
        # Paths are looked up in the sorted table and part files in the assemblies: sets of a
        # million paths would cost over 100 bytes a file each.
        for dirpath, dirnames, filenames in os.walk(self.root, topdown=False):
            rel_dir = os.path.relpath(dirpath, self.root)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                rel = f"{rel_dir}/{name}" if rel_dir else name
                full = os.path.join(dirpath, name)
                if self._kept_part(rel, full) or files.position(rel) is not None and not os.path.islink(full):
                    continue
                _remove(Path(full))
                stats.deleted.append(rel)
            if rel_dir and rel_dir not in dirs and not os.listdir(dirpath):
                os.rmdir(dirpath)
                stats.deleted.append(rel_dir + "/")
        for rel in stats.deleted:
            self.cache.forget(rel)

    def _kept_part(self, rel: str, full: str) -> bool:
        """Whether `rel` (at `full`) is the part file of a file being assembled."""
        asms = self._asm
        i = asms.files.position(rel[:-len(PART_SUFFIX)]) if rel.endswith(PART_SUFFIX) else None
        return i is not None and i in asms and asms.part_name(i) == full

    # ---- receiving chunks --------------------------------------------------------------------
    def _place(self, r: int) -> tuple[int, int, int, int]:
        """(file position, chunk index, offset, length) of chunk reference `r` of the manifest."""
        assert self.manifest is not None
        table = self.manifest.files
        i = bisect.bisect_right(table.columns.ref_ends, r)
        span, lengths = table.ref_range(i), table.columns.lengths
        return i, r - span.start, sum(lengths[span.start:r]), lengths[r]

    def _needing(self, chunk: str) -> list[int]:
        """The chunk references still waiting for `chunk`, in table order."""
        d = self._number(chunk)
        if d is None or self.manifest is None:
            return []
        needed = self._needed
        return [r for r in self.manifest.locations().refs(d) if needed[r]]

    def chunk_target(self, chunk: str) -> tuple[int, int, int] | None:
        """(fd, offset, length) of a part-file place that needs `chunk`, or None."""
        for r in self._needing(chunk):
            i, _k, off, length = self._place(r)
            return self._asm.open(i), off, length
        return None

    def chunk_verified(self, chunk: str, fd: int, offset: int) -> list[str]:
        """The chunk written at (fd, offset) hashed right: record it, copy it to every other place
        that needs it, finish completed files. Returns the paths of the files completed."""
        places = self._needing(chunk)
        for r in places:
            self._needed[r] = 0
        asms = self._asm
        first = next((p for p in map(self._place, places) if asms.fds.get(p[0]) == fd and p[2] == offset), None)
        if first is None:
            return []
        i, k, off, length = first
        self._mark(i, k, chunk, off, length)
        src = Location(Path(asms.part_name(i)), off, length)
        touched = set()
        for other, k2, off2, len2 in map(self._place, places):
            touched.add(other)
            if other != i or k2 != k:
                self._copy_verified(src, other, k2, chunk, off2, len2)
        done = sorted(j for j in touched if not asms.missing_any(j))
        paths = [asms.path(j) for j in done]
        for j in done:
            self._finalize(j)
        if done and not asms:
            self._completed()
        return paths

    def _completed(self) -> None:
        self._journal_rewrite()            # (no file is assembled: the part journal empties)
        self._on_complete()

    # ---- part journal ------------------------------------------------------------------------
    def _resume_parts(self, table: FileTable, fresh: bytearray, stats: ReconcileStats) -> None:
        """Chunks the part journal says were verified into a part file still there (its inode,
        not resized since) are had again. The journal is read line by line into the assemblies'
        bits (a dict of its lines cost 470 bytes a file): a line for another inode of the path
        starts the file over, the last line for an offset decides."""
        asms = self._asm
        resumed = bytearray(len(table))
        at = -1
        offsets: dict[int, int] = {}          # the offsets of file `at`'s chunks -> chunk index
        chunks: tuple[str, ...] = ()
        try:
            with open(self._parts_path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        r = json.loads(line)
                        path, inode, off, h = str(r["p"]), r["i"], int(r["o"]), str(r["h"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    i = table.position(path)
                    if i is None or i not in asms or fresh[i]:
                        continue
                    if i != at:           # (a file's lines mostly follow each other)
                        entry = table.entry(i)
                        at, offsets, chunks = i, {o: k for k, _, o, _ in entry.spans()}, entry.chunks
                    if inode != asms.ino(i):
                        asms.start(i, asms.ino(i))
                    elif (k := offsets.get(off)) is not None:
                        (asms.got if chunks[k] == h else asms.lose)(i, k)
                        resumed[i] = 1
        except FileNotFoundError:
            pass
        for i in asms:
            if resumed[i]:
                for k, r in enumerate(table.ref_range(i)):
                    if not asms.lacks(i, k):
                        self._hold(r)
                        stats.resumed_chunks += 1

    def _journal_rewrite(self) -> None:
        """Keep only the entries of files still being assembled."""
        self._close_journal()
        assert self.manifest is not None
        tmp = self._parts_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            asms = self._asm
            for i in asms:
                entry, ino = asms.files.entry(i), asms.ino(i)
                for k, h, off, _ in entry.spans():
                    if not asms.lacks(i, k):
                        fh.write(json.dumps({"p": entry.path, "i": ino, "o": off, "h": h}) + "\n")
        os.replace(tmp, self._parts_path)

    def _journal_append(self, rec: dict[str, object]) -> None:
        if self._journal is None:
            self._journal = open(self._parts_path, "a", encoding="utf-8")  # noqa: SIM115
        self._journal.write(json.dumps(rec) + "\n")
        self._journal.flush()

    def _close_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def _close_parts(self) -> None:
        self._asm.close_all()

    def close(self) -> None:
        self._close_parts()
        self._close_journal()
        self.cache.close()



def _pairs(wanted: FileTable, local: FileTable) -> Iterator[tuple[FileEntry, FileEntry | None]]:
    """Each wanted entry with the local one of its path (None: none), both tables sorted
    (walked side by side: a dict of a million local entries would cost 500 bytes a file)."""
    if not (wanted.is_sorted() and local.is_sorted()):
        yield from ((entry, local[i] if (i := local.position(entry.path)) is not None else None) for entry in wanted)
        return
    j = 0
    for entry in wanted:
        while j < len(local) and local.path(j) < entry.path:
            j += 1
        yield entry, local.entry(j) if j < len(local) and local.path(j) == entry.path else None


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink(missing_ok=True)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()   # read once: os.umask is process-wide and racy from threads
