"""Chunk boundaries: content-defined cuts survive insertions, sizes stay in bounds, auto sizes."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from lanscatter.core.chunking import (
    AUTO,
    AUTO_MAX_SIZE,
    AUTO_MIN_SIZE,
    CDC,
    FIXED,
    CdcCutter,
    Chunking,
    auto_chunk_size,
    chunking_problem,
    sizes_problem,
)
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.hashing import hash_bytes
from lanscatter.disk.scanner import scan_folder

MIB = 1 << 20


def _cut(data: bytes, target: int, window: int | None = None) -> list[bytes]:
    """Chunks of `data`, fed to the cutter in windows of `window` bytes (all at once: None)."""
    cutter = CdcCutter(target)
    step = window or len(data)
    chunks: list[bytes] = []
    held = b""
    piece_start = 0
    pos = 0
    current = bytearray()
    while True:
        buf = held + data[pos:pos + step]
        pos += step
        eof = pos >= len(data)
        at = 0
        for n in cutter.cut(memoryview(buf), eof):
            if n:
                current += buf[at:at + n]
                at += n
            else:
                chunks.append(bytes(current))
                current.clear()
        held = buf[at:]
        piece_start += at
        if eof:
            assert not held and not current
            return chunks


def _data(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.mark.parametrize("target", [4096, 64 * 1024])
def test_an_insertion_changes_about_one_chunk(target: int) -> None:
    """Mostly the chunk it lands in; now and then a cut it makes or removes shifts one or two more
    (measured: 1 chunk in 92-100 % of insertions, at most 4)."""
    data = _data(60 * target)
    before = {hash_bytes(c) for c in _cut(data, target)}
    rnd = random.Random(7)
    changed = []
    for _ in range(40):
        at, n = rnd.randrange(len(data)), rnd.randint(1, 100)
        after = [hash_bytes(c) for c in _cut(data[:at] + _data(n, rnd.randrange(1 << 30)) + data[at:], target)]
        changed.append(len([h for h in after if h not in before]))
    assert max(changed) <= 4
    assert sum(1 for c in changed if c <= 2) >= 0.9 * len(changed)
    assert sum(changed) / len(changed) <= 1.3


def test_a_deletion_changes_at_most_two_chunks() -> None:
    data = _data(200_000)
    before = {hash_bytes(c) for c in _cut(data, 4096)}
    after = [hash_bytes(c) for c in _cut(data[:50_000] + data[50_060:], 4096)]
    assert len([h for h in after if h not in before]) <= 2


@pytest.mark.parametrize("target", [4096, 1 << 16, 8 * MIB])
def test_sizes_stay_within_min_and_max_and_pass_validation(target: int) -> None:
    size = 40 * MIB if target > MIB else 60 * target
    data = _data(size, 3)
    chunks = _cut(data, target)
    lengths = tuple(len(c) for c in chunks)
    chunking = Chunking(CDC, target)
    assert b"".join(chunks) == data
    assert all(target // 4 <= n <= 4 * target for n in lengths[:-1]) and 0 < lengths[-1] <= 4 * target
    assert sizes_problem(chunking, size, lengths) is None
    assert 0.5 * target < size / len(lengths) < 2 * target


def test_zeros_are_cut_at_the_maximum() -> None:
    lengths = [len(c) for c in _cut(bytes(100_000), 4096)]
    assert lengths[:-1] == [4 * 4096] * (len(lengths) - 1)


@pytest.mark.parametrize("window", [3 * 16384 * 2, 100_001])
def test_the_cuts_do_not_depend_on_how_the_bytes_are_fed(window: int) -> None:
    data = _data(2_000_000, 5)
    assert _cut(data, 4096, max(window, CdcCutter(4096).window_min)) == _cut(data, 4096)


def test_fixed_chunking_keeps_todays_boundaries(tmp_path: Path) -> None:
    data = _data(10 * 4096 + 17)
    (tmp_path / "f").write_bytes(data)
    m, _ = scan_folder(tmp_path, Chunking(FIXED, 4096), HashCache(None))
    entry = m.file("f")
    assert entry is not None and m.chunking_kind == FIXED
    assert entry.sizes == (4096,) * 10 + (17,)
    assert entry.chunks == tuple(hash_bytes(data[k * 4096:(k + 1) * 4096]) for k in range(11))


def test_the_scan_uses_the_chunking_asked_for_and_the_cache_keys_on_it(tmp_path: Path) -> None:
    data = _data(300_000)
    (tmp_path / "f").write_bytes(data)
    cache = HashCache(tmp_path.parent / "cache.jsonl")
    cdc, _ = scan_folder(tmp_path, Chunking(CDC, 8192), cache)
    fixed, stats = scan_folder(tmp_path, Chunking(FIXED, 8192), cache)
    assert stats.hashed_bytes == len(data)             # remembered hashes of another chunking unused
    assert cdc.file("f") != fixed.file("f")
    again, stats = scan_folder(tmp_path, Chunking(CDC, 8192), HashCache(tmp_path.parent / "cache.jsonl"))
    assert stats.hashed_bytes == len(data)             # the cache keeps one chunking per file
    _, stats = scan_folder(tmp_path, Chunking(CDC, 8192), HashCache(tmp_path.parent / "cache.jsonl"))
    assert stats.hashed_bytes == 0 and again == cdc
    entry = cdc.file("f")
    assert entry is not None
    assert all(hash_bytes(data[off:off + n]) == h for _, h, off, n in entry.spans())


def test_auto_chunk_size_of_the_scan(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(_data(100_000))
    m, _ = scan_folder(tmp_path, Chunking(CDC, AUTO), HashCache(None))
    assert m.chunk_size == AUTO_MIN_SIZE
    m, _ = scan_folder(tmp_path, Chunking(CDC, AUTO), HashCache(None), keep_size=4 * MIB)
    assert m.chunk_size == AUTO_MIN_SIZE              # 4 MiB would give far fewer than 1000 chunks


@pytest.mark.parametrize(("total", "size"), [
    (0, MIB), (200 * 10**6, MIB), (2 * 10**9, MIB), (10 * 2**30, 4 * MIB), (100 * 2**30, 32 * MIB),
    (2 * 10**12, 64 * MIB), (10**15, 64 * MIB),
])
def test_auto_chunk_size(total: int, size: int) -> None:
    assert auto_chunk_size(total) == size
    assert AUTO_MIN_SIZE <= size <= AUTO_MAX_SIZE
    if AUTO_MIN_SIZE < size < AUTO_MAX_SIZE:
        assert 2000 <= total / size < 4000


def test_auto_keeps_a_size_in_use_while_it_fits() -> None:
    assert auto_chunk_size(10 * 2**30, 8 * MIB) == 8 * MIB       # 1280 chunks: still fine
    assert auto_chunk_size(10 * 2**30, 2 * MIB) == 2 * MIB       # 5120 chunks
    assert auto_chunk_size(10 * 2**30, 64 * MIB) == 4 * MIB      # 160 chunks: too few, chosen again
    assert auto_chunk_size(100 * 2**30, MIB) == 32 * MIB         # 102400 chunks: too many
    assert auto_chunk_size(10 * 2**30, 3 * MIB) == 4 * MIB       # not a power of two: chosen again


@pytest.mark.parametrize(("kind", "size", "ok"), [
    (CDC, 1 << 20, True), (CDC, 3 << 20, False), (CDC, 1024, False), (FIXED, 3 << 20, True),
    (FIXED, 1, True), ("rolling", 1 << 20, False), (CDC, 2**31, False), (FIXED, True, False),
])
def test_chunking_problem(kind: str, size: int, ok: bool) -> None:
    assert (chunking_problem(kind, size) is None) == ok


def _runs_data(seed: int) -> bytes:
    """Random stretches between long runs of equal bytes and of a short repeated pattern, where
    cutters started at different offsets cut at different places (the maximum from each start)."""
    rnd = random.Random(seed)
    parts = []
    for _ in range(12):
        parts.append(rnd.randbytes(rnd.randint(1, 60_000)))
        parts.append(rnd.choice([b"\0", b"\xff", b"abcdefg"]) * rnd.randint(1, 30_000))
    return b"".join(parts)


@pytest.mark.parametrize(("data", "target", "segments"), [
    (_data(1_500_000, 11), 4096, [5_000, 16_384, 100_000, 333_333]),
    (_runs_data(12), 4096, [7_000, 40_000, 150_000]),
    (bytes(400_000), 4096, [10_000, 65_536]),
    (_data(3 * MIB, 13) + bytes(2 * MIB) + _data(3 * MIB, 14), 1 << 16, [300_000, MIB]),
], ids=["random", "runs", "zeros", "zero-gap"])
def test_cutting_in_segments_gives_exactly_the_sequential_chunks(
        tmp_path: Path, data: bytes, target: int, segments: list[int]) -> None:
    (tmp_path / "f").write_bytes(data)
    expected = _cut(data, target)
    for segment in segments:
        m, _ = scan_folder(tmp_path, Chunking(CDC, target), HashCache(None), segment=segment, workers=3)
        entry = m.file("f")
        assert entry is not None
        assert entry.sizes == tuple(len(c) for c in expected), segment
        assert entry.chunks == tuple(hash_bytes(c) for c in expected)


def test_grouped_chunks_cut_in_segments_are_the_sequential_ones(tmp_path: Path) -> None:
    data = _data(40 * MIB, 15) + bytes(40 * MIB) + _data(20 * MIB, 16)
    (tmp_path / "f").write_bytes(data)
    expected = tuple(len(c) for c in _cut(data, 8 * MIB))
    for segment in (5 * MIB, 17 * MIB):
        m, _ = scan_folder(tmp_path, Chunking(CDC, 8 * MIB), HashCache(None), segment=segment)
        entry = m.file("f")
        assert entry is not None and entry.sizes == expected, segment


def test_progress_counts_each_byte_once_when_cut_in_segments(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(_data(1_000_000, 17))
    seen: list[tuple[int, int]] = []
    scan_folder(tmp_path, Chunking(CDC, 4096), HashCache(None), segment=30_000,
                progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (1_000_000, 1_000_000)
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(seen))
