"""The hash cache's sorted columns and overlay against a plain dict: any order of puts, changes of
chunk count and forgets, across merges and a reload of the journal, remembers what the dict does."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lanscatter.core.chunking import CDC, FIXED, Chunking
from lanscatter.disk import hash_cache
from lanscatter.disk.hash_cache import FileStat, HashCache

CDC_4K, FIXED_1K = Chunking(CDC, 4096), Chunking(FIXED, 1024)


def _hashes(rng: random.Random, n: int) -> tuple[str, ...]:
    return tuple(rng.randbytes(32).hex() for _ in range(n))


def test_rows_and_overlay_remember_what_a_dict_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hash_cache, "_MERGE_MIN", 8)      # many merges in a small test
    rng = random.Random(7)
    journal = tmp_path / "h.jsonl"
    cache = HashCache(journal)
    model: dict[str, tuple[FileStat, Chunking, tuple[str, ...], tuple[int, ...]]] = {}
    names = [f"d{k % 7}/f{k:03d}é" for k in range(300)]
    for step in range(3000):
        rel = rng.choice(names)
        if rng.random() < 0.2:
            cache.forget(rel)
            model.pop(rel, None)
            continue
        n = rng.choice((0, 1, 1, 1, 2, 3))
        sizes = tuple(rng.randrange(1, 5000) for _ in range(n))
        st = FileStat(sum(sizes), rng.randrange(2**62), rng.randrange(2**64), step, 0o644)
        chunking = rng.choice((CDC_4K, FIXED_1K))
        chunks = _hashes(rng, n)
        cache.put(rel, st, chunking, chunks, sizes)
        model[rel] = (st, chunking, chunks, sizes)
        if step % 250 == 125:           # mid-run: rows forgotten and an overlay, asked in path order
            for r in sorted(model):
                assert cache.get(r, model[r][0], model[r][1]) == model[r][2:]
                assert cache.remembers(r, model[r][0], model[r][1])
                assert not cache.remembers(r, model[r][0]._replace(st_size=model[r][0].st_size + 1), model[r][1])
            for r in sorted(set(names) - set(model)):
                assert cache.get(r, FileStat(0, 0, 0, 0, 0), CDC_4K) is None
                assert not cache.remembers(r, FileStat(0, 0, 0, 0, 0), CDC_4K)
        if step % 500 == 0:
            kept = sorted(r for r in model if rng.random() < 0.9)
            cache.retain_sorted(kept)
            model = {r: model[r] for r in kept}
            cache.compact()                 # (a retain is not journaled: the next scan retains again)

    def check(c: HashCache) -> None:
        assert c.paths() == sorted(model) and len(c) == len(model)
        for rel, (st, chunking, chunks, sizes) in model.items():
            assert c.get(rel, st, chunking) == (chunks, sizes)
            assert c.get(rel, st._replace(st_ctime_ns=st.st_ctime_ns + 1), chunking) is None
            assert c.get(rel, st, CDC_4K if chunking == FIXED_1K else FIXED_1K) is None
            # `remembers` answers as `get` would
            assert c.remembers(rel, st, chunking)
            for changed in (st._replace(st_ctime_ns=st.st_ctime_ns + 1), st._replace(st_mtime_ns=st.st_mtime_ns + 1),
                            st._replace(st_ino=st.st_ino ^ 1), st._replace(st_size=st.st_size + 1)):
                assert not c.remembers(rel, changed, chunking)
            assert not c.remembers(rel, st, CDC_4K if chunking == FIXED_1K else FIXED_1K)
        assert c.get("not/there", FileStat(0, 0, 0, 0, 0), CDC_4K) is None
        assert not c.remembers("not/there", FileStat(0, 0, 0, 0, 0), CDC_4K)
        assert not c.remembers(next(iter(model)), model[next(iter(model))][0], Chunking(CDC, 12345))  # a key never seen
        for rel, (st, chunking, chunks, sizes) in sorted(model.items()):     # in path order, as a scan asks
            assert c.get(rel, st, chunking) == (chunks, sizes)
            assert c.get(rel + "~", st, chunking) is None                    # (a path between rows)

    check(cache)
    cache.close()
    check(HashCache(journal))           # the journal replayed (puts, forgets) into the same table


def test_a_put_out_of_range_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    cache = HashCache(tmp_path / "h.jsonl")
    st = FileStat(10, 1, 2, 3, 0o644)
    with pytest.raises(ValueError):
        cache.put("f", st, CDC_4K, ("ab" * 16,), (10,))      # a hash of 16 bytes
    with pytest.raises(ValueError):
        cache.put("f", st, CDC_4K, ("a" * 64,), (9,))         # sizes that miss a byte
    assert cache.paths() == []


def test_a_scan_missing_a_few_files_forgets_them_without_copying_the_rows(tmp_path: Path) -> None:
    """A staging scan misses the few files the new version changes: they are forgotten at once,
    their rows merged out later with other changes (a merge copies every column: 105 MB at a
    million files, the peak of a peer's second version)."""
    rng = random.Random(3)
    cache = HashCache(tmp_path / "h.jsonl")
    names = [f"f{k:04d}" for k in range(1000)]
    remembered = {}
    for k, rel in enumerate(names):
        st = FileStat(10, k, k, k, 0o644)
        remembered[rel] = (st, _hashes(rng, 1))
        cache.put(rel, st, CDC_4K, remembered[rel][1], (10,))
    rows = cache._rows
    cache.retain_sorted(rel for k, rel in enumerate(names) if k % 100)
    assert cache._rows is rows                     # not copied for ten rows
    for k, rel in enumerate(names):
        st, chunks = remembered[rel]
        assert cache.get(rel, st, CDC_4K) == (None if k % 100 == 0 else (chunks, (10,)))
    assert cache.paths() == [rel for k, rel in enumerate(names) if k % 100]
