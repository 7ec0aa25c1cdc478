"""Chunks by number: the hash table's index (`HashTable.find`, `Numbering`), the chunk table and
index read from it, each chunk's places through the manifest's tables, and a mirror's holdings
kept as positions in those tables (`MirrorStore.locate`, `held_*`, `Places`)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

import lanscatter.core.manifest as manifest_module
from lanscatter.core.chunking import FIXED, Chunking
from lanscatter.core.file_table import FileEntry, FileTable, Numbering
from lanscatter.core.manifest import ChunkLocation, Manifest, build_manifest
from lanscatter.disk import scanner
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.hashing import hash_bytes
from lanscatter.disk.scanner import scan_folder
from lanscatter.disk.staged_store import StagedStore
from lanscatter.disk.store import Location, MirrorStore, Places

CS = 1024
H = [hash_bytes(str(k).encode()) for k in range(200)]


def test_numbering_gives_each_hash_one_number_in_order_and_find_returns_it() -> None:
    numbering = Numbering()
    assert [numbering.number(h) for h in H] == list(range(200))      # grown past its first slots
    assert [numbering.number(h) for h in reversed(H)] == list(range(199, -1, -1))
    table = numbering.hashes()
    assert table.blob is not None and [table[d] for d in range(200)] == H
    assert all(table.find(h) == d for d, h in enumerate(H))
    assert table.find(hash_bytes(b"absent")) is None
    assert table.find(H[3].upper()) is None and table.find("not a hash") is None


def test_hashes_that_are_not_hex_digests_are_numbered_as_texts() -> None:
    numbering = Numbering()
    assert [numbering.number(h) for h in (H[0], "hand-made", H[1], H[0], "hand-made")] == [0, 1, 2, 0, 1]
    table = numbering.hashes()
    assert table.blob is None and [table[d] for d in range(3)] == [H[0], "hand-made", H[1]]
    assert (table.find("hand-made"), table.find(H[1]), table.find("other")) == (1, 2, None)


def _manifest() -> Manifest:
    files = [FileEntry("a", 30, 1, False, (H[0], H[1]), (20, 10)),
             FileEntry("b", 20, 1, False, (H[0],), (20,)),
             FileEntry("c", 15, 1, False, (H[2], H[1]), (5, 10))]
    return build_manifest(20, FileTable.of_entries(files), [])


def test_chunk_table_and_index_read_from_the_hash_table() -> None:
    m = _manifest()
    table = m.chunk_table()
    assert table == ((H[0], 20), (H[1], 10), (H[2], 5)) and len(table) == 3
    assert table[-1] == (H[2], 5) and table[1:] == ((H[1], 10), (H[2], 5))
    assert list(table.sizes) == [20, 10, 5] and m.total_bytes == 35
    index = m.chunk_index()
    assert dict(index) == {H[0]: 0, H[1]: 1, H[2]: 2}
    assert H[2] in index and H[3] not in index and index.get(H[3]) is None and 7 not in index
    assert index.get(H[3], -1) == -1 and index.get(["unhashable"]) is None
    with pytest.raises(KeyError):
        index[H[3]]


def test_a_chunk_index_remembers_a_bounded_number_of_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest_module, "_RECENT_LOOKUPS", 2)
    m = _manifest()
    index = m.chunk_index()
    for _ in range(3):                     # past the bound, lookups still find every hash
        assert [index[h] for h in (H[0], H[1], H[2], H[1])] == [0, 1, 2, 1]
        assert H[3] not in index
        assert len(index._recent) <= 2     # type: ignore[attr-defined]


def test_locations_walk_each_chunks_references() -> None:
    m = _manifest()
    places = m.locations()
    assert places[H[1]] == (ChunkLocation("a", 20, 10), ChunkLocation("c", 5, 10))
    assert places.first(H[0]) == ChunkLocation("a", 0, 20) and places.first(H[3]) is None
    assert list(places.refs(0)) == [0, 2] and places.place(4) == (2, 5, 10)
    assert places.get(H[3]) is None and len(places) == 3


def _write(p: Path, data: bytes) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def test_a_mirror_holds_chunks_at_positions_of_the_manifest(tmp_path: Path) -> None:
    src = tmp_path / "origin"
    one, two = os.urandom(CS), os.urandom(CS // 2)
    _write(src / "x/first.bin", one + two)
    _write(src / "x/second.bin", two)
    _write(src / "y/third.bin", one)
    m, _ = scan_folder(src, Chunking(FIXED, CS), HashCache(tmp_path / "origin-hashes.jsonl"))
    store = MirrorStore(tmp_path / "mirror", tmp_path / "state")
    try:
        store.reconcile(m)
        assert (store.held_count(), store.held_bytes(), list(store.held_chunks())) == (0, 0, [])
        assert store.have_bitmap().count == 0 and store.missing_chunks() == {hash_bytes(one), hash_bytes(two)}

        # the first chunk arrives in first.bin's part file, and is copied to third.bin's: read there
        fd, off, _ = store.chunk_target(hash_bytes(one))  # type: ignore[misc]
        os.pwrite(fd, one, off)
        assert store.chunk_verified(hash_bytes(one), fd, off) == ["y/third.bin"]
        part = store.root / "x/first.bin.lsc-part"
        assert store.locate(hash_bytes(one)) == Location(part, 0, CS)
        assert (store.held_count(), store.held_bytes(), list(store.held_chunks())) == (1, CS, [hash_bytes(one)])
        assert store.chunk_target(hash_bytes(one)) is None

        # first.bin completes: its chunks are read from the file itself
        fd, off, _ = store.chunk_target(hash_bytes(two))  # type: ignore[misc]
        os.pwrite(fd, two, off)
        assert sorted(store.chunk_verified(hash_bytes(two), fd, off)) == ["x/first.bin", "x/second.bin"]
        assert store.complete() and store.have_bitmap().count == 2
        assert store.locate(hash_bytes(two)) == Location(store.root / "x/first.bin", CS, CS // 2)
        assert store.held_bytes() == CS + CS // 2 and store.has(hash_bytes(two))

        assert store.forget_chunks({hash_bytes(two)}) == ["x/first.bin", "x/second.bin"]
        assert store.locate(hash_bytes(two)) is None and not store.has(hash_bytes(two))
        assert (store.held_count(), store.held_bytes()) == (1, CS)

        # a scanned folder's chunks as a source of local copies: the first place of each
        assert Places(src, m).get(hash_bytes(one)) == Location(src / "x/first.bin", 0, CS)
        assert Places(src, m).get(hash_bytes(b"absent")) is None
    finally:
        store.close()


def test_a_staged_version_copies_from_unlinked_active_files_and_from_linked_ones(tmp_path: Path) -> None:
    """The active version's linked files are read in the staging folder, the others where they are."""
    kept, gone = os.urandom(CS), os.urandom(CS)
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    for src in (v1, v2):
        _write(src / "kept.bin", kept)
        os.utime(src / "kept.bin", ns=(1, 1))
    _write(v1 / "gone.bin", gone)
    _write(v2 / "from-gone.bin", gone)          # only in an active file not linked
    _write(v2 / "from-kept.bin", kept)          # in an active file linked into the staged version
    store = StagedStore(tmp_path / "folder", tmp_path / "state")
    try:
        for version in (v1, v2):
            m, _ = scan_folder(version, Chunking(FIXED, CS), HashCache(tmp_path / f"{version.name}.jsonl"))
            stats = store.reconcile(m)
            for h in sorted(store.missing_chunks()):
                loc = m.locations().first(h)
                assert loc is not None
                fd, off, _ = store.chunk_target(h)  # type: ignore[misc]
                os.pwrite(fd, (version / loc.path).read_bytes()[loc.offset:loc.offset + loc.length], off)
                store.chunk_verified(h, fd, off)
        assert stats.copied_chunks == 2 and store.complete() and store.missing_chunks() == set()
        folder = store.folder
        assert (folder / "from-gone.bin").read_bytes() == gone and (folder / "from-kept.bin").read_bytes() == kept
        assert not (folder / "gone.bin").exists()
    finally:
        store.close()


