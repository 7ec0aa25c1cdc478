"""Small files are hashed by the scanning thread itself, larger ones on the pool: both give the
same manifest, and a small file that fails while being read is skipped like any other. A scan
writes the hash cache's journal in batches, and leaves all of it in the file when it returns."""

from __future__ import annotations

import os
from array import array
from itertools import accumulate
from pathlib import Path

import blake3
import pytest

from lanscatter.core.chunking import CDC, FIXED, Chunking
from lanscatter.disk import hash_cache, scanner
from lanscatter.disk.cache_rows import Fields, Rows
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.scanner import scan_folder

SIZES = (0, 1, 4096, scanner._INLINE_MAX - 1, scanner._INLINE_MAX, scanner._INLINE_MAX + 1, 300_000)


def _folder(root: Path) -> dict[str, bytes]:
    data = {f"d{i % 3}/f{i:02d}.bin": os.urandom(size) for i, size in enumerate(SIZES * 3)}
    for rel, body in data.items():
        (root / rel).parent.mkdir(exist_ok=True)
        (root / rel).write_bytes(body)
    return data


@pytest.mark.parametrize("kind", [CDC, FIXED])
def test_small_files_hashed_inline_give_the_manifest_the_pool_gives(tmp_path: Path, kind: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data = _folder(tmp_path)
    chunking = Chunking(kind, 64 * 1024)
    inline, stats = scan_folder(tmp_path, chunking, HashCache(None))
    monkeypatch.setattr(scanner, "_INLINE_MAX", -1)          # every file through the pool
    pooled, _ = scan_folder(tmp_path, chunking, HashCache(None))
    assert list(inline.files) == list(pooled.files)
    assert stats.files == len(data) and stats.skipped == ()
    for f in inline.files:
        body = data[f.path]
        assert sum(f.sizes) == len(body)
        assert list(f.chunks) == [blake3.blake3(body[a:a + n]).hexdigest()
                                  for a, n in zip(accumulate(f.sizes, initial=0), f.sizes)]


def test_a_small_file_failing_while_read_is_skipped_and_the_rest_scanned(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.txt").write_bytes(b"first")
    (tmp_path / "b.txt").write_bytes(b"shrinks under the reader")
    (tmp_path / "c.txt").write_bytes(b"last")
    real = os.preadv
    b_size = (tmp_path / "b.txt").stat().st_size

    def preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        if os.fstat(fd).st_size == b_size:
            return 0                    # as if the file had been cut short after the walk
        return real(fd, buffers, offset)

    monkeypatch.setattr(scanner.os, "preadv", preadv)
    open_before = len(os.listdir("/proc/self/fd"))
    manifest, stats = scan_folder(tmp_path, Chunking(CDC, 64 * 1024), HashCache(None))
    assert [f.path for f in manifest.files] == ["a.txt", "c.txt"]
    assert stats.skipped == ("b.txt",)
    assert len(os.listdir("/proc/self/fd")) == open_before      # the failed file's descriptor closed


def test_rows_find_a_path_after_every_row_without_a_search() -> None:
    rows = Rows()
    f = _fields()
    for rel in ("a", "b/c", "d"):
        rows.append(rel, f)
    assert [rows.find(r) for r in ("", "a", "aa", "b/c", "c", "d", "e")] == [0, 0, 1, 1, 2, 2, 3]
    assert rows.find("a", lo=1) == 1 and rows.find("z", lo=3) == 3 and Rows().find("x") == 0


def _fields() -> Fields:   # (any one row's fields will do: find reads paths only)
    return Fields(0, 1, 0, 0, array("q", [1]).tobytes(), bytes(32))


def test_a_scan_leaves_every_entry_in_the_journal_when_it_returns(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    folder, journal = tmp_path / "folder", tmp_path / "state" / "hashes.jsonl"
    folder.mkdir()
    journal.parent.mkdir()
    data = _folder(folder)
    monkeypatch.setattr(hash_cache, "BATCH_FLUSH_S", 1e9)      # nothing reaches the file on time
    cache = HashCache(journal)
    chunking = Chunking(CDC, 64 * 1024)
    manifest, _ = scan_folder(folder, chunking, cache)
    # Read back by another cache while the first is still open (as after a SIGKILL): all there.
    again = HashCache(journal)
    for f in manifest.files:
        assert again.get(f.path, os.stat(folder / f.path), chunking) == (f.chunks, f.sizes)
    assert len(again) == len(data)


def test_outside_a_scan_an_entry_is_in_the_journal_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hash_cache, "BATCH_FLUSH_S", 1e9)
    journal = tmp_path / "hashes.jsonl"
    (tmp_path / "a.txt").write_bytes(b"abc")
    chunking = Chunking(CDC, 64 * 1024)
    cache = HashCache(journal)
    with cache.batched():
        pass
    cache.put("a.txt", os.stat(tmp_path / "a.txt"), chunking, (blake3.blake3(b"abc").hexdigest(),), (3,))
    assert HashCache(journal).get("a.txt", os.stat(tmp_path / "a.txt"), chunking) is not None
