"""Drives a StagedStore through versions without a network: each source folder in turn is
scanned, reconciled and fed its missing chunks from the source, as downloads would (also the
staging of benchmarks/activation.py). Run as a process (`python -m tests.integration.stage_driver FOLDER STATE SOURCE...`) so a test can SIGKILL
it at any point of staging or switching."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from lanscatter.core.chunking import CDC, Chunking
from lanscatter.core.manifest import Manifest
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.scanner import scan_folder
from lanscatter.disk.staged_store import StagedStore

CHUNK = Chunking(CDC, 4096)


def source_manifest(src: Path, chunking: Chunking = CHUNK) -> Manifest:
    manifest, _ = scan_folder(src, chunking, HashCache(None))
    return manifest


def feed(store: StagedStore, src: Path) -> float:
    """Every missing chunk, read from `src` and written where the store wants it; the seconds the
    last chunk's verification took (the switch, when it completes a staged version)."""
    m = store.manifest
    assert m is not None
    where = {}
    for f in m.files:
        for _, h, off, length in f.spans():
            where.setdefault(h, (src / f.path, off, length))
    missing = sorted(store.missing_chunks())
    last = 0.0
    for n, h in enumerate(missing):
        target = store.chunk_target(h)
        if target is None:
            continue
        fd, offset, length = target
        path, src_off, _ = where[h]
        with open(path, "rb") as fh:
            os.pwrite(fd, os.pread(fh.fileno(), length, src_off), offset)
        started = time.perf_counter()
        store.chunk_verified(h, fd, offset)
        if n == len(missing) - 1:
            last = time.perf_counter() - started
    return last


def apply(store: StagedStore, src: Path) -> None:
    store.reconcile(source_manifest(src))
    feed(store, src)
    if store.prune_due:
        store.prune()


def main(argv: list[str]) -> int:
    folder, state, *sources = (Path(a) for a in argv)
    store = StagedStore(folder, state)
    try:
        for src in sources:
            apply(store, src)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