def test_the_files_holding_a_chunk_are_found_through_its_references(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk found rotten names the files to read again: through the chunk's references, not a
    walk building every file's entry (a million of them, for one chunk)."""
    src = tmp_path / "src"
    src.mkdir()
    for k in range(30):
        (src / f"f{k:02d}").write_bytes(b"shared" if k in (4, 21) else b"%d" % k)
    m, _ = scan_folder(src, Chunking(FIXED, 1024), HashCache(None))
    store = MirrorStore(tmp_path / "peer", tmp_path / "state")
    try:
        store.reconcile(m)
        monkeypatch.setattr(FileTable, "__iter__", _no_walk)
        monkeypatch.setattr(FileTable, "entry", _no_walk)
        assert store.files_holding({hash_bytes(b"shared"), hash_bytes(b"7"), hash_bytes(b"absent")}) == [
            "f04", "f07", "f21"]
    finally:
        store.close()


def _no_walk(*_: object) -> None:
    raise AssertionError("every file's entry built")


@pytest.mark.parametrize("links", [True, False])
def test_an_adopted_folder_holding_the_version_is_not_described_again_beside_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool) -> None:
    """A peer adopting a folder of a million files that hold the version scanned it into a table
    beside the manifest, twice (the active folder, then the staged one): the peak of its memory.
    The files as the version lists them are only marked; the folder still ends as the version,
    with the active files linked, or copied where a link cannot be made."""
    src = tmp_path / "src"
    src.mkdir()
    for k in range(40):
        _write(src / f"d/f{k:02d}", b"%d" % k)
    m, _ = scan_folder(src, Chunking(FIXED, CS), HashCache(None))
    peer = tmp_path / "peer"
    peer.mkdir()
    shutil.copytree(src / "d", peer / "d", ignore=shutil.ignore_patterns("f39"))   # (copy2: the mtimes)
    _write(peer / "d/stray", b"not in the version")
    described: list[str] = []

    class Counted(scanner.TableBuilder):
        def add(self, f: FileEntry) -> None:
            described.append(f.path)
            super().add(f)

    monkeypatch.setattr(scanner, "TableBuilder", Counted)
    if not links:
        monkeypatch.setattr(os, "link", _no_link)
    store = StagedStore(peer, tmp_path / "state")
    try:
        stats = store.reconcile(m)
        assert described == ["d/stray"]
        assert stats.copied_chunks == (0 if links else 39) and store.missing_chunks() == {hash_bytes(b"39")}
        fd, off, _ = store.chunk_target(hash_bytes(b"39"))  # type: ignore[misc]
        os.pwrite(fd, b"39", off)
        store.chunk_verified(hash_bytes(b"39"), fd, off)
        assert store.complete()
        shown = store.folder / "d"
        assert sorted(p.name for p in shown.iterdir()) == [f"f{k:02d}" for k in range(40)]
        assert all((shown / f"f{k:02d}").read_bytes() == b"%d" % k for k in range(40))
    finally:
        store.close()


def _no_link(*_: object, **__: object) -> None:
    raise PermissionError(errno.EPERM, "no hard links here")
