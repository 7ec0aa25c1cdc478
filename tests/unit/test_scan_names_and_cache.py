"""The scanner against names the protocol cannot carry, and the hash cache against rewrites that
keep size, mtime and inode."""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

import pytest

from lanscatter.core.chunking import CDC, Chunking
from lanscatter.core.file_table import FileEntry
from lanscatter.disk import folder_walk, hash_cache, scanner
from lanscatter.disk.folder_walk import RefusedName, walk
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.scanner import scan_folder

CHUNKING = Chunking(CDC, 64 * 1024)


def _bytes_file(folder: Path, name: bytes, data: bytes) -> None:
    fd = os.open(os.fsencode(folder) + b"/" + name, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def test_names_the_protocol_cannot_carry_are_refused_and_the_rest_scanned(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_bytes(b"good")
    (tmp_path / "a:b.txt").write_bytes(b"colon")
    (tmp_path / "back\\slash").write_bytes(b"a backslash is a POSIX name the protocol does not carry")
    _bytes_file(tmp_path, b"bad\xff.txt", b"latin-1")
    os.mkdir(os.fsencode(tmp_path) + b"/dir\xfe")
    _bytes_file(tmp_path, b"dir\xfe/inside", b"below a refused folder")
    manifest, stats = scan_folder(tmp_path, CHUNKING, HashCache(None))
    assert [f.path for f in manifest.files] == ["a:b.txt", "good.txt"]
    assert manifest.dirs == ()
    assert sorted(stats.refused, key=lambda r: r.shown) == [
        RefusedName("back\\\\slash", "name contains a backslash"),
        RefusedName("bad\\xff.txt", "name is not UTF-8"),
        RefusedName("dir\\xfe", "name is not UTF-8"),
    ]


def _deep_tree(root: Path, depth: int, name: str) -> None:
    """Folders nested `depth` deep with a file at the bottom, made through directory descriptors
    (their absolute path is longer than the OS takes in one call)."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(os.open("f", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


def test_a_path_too_long_for_the_protocol_is_refused(tmp_path: Path) -> None:
    _deep_tree(tmp_path, 17, "d" * 249)            # every name fine, the path over 4096 bytes
    (tmp_path / "short").write_bytes(b"y")
    manifest, stats = scan_folder(tmp_path, CHUNKING, HashCache(None))
    assert [f.path for f in manifest.files] == ["short"]
    assert [r.reason for r in stats.refused] == ["path longer than 4096 bytes"]


def test_a_path_too_long_below_the_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / ("r" * 250)
    root.mkdir()
    _deep_tree(root, 16, "d" * 249)               # 4000 bytes: carried, but not below this folder
    (root / "short").write_bytes(b"y")
    manifest, stats = scan_folder(root, CHUNKING, HashCache(None))
    assert [f.path for f in manifest.files] == ["short"]
    assert [r.reason for r in stats.refused] == ["path too long below this folder"]


def test_a_rewrite_in_place_with_the_old_mtime_is_hashed_again(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    path = root / "f.bin"
    path.write_bytes(b"A" * 100_000)
    cache = HashCache(tmp_path / "cache.jsonl")
    first, _ = scan_folder(root, CHUNKING, cache)
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.write(b"B" * 100_000)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns, path.stat().st_ino) == (
        st.st_size, st.st_mtime_ns, st.st_ino)
    cache.close()
    again, stats = scan_folder(root, CHUNKING, HashCache(tmp_path / "cache.jsonl"))     # as after a restart
    assert stats.hashed_bytes == 100_000
    assert again.files[0].chunks != first.files[0].chunks


def test_an_unchanged_file_is_not_hashed_again_after_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.bin").write_bytes(b"A" * 100_000)
    cache = HashCache(tmp_path / "cache.jsonl")
    scan_folder(root, CHUNKING, cache)
    cache.close()
    _, stats = scan_folder(root, CHUNKING, HashCache(tmp_path / "cache.jsonl"))
    assert (stats.hashed_bytes, stats.reused_bytes) == (0, 100_000)


def test_a_walk_finds_files_in_path_order_and_the_cache_keeps_only_them(tmp_path: Path) -> None:
    names = ["a-b", "a/x", "a/y/z", "a0", "a!", "b", "a/-", "ab/c", "é", "Z"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())
    assert [f.rel for f in walk(tmp_path).files] == sorted(names)
    cache = HashCache(None)
    scan_folder(tmp_path, Chunking(CDC, 4096), cache)
    (tmp_path / "a0").unlink()
    (tmp_path / "a" / "y" / "z").unlink()
    manifest, _ = scan_folder(tmp_path, Chunking(CDC, 4096), cache)
    left = sorted(set(names) - {"a0", "a/y/z"})
    assert [f.path for f in manifest.files] == left and cache.paths() == left


def test_the_cache_packs_its_entries_and_skips_a_journal_line_it_cannot(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "f").write_bytes(b"x" * 5000)
    journal = tmp_path / "h.jsonl"
    cache = HashCache(journal)
    manifest, _ = scan_folder(folder, Chunking(CDC, 4096), cache)
    entry = manifest.files[0]
    cache.close()
    good = journal.read_text()
    journal.write_text(good.replace(entry.chunks[0], "not hex") + good + '{"p": "g", "s": -1}\n')
    again = HashCache(journal)
    assert again.get("f", os.stat(folder / "f"), Chunking(CDC, 4096)) == (entry.chunks, entry.sizes)
    assert again.paths() == ["f"] and len(again) == 1


def test_remembered_files_behind_one_being_hashed_wait_in_a_bounded_queue(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for k in range(40):
        (tmp_path / f"f{k:02d}").write_bytes(b"%d" % k)
    cache = HashCache(None)
    first, _ = scan_folder(tmp_path, Chunking(CDC, 4096), cache)
    (tmp_path / "f00").write_bytes(b"changed")
    longest = 0

    class Watched(deque):  # type: ignore[type-arg]
        def append(self, item: object) -> None:
            nonlocal longest
            super().append(item)
            longest = max(longest, len(self))

    monkeypatch.setattr(scanner, "deque", Watched)
    monkeypatch.setattr(scanner, "_MAX_QUEUED_FILES", 4)
    again, stats = scan_folder(tmp_path, Chunking(CDC, 4096), cache)
    assert stats.hashed_bytes == len(b"changed") and [f.path for f in again.files] == [f.path for f in first.files]
    assert longest <= 5


def test_a_scan_frees_the_walks_columns_as_its_table_fills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At a million files the walk's columns (about 70 bytes a file) beside the table being built
    (about 110) were the peak of a scan: a block of the walk goes once its files are taken."""
    for k in range(100):
        (tmp_path / f"f{k:03d}").write_bytes(b"%d" % k)
    monkeypatch.setattr(folder_walk, "BLOCK", 8)
    walks: list[folder_walk.FoundFiles] = []

    def watched_walk(root: Path) -> folder_walk.Walk:
        out = walk(root)
        walks.append(out.files)
        return out

    held: list[tuple[int, int]] = []      # (files the walk still holds, files in the table)

    class Watched(scanner.TableBuilder):
        def add(self, f: FileEntry) -> None:
            super().add(f)
            held.append((len(walks[-1]), len(self._sizes)))

    monkeypatch.setattr(scanner, "walk", watched_walk)
    monkeypatch.setattr(scanner, "TableBuilder", Watched)
    manifest, _ = scan_folder(tmp_path, Chunking(CDC, 4096), HashCache(None))
    assert len(manifest.files) == 100 and len(held) == 100
    assert all(walked + added <= 100 + 8 for walked, added in held)
    assert held[-1][0] == 0


def test_the_cache_journal_is_compacted_once_it_outgrows_the_entries(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Each change of a remembered file adds a journal line (a hard link's ctime: a staged version
    of a million linked files doubled a 200 MB journal); the scan compacts it past half again."""
    monkeypatch.setattr(hash_cache, "_COMPACT_MIN", 4)
    folder = tmp_path / "f"
    folder.mkdir()
    for k in range(20):
        (folder / f"f{k:02d}").write_bytes(b"%d" % k)
    journal = tmp_path / "cache.jsonl"
    cache = HashCache(journal)
    longest = 0
    for _ in range(6):
        for k in range(20):
            os.chmod(folder / f"f{k:02d}", 0o644)      # a new ctime: hashed again, a line more
        scan_folder(folder, CHUNKING, cache)
        longest = max(longest, len(journal.read_text().splitlines()))
    assert longest <= 20 + 10 + 20            # the live entries, half again, one scan's changes
    cache.close()
    again = HashCache(journal)
    assert again.paths() == [f"f{k:02d}" for k in range(20)]
