"""The columns of files being assembled: missing chunks as bits of a word, of an int and as a
set, positions walked in order while some finish, descriptors closed when a file finishes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lanscatter.core.file_table import FileEntry, FileTable
from lanscatter.disk.assemblies import Assemblies
from lanscatter.disk.folder_walk import PART_SUFFIX


def _table(*chunks: int) -> FileTable:
    return FileTable.of_entries(FileEntry(f"f{i}", n, 0, False, tuple(f"h{k}" for k in range(n)), (1,) * n)
                                for i, n in enumerate(chunks))


def test_missing_chunks_of_small_and_big_files() -> None:
    asms = Assemblies(_table(3, 64, 65, 2000, 0), "/r")
    for i in range(5):
        asms.start(i, 100 + i)
    assert len(asms) == 5 and list(asms) == [0, 1, 2, 3, 4] and asms.ino(3) == 103
    assert not asms.missing_any(4)          # an empty file misses nothing
    for i, n in enumerate((3, 64, 65, 2000)):
        assert all(asms.lacks(i, k) for k in range(n)) and not asms.lacks(i, n)
        for k in range(n):
            asms.got(i, k)
        assert not asms.missing_any(i)
        asms.lose(i, n - 1)
        assert asms.lacks(i, n - 1) and not asms.lacks(i, 0) and asms.missing_any(i)


def test_finishing_during_the_walk_and_descriptors(tmp_path: Path) -> None:
    asms = Assemblies(_table(1, 1, 1), str(tmp_path))
    for i in range(3):
        (tmp_path / f"f{i}{PART_SUFFIX}").write_bytes(b"x")
        asms.start(i, i)
    fd = asms.open(1)
    assert asms.open(1) == fd and asms.part_name(1) == f"{tmp_path}/f1{PART_SUFFIX}"
    seen = []
    for i in asms:
        seen.append(i)
        asms.finish(i)
    assert seen == [0, 1, 2] and len(asms) == 0 and 1 not in asms and not asms.fds
    with pytest.raises(OSError):        # the descriptor of a finished file is closed
        os.fstat(fd)
