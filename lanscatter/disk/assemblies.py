"""The files of a manifest a mirror is assembling, by their position in its table.

A million files being assembled as a million objects, each with its path text and numbers, cost
over 250 bytes a file, and the pools they leave once freed stay with the process; here they are
columns over the table's positions, 17 bytes a file: whether it is being assembled, its part
file's inode, and the chunks it misses as bits.

Rules:
- A file's missing chunks are the bits of one 64-bit word when it has at most 64 chunks; a bigger
  file's are an integer's bits up to `_MASK_CHUNKS` chunks and a set beyond (a few big files).
- A part file is open only from its first chunk written until the file is finished (`fds`): a
  version of 100,000 files must not hold 100,000 descriptors.
- Positions are walked in table order (`__iter__`), and finishing one during the walk is safe.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator

from lanscatter.core.file_table import FileTable
from lanscatter.disk.folder_walk import PART_SUFFIX

_WORD = 64
_MASK_CHUNKS = 1024


class Assemblies:
    """The files of `files` being assembled in the folder `root` (see the module header)."""

    def __init__(self, files: FileTable, root: str) -> None:
        n = len(files)
        self.files, self.root = files, root
        self._pending = bytearray(n)                  # 1: being assembled
        self._count = 0
        self._ino = array("Q", bytes(8 * n))          # each part file's inode (the journal's check)
        self._mask = array("Q", bytes(8 * n))         # missing chunks of files of up to 64 chunks
        self._wide: dict[int, int | set[int]] = {}    # ... and of bigger files
        self.fds: dict[int, int] = {}                 # position -> its part file's open descriptor

    @classmethod
    def none(cls) -> Assemblies:
        """No file being assembled (no manifest yet)."""
        return cls(FileTable.of_entries(()), "")

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        i = self._pending.find(1)
        while i >= 0:
            yield i
            i = self._pending.find(1, i + 1)

    def __contains__(self, i: int) -> bool:
        return bool(self._pending[i])

    def start(self, i: int, ino: int) -> None:
        """File `i` is assembled in a part file of inode `ino`, every chunk missing."""
        chunks = len(self.files.ref_range(i))
        if chunks <= _WORD:
            self._mask[i] = (1 << chunks) - 1
        else:
            self._wide[i] = (1 << chunks) - 1 if chunks <= _MASK_CHUNKS else set(range(chunks))
        self._ino[i] = ino
        if not self._pending[i]:
            self._pending[i] = 1
            self._count += 1

    def finish(self, i: int) -> None:
        """File `i` is no longer assembled (its descriptor is closed)."""
        if self._pending[i]:
            self._pending[i] = 0
            self._count -= 1
        self._mask[i] = 0
        self._wide.pop(i, None)
        self.close(i)

    def ino(self, i: int) -> int:
        return self._ino[i]

    def lacks(self, i: int, k: int) -> bool:
        bits = self._wide.get(i)
        if bits is None:
            return bool(self._mask[i] >> k & 1)
        return k in bits if isinstance(bits, set) else bool(bits >> k & 1)

    def missing_any(self, i: int) -> bool:
        return bool(self._wide[i]) if i in self._wide else bool(self._mask[i])

    def lose(self, i: int, k: int) -> None:
        self._flip(i, k, True)

    def got(self, i: int, k: int) -> None:
        self._flip(i, k, False)

    def _flip(self, i: int, k: int, missing: bool) -> None:
        if i not in self._wide:
            self._mask[i] = self._mask[i] | 1 << k if missing else self._mask[i] & ~(1 << k)
            return
        bits = self._wide[i]
        if isinstance(bits, set):
            if missing:
                bits.add(k)
            else:
                bits.discard(k)
        else:
            self._wide[i] = bits | 1 << k if missing else bits & ~(1 << k)

    def path(self, i: int) -> str:
        return self.files.path(i)

    def part_name(self, i: int) -> str:
        return f"{self.root}/{self.files.path(i)}{PART_SUFFIX}"

    def open(self, i: int) -> int:
        """The part file's descriptor, opened at its first use and kept until it is finished (a
        descriptor handed to a download must stay valid until the download reports)."""
        fd = self.fds.get(i)
        if fd is None:
            fd = self.fds[i] = os.open(self.part_name(i), os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        return fd

    def close(self, i: int) -> None:
        fd = self.fds.pop(i, None)
        if fd is not None:
            os.close(fd)

    def close_all(self) -> None:
        for i in list(self.fds):
            self.close(i)
