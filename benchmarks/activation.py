#!/usr/bin/env python3
"""Host activation: the switch time of a large version and the disk a new version costs.

    .venv/bin/python benchmarks/activation.py [--files 100000] [--changed 10] [--changed-size 8MiB]
                                              [--versions 3]

Builds version 1 (FILES small files in 1,000 folders), syncs it into a host folder with the
staged store (no network: chunks are read from the source as downloads would write them), then
versions 2..VERSIONS, in each of which CHANGED files are rewritten with CHANGED_SIZE new bytes,
and prints for each:

- switch: from the call that verifies the version's last chunk to its return, with the folder
  already showing the new version (the last file's rename into place and its hash-cache line, the
  index written, the symlink replaced);
- extra disk: the blocks of every inode (files and folders) of the new version that the previous
  one does not share, against the changed bytes; file data and folder entries reported apart.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))    # the repository, for tests.integration
from lanscatter.core.chunking import FIXED, Chunking
from lanscatter.core.sizes import format_bytes, parse_size
from lanscatter.disk.staged_store import StagedStore
from tests.integration.stage_driver import feed, source_manifest

CHUNKING = Chunking(FIXED, 16 * 2**20)


def _make(src: Path, files: int, changed: int, changed_size: int, version: int) -> int:
    """Write a version; returns the bytes of its changed files."""
    changed_bytes = 0
    for i in range(files):
        p = src / f"d{i % 1000:03d}" / f"f{i:06d}.dat"
        p.parent.mkdir(parents=True, exist_ok=True)
        if i < changed:
            data = os.urandom(changed_size) if version > 1 else b"v1 %d\n" % i * 64
            changed_bytes += len(data)
        else:
            data = b"file %d\n" % i * 200
        p.write_bytes(data)
        os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000 + (version if i < changed else 0)))
    return changed_bytes


def _sync(store: StagedStore, src: Path) -> float:
    """Reconcile and feed every missing chunk; the seconds the last chunk's verification took."""
    store.reconcile(source_manifest(src, CHUNKING))
    return feed(store, src)


def _inodes(root: Path) -> dict[int, tuple[int, bool]]:
    """inode -> (allocated bytes, is a folder) of everything under root, root included."""
    out = {os.lstat(root).st_ino: (os.lstat(root).st_blocks * 512, True)}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            st = os.lstat(os.path.join(dirpath, name))
            out[st.st_ino] = (st.st_blocks * 512, name in dirs)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--changed", type=int, default=10)
    ap.add_argument("--changed-size", type=parse_size, default=8 * 2**20)
    ap.add_argument("--versions", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="where to work (default a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        t = Path(tmp)
        v1 = t / "v1"
        _make(v1, args.files, args.changed, args.changed_size, 1)
        store = StagedStore(t / "host" / "data", t / "state")
        started = time.perf_counter()
        _sync(store, v1)
        print(f"version of {args.files} files: first sync {time.perf_counter() - started:.1f} s")
        try:
            for n in range(2, args.versions + 1):
                src = t / f"v{n}"
                changed = _make(src, args.files, args.changed, args.changed_size, n)
                old = _inodes(store.versions.active_root() or t)
                started = time.perf_counter()
                switch = _sync(store, src)
                staged = time.perf_counter() - started
                new_root = store.versions.active_root()
                assert new_root is not None and (t / "host" / "data").resolve() == new_root
                new = _inodes(new_root)
                extra_files = sum(b for ino, (b, d) in new.items() if ino not in old and not d)
                extra_dirs = sum(b for ino, (b, d) in new.items() if ino not in old and d)
                print(f"version {n}: {args.changed} files changed, {format_bytes(changed)}; staged in {staged:.1f} s; "
                      f"switch {switch * 1000:.1f} ms; extra disk: files {format_bytes(extra_files)} "
                      f"({extra_files / changed:.3f} x changed bytes), folders {format_bytes(extra_dirs)} "
                      f"(total {(extra_files + extra_dirs) / changed:.3f} x)", flush=True)
                if store.prune_due:
                    store.prune()
                shutil.rmtree(t / f"v{n - 1}")
        finally:
            store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
