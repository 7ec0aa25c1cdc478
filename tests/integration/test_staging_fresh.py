"""A new version staged in a folder made for it is not scanned again after its unchanged files are
linked in: what it holds is known. Files kept, moved, changed, added and deleted all end as the
source has them; a staging resumed in a folder already there is scanned as before."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from lanscatter.disk import staged_store, store
from lanscatter.disk.staged_store import StagedStore
from tests.integration.nodes import tree_state
from tests.integration.stage_driver import apply, source_manifest

MTIME = 1_600_000_000_000_000_000


def _write(root: Path, rel: str, text: str, *, executable: bool = False) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    if executable:
        p.chmod(0o755)
    os.utime(p, ns=(MTIME, MTIME))


def _v1(root: Path) -> Path:
    src = root / "src1"
    for k in range(30):
        _write(src, f"d{k % 3}/kept{k}.txt", f"kept file {k}\n" * (k + 1))
    _write(src, "tool.sh", "#!/bin/sh\necho hi\n", executable=True)
    _write(src, "old/moved.bin", "content that moves\n" * 40)
    _write(src, "changes.txt", "first text\n")
    _write(src, "goes.txt", "deleted in the next version\n")
    (src / "empty-dir").mkdir()
    return src


def _v2(root: Path) -> Path:
    src = root / "src2"
    for k in range(30):
        _write(src, f"d{k % 3}/kept{k}.txt", f"kept file {k}\n" * (k + 1))
    _write(src, "tool.sh", "#!/bin/sh\necho hi\n", executable=True)
    _write(src, "new/place/moved.bin", "content that moves\n" * 40)    # same content and metadata
    _write(src, "changes.txt", "second text, longer than the first\n")
    _write(src, "added.txt", "a new file\n")
    (src / "empty-dir").mkdir()
    return src


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The roots scanned by the stores (not the driver's own scans of the sources)."""
    roots: list[Path] = []

    def counting(scan: Any) -> Any:
        def scan_folder(root: Path, *args: Any, **kwargs: Any) -> Any:
            roots.append(Path(root))
            return scan(root, *args, **kwargs)
        return scan_folder

    monkeypatch.setattr(store, "scan_folder", counting(store.scan_folder))
    monkeypatch.setattr(staged_store, "scan_folder", counting(staged_store.scan_folder))
    return roots


def test_a_new_staging_folder_is_not_scanned_and_ends_as_the_source(tmp_path: Path, scans: list[Path]) -> None:
    folder = tmp_path / "data"
    s = StagedStore(folder, tmp_path / "state")
    try:
        apply(s, _v1(tmp_path))
        assert tree_state(folder) == tree_state(tmp_path / "src1")
        active = folder.resolve()
        moved_inode = (active / "old" / "moved.bin").stat().st_ino
        kept_inode = (active / "d1" / "kept4.txt").stat().st_ino
        scans.clear()
        apply(s, _v2(tmp_path))
        staging = folder.resolve()
        assert staging != active
        assert scans == [active], f"scanned {scans}: the new staging folder was scanned again"
        assert tree_state(folder) == tree_state(tmp_path / "src2")
        assert s.complete() and not s.missing_chunks()
        assert (staging / "new" / "place" / "moved.bin").stat().st_ino == moved_inode     # linked, not copied
        assert (staging / "d1" / "kept4.txt").stat().st_ino == kept_inode
        assert os.access(staging / "tool.sh", os.X_OK)
    finally:
        s.close()


def test_a_staging_resumed_in_its_folder_is_scanned(tmp_path: Path, scans: list[Path]) -> None:
    folder = tmp_path / "data"
    s = StagedStore(folder, tmp_path / "state")
    try:
        apply(s, _v1(tmp_path))
        active = folder.resolve()
        s.reconcile(source_manifest(_v2(tmp_path)))     # staged, never fed: the process stops here
    finally:
        s.close()
    staging = s.root
    assert staging != active and staging.is_dir()
    scans.clear()
    s = StagedStore(folder, tmp_path / "state")
    try:
        apply(s, tmp_path / "src2")
        assert scans == [active, staging]
        assert tree_state(folder) == tree_state(tmp_path / "src2")
    finally:
        s.close()
