"""What a sync would do to a folder (dry run, the first-sync guard), and the synced-before marker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lanscatter.core.chunking import CDC, Chunking
from lanscatter.disk.first_sync import mark_synced, preview_sync, refusal_text, synced_before
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.scanner import scan_folder

CS = Chunking(CDC, 4096)


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def test_preview_lists_downloads_overwrites_and_deletes_and_writes_nothing(tmp_path: Path) -> None:
    _tree(tmp_path / "origin", {"same.txt": b"same", "changed.txt": b"new", "missing/deep.bin": b"m" * 3000})
    version, _ = scan_folder(tmp_path / "origin", CS, HashCache(tmp_path / "oc.jsonl"))
    folder = tmp_path / "folder"
    _tree(folder, {"same.txt": b"same", "changed.txt": b"old", "junk/a.log": b"x", "b.log": b"y",
                   "missing/deep.bin.lsc-part": b"half"})
    (folder / "link").symlink_to("same.txt")
    before = sorted((p.relative_to(folder), p.read_bytes() if p.is_file() else None) for p in folder.rglob("*"))
    preview = preview_sync(folder, version, HashCache(tmp_path / "fc.jsonl"))
    assert preview.download == ("missing/deep.bin",)
    assert preview.overwrite == ("changed.txt",)
    assert preview.delete == ("b.log", "junk/a.log", "link")
    assert "overwrite changed.txt" in preview.listing().splitlines()
    after = sorted((p.relative_to(folder), p.read_bytes() if p.is_file() else None) for p in folder.rglob("*"))
    assert after == before
    names_only = preview_sync(folder, version, None)
    assert names_only.delete == preview.delete and names_only.overwrite == ()
    deletions = preview_sync(folder, version, None, downloads=False)
    assert deletions.delete == preview.delete and deletions.download == ()
    text = refusal_text(folder, preview)
    assert "would delete 3 files" in text and "'junk/a.log'" in text
    one = dataclasses.replace(preview, delete=("b.log",))
    assert "would delete 1 file that the version lacks: 'b.log'" in refusal_text(folder, one)


def test_the_marker_names_the_folder_it_was_written_for(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    assert not synced_before(state, tmp_path / "a")
    mark_synced(state, tmp_path / "a")
    assert synced_before(state, tmp_path / "a")
    assert not synced_before(state, tmp_path / "b")
