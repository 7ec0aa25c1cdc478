"""A disk too small for the next version (a small tmpfs, so root only): staging stops with an
error naming the folder and the bytes missing, the active version stays whole, and staging
resumes once space returns, in the store and in a running peer."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanscatter.core.errors import NoSpaceError
from lanscatter.disk.staged_store import StagedStore
from tests.integration.nodes import Cluster, make_tree, tree_state, wait_for
from tests.integration.stage_driver import apply

MiB = 2**20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted for this test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """A filler file that leaves about `leave` bytes free."""
    st = os.statvfs(disk)
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(st.f_bavail * st.f_frsize - leave, 0))
    return filler


def test_staging_waits_for_space_and_keeps_the_active_version(small_disk: Path, tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    (v1 / "keep").mkdir(parents=True)
    (v1 / "keep" / "small.bin").write_bytes(os.urandom(MiB))
    v2 = tmp_path / "v2"
    subprocess.run(["cp", "-a", str(v1), str(v2)], check=True)
    (v2 / "big.bin").write_bytes(os.urandom(6 * MiB))
    folder = small_disk / "data"
    store = StagedStore(folder, tmp_path / "state")
    try:
        apply(store, v1)
        filler = _fill(small_disk, 2 * MiB)
        with pytest.raises(NoSpaceError) as info:
            apply(store, v2)
        assert str(folder) in info.value.message and "missing" in info.value.message
        assert tree_state(folder) == tree_state(v1)
        filler.unlink()
        apply(store, v2)
        assert tree_state(folder) == tree_state(v2)
    finally:
        store.close()


def test_a_peer_waits_for_space_then_switches(small_disk: Path, tmp_path: Path) -> None:
    make_tree(tmp_path / "origin")
    c = Cluster(tmp_path, tmp_path / "origin")
    try:
        master = c.start_master()
        folder = small_disk / "p1"
        peer = c.start_peer("p1", folder=folder)
        gen1 = master.status()["generation"]  # type: ignore[index]
        wait_for(lambda: (st := peer.status()) and st["synced"] and st["generation"] == gen1, 60,
                 "the peer on generation 1", master, peer)
        state1 = tree_state(folder)
        filler = _fill(small_disk, 2 * MiB)
        (c.source / "big.bin").write_bytes(os.urandom(6 * MiB))
        wait_for(lambda: "not enough space to stage" in peer.output(), 60, "the shortfall reported", peer)
        assert tree_state(folder) == state1 and peer.proc.poll() is None
        filler.unlink()
        wait_for(lambda: (st := peer.status()) and st["synced"] and st["generation"] != gen1, 60,
                 "the peer on generation 2 once space returned", master, peer)
        assert tree_state(folder) == tree_state(c.source)
    finally:
        c.close()
