"""The master's folder watcher on Linux: inotify asked for changes only. Reading is no change;
folders made, moved in or named in bytes that are not UTF-8 are watched; symlinks are not
followed; a lost queue and a watched folder that goes away are reported."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from lanscatter.disk.inotify import FolderInotify, wait_readable

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


def _changed(w: FolderInotify, within_s: float = 2.0) -> bool:
    """Whether the watcher reports a change within `within_s` (every event queued meanwhile read)."""
    deadline = time.monotonic() + within_s
    changed = False
    while (left := deadline - time.monotonic()) > 0:
        if wait_readable(w.fd, min(left, 0.1)):
            changed = w.read() or changed
        elif changed:
            return True
    return changed


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "source"
    (root / "a" / "b").mkdir(parents=True)
    for k in range(50):
        (root / "a" / f"f{k}.bin").write_bytes(b"x" * k)
    return root


def test_reading_every_file_is_no_change_and_a_write_is(tree: Path) -> None:
    w = FolderInotify(tree)
    try:
        for f in (tree / "a").glob("*.bin"):
            with open(f, "rb") as fh:
                fh.read()
        os.stat(tree / "a" / "f1.bin")
        assert not _changed(w, 0.5)
        (tree / "a" / "b" / "new.bin").write_bytes(b"new")
        assert _changed(w)
        with open(tree / "a" / "f3.bin", "r+b") as fh:         # written in place, no new name
            fh.write(b"y")
        assert _changed(w)
        os.chmod(tree / "a" / "f4.bin", 0o755)
        assert _changed(w)
        os.remove(tree / "a" / "f5.bin")
        assert _changed(w)
    finally:
        w.close()


def test_folders_made_or_moved_in_after_the_start_are_watched(tree: Path, tmp_path: Path) -> None:
    w = FolderInotify(tree)
    try:
        (tree / "n1" / "n2" / "n3").mkdir(parents=True)
        assert _changed(w)
        (tree / "n1" / "n2" / "n3" / "deep.bin").write_bytes(b"d")
        assert _changed(w)
        outside = tmp_path / "elsewhere"
        (outside / "x" / "y").mkdir(parents=True)
        os.rename(outside, tree / "moved-in")
        assert _changed(w)
        (tree / "moved-in" / "x" / "y" / "f.bin").write_bytes(b"m")
        assert _changed(w)
        os.rename(tree / "moved-in", tree / "a" / "renamed")     # moved within: its new path kept
        assert _changed(w)
        (tree / "a" / "renamed" / "x" / "new-dir").mkdir()
        assert _changed(w)
        (tree / "a" / "renamed" / "x" / "new-dir" / "g.bin").write_bytes(b"g")
        assert _changed(w)
    finally:
        w.close()


def test_a_folder_moved_out_is_no_longer_watched(tree: Path, tmp_path: Path) -> None:
    w = FolderInotify(tree)
    try:
        os.rename(tree / "a", tmp_path / "archived")
        assert _changed(w)
        (tmp_path / "archived" / "b" / "still-written.bin").write_bytes(b"elsewhere now")
        (tmp_path / "archived" / "f1.bin").write_bytes(b"elsewhere now")
        assert not _changed(w, 0.5)
        (tree / "x.bin").write_bytes(b"here")
        assert _changed(w)
    finally:
        w.close()


def test_a_name_that_is_not_utf8_is_watched_like_any_other(tree: Path) -> None:
    w = FolderInotify(tree)
    try:
        bad = os.fsencode(tree) + b"/dir\xfe"
        os.mkdir(bad)
        assert _changed(w)
        with open(bad + b"/inside\xff.bin", "wb") as fh:
            fh.write(b"z")
        assert _changed(w)
    finally:
        w.close()


def test_symlinks_are_not_followed_but_the_root_is(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tree / "link").symlink_to(outside, target_is_directory=True)
    w = FolderInotify(tree)
    try:
        (outside / "f.bin").write_bytes(b"o")
        assert not _changed(w, 0.5)
    finally:
        w.close()
    via = tmp_path / "current"
    via.symlink_to(tree, target_is_directory=True)
    w = FolderInotify(via)
    try:
        (tree / "a" / "through-the-link.bin").write_bytes(b"l")
        assert _changed(w)
    finally:
        w.close()


def test_a_lost_queue_is_a_change_and_folders_made_meanwhile_are_watched(tree: Path) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 50_000:
        pytest.skip(f"the queue holds {limit} events here: too many to overflow in a test")
    w = FolderInotify(tree)
    try:
        files = [tree / "a" / f"f{k}.bin" for k in range(50)]
        for k in range(limit + 100):           # nothing read meanwhile: the queue overflows
            os.utime(files[k % 50])            # (the kernel merges an event like the one before)
        (tree / "made-after" / "sub").mkdir(parents=True)     # (its event lost with the queue)
        assert _changed(w)
        (tree / "made-after" / "sub" / "f.bin").write_bytes(b"s")
        assert _changed(w)
    finally:
        w.close()


def test_the_watched_folder_moved_or_deleted_is_an_error(tree: Path, tmp_path: Path) -> None:
    w = FolderInotify(tree)
    try:
        os.rename(tree, tmp_path / "moved")
        with pytest.raises(RuntimeError, match="moved or deleted"):
            _changed(w)
    finally:
        w.close()
    empty = tmp_path / "empty"
    empty.mkdir()
    w = FolderInotify(empty)
    try:
        empty.rmdir()
        with pytest.raises(RuntimeError, match="moved or deleted"):
            _changed(w)
    finally:
        w.close()


def test_a_missing_folder_cannot_be_watched(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cannot watch"):
        FolderInotify(tmp_path / "not-there")
