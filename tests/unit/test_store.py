"""MirrorStore against real folders: reconcile, chunk feeding, resume, safety."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from lanscatter.core.chunking import CDC, FIXED, Chunking
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.hashing import hash_bytes
from lanscatter.disk.scanner import scan_folder
from lanscatter.disk.store import MirrorStore

CS = 1024
FIXED_CS = Chunking(FIXED, CS)


def _write(p: Path, data: bytes, mtime: int | None = None, exe: bool = False) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    if exe:
        p.chmod(0o755)
    if mtime is not None:
        os.utime(p, ns=(mtime, mtime))


def _origin(tmp: Path) -> Path:
    src = tmp / "origin"
    _write(src / "a/b/big.bin", os.urandom(3 * CS + 7), 1_600_000_000_000_000_000)
    _write(src / "a/dup.bin", (src / "a/b/big.bin").read_bytes()[:CS])   # same content as chunk 0
    _write(src / "empty.txt", b"", 1_500_000_000_000_000_000)
    _write(src / "run.sh", b"#!/bin/sh\necho hi\n", exe=True)
    (src / "emptydir/inner").mkdir(parents=True)
    return src


def _feed(store: MirrorStore, src: Path) -> None:
    """Deliver every missing chunk from the origin folder as a download would."""
    m = store.manifest
    assert m is not None
    for chunk in sorted(store.missing_chunks()):
        loc = m.locations()[chunk][0]
        data = (src / loc.path).read_bytes()[loc.offset: loc.offset + loc.length]
        assert hash_bytes(data) == chunk
        fd, off, _length = store.chunk_target(chunk)  # type: ignore[misc]
        os.pwrite(fd, data, off)
        store.chunk_verified(chunk, fd, off)


def _tree(root: Path) -> dict[str, tuple[bytes | None, int, bool]]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in files + dirs:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            out[rel] = (p.read_bytes() if p.is_file() else None,
                        st.st_mtime_ns if p.is_file() else 0, bool(st.st_mode & 0o100))
    return out


def test_mirror_from_scratch_is_identical(tmp_path: Path) -> None:
    src = _origin(tmp_path)
    manifest, _ = scan_folder(src, FIXED_CS, HashCache(None))
    store = MirrorStore(tmp_path / "peer", tmp_path / "state")
    store.reconcile(manifest)
    _feed(store, src)
    assert store.complete()
    assert _tree(tmp_path / "peer") == _tree(src)


def test_stale_and_extraneous_content_is_fixed(tmp_path: Path) -> None:
    src = _origin(tmp_path)
    peer = tmp_path / "peer"
    _write(peer / "a/b/big.bin", b"old version")
    _write(peer / "junk/deep/file", b"x")
    _write(peer / "empty.txt/oops", b"a folder where a file belongs")
    os.symlink("/etc", peer / "link")
    _write(peer / "run.sh", b"#!/bin/sh\necho hi\n")      # same content, no exec bit, other mtime
    manifest, _ = scan_folder(src, FIXED_CS, HashCache(None))
    store = MirrorStore(peer, tmp_path / "state")
    stats = store.reconcile(manifest)
    assert stats.kept_files == 1          # run.sh: content kept, metadata fixed
    _feed(store, src)
    assert _tree(peer) == _tree(src)


def test_resume_after_restart_needs_no_redownload(tmp_path: Path) -> None:
    src = _origin(tmp_path)
    manifest, _ = scan_folder(src, FIXED_CS, HashCache(None))
    store = MirrorStore(tmp_path / "peer", tmp_path / "state")
    store.reconcile(manifest)
    first = sorted(store.missing_chunks())[:2]
    for chunk in first:
        loc = manifest.locations()[chunk][0]
        data = (src / loc.path).read_bytes()[loc.offset: loc.offset + loc.length]
        fd, off, _ = store.chunk_target(chunk)  # type: ignore[misc]
        os.pwrite(fd, data, off)
        store.chunk_verified(chunk, fd, off)
    missing_before = store.missing_chunks()
    # No close(): as after SIGKILL.
    again = MirrorStore(tmp_path / "peer", tmp_path / "state")
    again.reconcile(manifest)
    assert again.missing_chunks() == missing_before
    _feed(again, src)
    assert _tree(tmp_path / "peer") == _tree(src)
    # Complete: the journal of part chunks keeps nothing (a million finished files' lines would
    # be read back by the next reconcile).
    assert (tmp_path / "state" / "parts.jsonl").read_text() == ""


def test_sync_folder_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(Exception, match="is a file"):
        MirrorStore(tmp_path / "f", tmp_path / "state")


def test_a_rotten_chunk_is_forgotten_in_a_part_file_and_in_a_finished_file(tmp_path: Path) -> None:
    src = _origin(tmp_path)
    manifest, _ = scan_folder(src, FIXED_CS, HashCache(None))
    big = manifest.file("a/b/big.bin")
    assert big is not None
    store = MirrorStore(tmp_path / "peer", tmp_path / "state")
    store.reconcile(manifest)
    part_chunk = big.chunks[1]
    fd, off, _ = store.chunk_target(part_chunk)  # type: ignore[misc]
    os.pwrite(fd, (src / "a/b/big.bin").read_bytes()[CS:2 * CS], off)
    store.chunk_verified(part_chunk, fd, off)
    assert store.has(part_chunk)
    # Rotten in the part file: no longer had, and not resumed from the journal by a reconcile.
    assert store.forget_chunks({part_chunk}) == ["a/b/big.bin"]
    assert not store.has(part_chunk)
    store.reconcile(manifest)
    assert part_chunk in store.missing_chunks()
    _feed(store, src)
    assert _tree(tmp_path / "peer") == _tree(src)
    # Rotten in a finished file, under the same size and mtime: read again, only that chunk missing.
    path = tmp_path / "peer" / "run.sh"
    st = path.stat()
    path.write_bytes(b"#!/bin/sh\necho HI\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    run = manifest.file("run.sh")
    assert run is not None
    assert store.forget_chunks(set(run.chunks)) == ["run.sh"]
    assert not store.has(run.chunks[0])
    store.reconcile(manifest)
    assert store.missing_chunks() == set(run.chunks)
    _feed(store, src)
    assert _tree(tmp_path / "peer") == _tree(src)


@pytest.mark.parametrize("second_size", [8192, 32768])
def test_a_new_version_with_variable_chunks_copies_what_the_folder_holds(tmp_path: Path,
                                                                          second_size: int) -> None:
    """An insertion near the start of a file: only the chunks around it are missing, every other
    one is copied from the version in place, even across a change of the target size."""
    src = tmp_path / "origin"
    data = os.urandom(1_000_000)
    _write(src / "big.bin", data)
    _write(src / "moved/other.bin", data[500_000:])
    first, _ = scan_folder(src, Chunking(CDC, 8192), HashCache(None))
    store = MirrorStore(tmp_path / "peer", tmp_path / "state")
    store.reconcile(first)
    _feed(store, src)
    assert store.complete()
    _write(src / "big.bin", data[:1000] + b"inserted!" + data[1000:])
    os.rename(src / "moved/other.bin", src / "renamed.bin")
    second, _ = scan_folder(src, Chunking(CDC, second_size), HashCache(None))
    stats = store.reconcile(second)
    missing = store.missing_chunks()
    table = dict(second.chunk_table())
    assert sum(table[h] for h in missing) <= 4 * second_size * 2
    assert stats.copied_chunks >= len(second.chunk_table()) - len(missing) - 1
    _feed(store, src)
    assert store.complete()
    assert _tree(tmp_path / "peer") == _tree(src)


def test_a_version_copied_locally_whole_holds_no_descriptor_a_file(tmp_path: Path) -> None:
    """Every file of the version is in the folder under another name: each is copied locally and
    completed, with the process allowed far fewer descriptors than there are files."""
    src, mirror = tmp_path / "origin", tmp_path / "mirror"
    for k in range(300):
        _write(src / f"new/f{k:03d}", str(k).encode() * 50)
        _write(mirror / f"old/f{k:03d}", str(k).encode() * 50)
    m, _ = scan_folder(src, FIXED_CS, HashCache(tmp_path / "origin-hashes.jsonl"))
    store = MirrorStore(mirror, tmp_path / "state")
    scan_folder(mirror, FIXED_CS, store.cache)         # (hashed beforehand: the scan opens files in bulk)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 100, hard))
    try:
        stats = store.reconcile(m)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        store.close()
    assert stats.copied_chunks == 300 and store.complete()
    assert (mirror / "new/f123").read_bytes() == b"123" * 50 and not (mirror / "old").exists()
