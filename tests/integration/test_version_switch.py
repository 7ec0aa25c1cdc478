"""Host activation against real folders: a reader never sees a mix of two versions across 20
switches; a process SIGKILLed at random points of staging or switching leaves a complete version
and its restart finishes; unchanged files are shared, old versions pruned, rollback moves no data."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lanscatter.disk.staged_store import StagedStore
from lanscatter.disk.versions_dir import VersionsDir
from tests.integration.nodes import tree_state
from tests.integration.stage_driver import apply

FILES = 40


def _version(root: Path, stamp: int, *, changed: int = FILES) -> Path:
    """A source folder whose STAMP file and first `changed` files say `stamp` (the rest say 0)."""
    src = root / f"src{stamp}"
    src.mkdir(parents=True)
    (src / "STAMP").write_text(f"{stamp}\n")
    for i in range(FILES):
        s = stamp if i < changed else 0
        p = src / f"d{i % 4}" / f"f{i}.txt"
        p.parent.mkdir(exist_ok=True)
        p.write_text(f"stamp: {s}\n" + f"file {i} of version {s}\n" * (50 + i))
        os.utime(p, ns=(1_600_000_000_000_000_000 + s, 1_600_000_000_000_000_000 + s))
    return src


def _read_version(folder: Path) -> tuple[int, set[str]]:
    """The STAMP and every file's stamp, all read through one open of the folder (as a program
    that resolves the folder once does)."""
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        def read(rel: str) -> str:
            fd = os.open(rel, os.O_RDONLY, dir_fd=dfd)
            try:
                return os.read(fd, 64).decode()
            finally:
                os.close(fd)
        stamp = int(read("STAMP"))
        lines = {read(f"d{i % 4}/f{i}.txt").split("\n", 1)[0] for i in range(FILES)}
        return stamp, lines
    finally:
        os.close(dfd)


def test_a_reader_never_sees_a_mixed_version_during_20_switches(tmp_path: Path) -> None:
    folder = tmp_path / "host" / "data"
    store = StagedStore(folder, tmp_path / "state", keep=2)
    apply(store, _version(tmp_path, 1))
    seen: list[tuple[int, set[str]]] = []
    problems: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                stamp, lines = _read_version(folder)
            except OSError as exc:
                problems.append(f"read failed: {exc}")
                continue
            seen.append((stamp, lines))
            if lines != {f"stamp: {stamp}"}:
                problems.append(f"version {stamp} mixed with {sorted(lines)}")

    t = threading.Thread(target=reader)
    t.start()
    try:
        for stamp in range(2, 22):
            apply(store, _version(tmp_path, stamp))
            time.sleep(0.01)
    finally:
        stop.set()
        t.join(timeout=30)
        store.close()
    assert not problems, problems[:5]
    assert len({s for s, _ in seen}) >= 10          # the reader really ran across the switches
    assert _read_version(folder) == (21, {"stamp: 21"})


def test_unchanged_files_are_shared_and_old_versions_pruned(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    # A host synced before versions existed: its plain folder becomes a version without a copy.
    v1 = _version(tmp_path, 1, changed=0)
    subprocess.run(["cp", "-a", str(v1), str(folder)], check=True)
    inode = (folder / "d0" / "f0.txt").stat().st_ino
    store = StagedStore(folder, tmp_path / "state", keep=2)
    try:
        apply(store, v1)
        assert folder.is_symlink() and (folder / "d0" / "f0.txt").stat().st_ino == inode
        first = os.readlink(folder)
        apply(store, _version(tmp_path, 2, changed=3))      # 3 of 40 files change
        assert tree_state(folder) == tree_state(tmp_path / "src2")
        old, new = folder.parent / first, folder.resolve()
        assert old != new
        assert (old / "d3" / "f39.txt").stat().st_ino == (new / "d3" / "f39.txt").stat().st_ino
        assert (old / "d0" / "f0.txt").stat().st_ino != (new / "d0" / "f0.txt").stat().st_ino
        apply(store, _version(tmp_path, 3, changed=3))
        versions = store.versions.home
        assert sorted(p.name for p in versions.iterdir() if p.is_dir()) == sorted(
            [folder.resolve().name, new.name])                   # keep 2: the adopted one dropped
        # Rollback: the symlink goes back, no data moves, and the host is held there.
        target = store.versions.rollback(None, time.time())
        assert folder.resolve() == new and target.name == new.name
        assert tree_state(folder) == tree_state(tmp_path / "src2")
        apply(store, tmp_path / "src3")                          # the generation rolled back from
        assert folder.resolve() == new
        apply(store, _version(tmp_path, 4, changed=3))           # a new one goes live
        assert tree_state(folder) == tree_state(tmp_path / "src4")
    finally:
        store.close()


@pytest.mark.chaos
def test_sigkill_at_random_points_leaves_a_complete_version(tmp_path: Path) -> None:
    sources = [_version(tmp_path, s, changed=FILES if s % 2 else 5) for s in range(1, 7)]
    states = {str(s): tree_state(s) for s in sources}
    folder, state = tmp_path / "data", tmp_path / "state"
    # The host starts as a plain folder holding version 1: the kills also hit its migration.
    subprocess.run(["cp", "-a", str(sources[0]), str(folder)], check=True)
    argv = [sys.executable, "-m", "tests.integration.stage_driver", str(folder), str(state),
            *map(str, sources)]
    rng = random.Random(7)
    kills = 0
    deadline = time.monotonic() + 120
    while kills < 25 and time.monotonic() < deadline:
        proc = subprocess.Popen(argv)
        time.sleep(rng.uniform(0.05, 1.2))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
        if not folder.exists():
            # Killed between the two renames of the migration: what the restart does first.
            VersionsDir(folder).recover()
        assert tree_state(folder) in states.values(), f"after kill {kills}: the folder shows no complete version"
    assert kills >= 10
    subprocess.run(argv, check=True, timeout=120)
    assert tree_state(folder) == states[str(sources[-1])]
