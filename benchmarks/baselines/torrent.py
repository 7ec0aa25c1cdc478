"""Make a .torrent for a folder (BitTorrent v1, multi-file). Pure apart from reading the files.

Files are taken in sorted path order; pieces are SHA-1 over their concatenation, as v1 requires.
Empty directories cannot be expressed in v1 and are left out.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

Bencodable = int | bytes | str | list["Bencodable"] | dict[str, "Bencodable"]


def bencode(value: Bencodable) -> bytes:
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode(), v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def _files(folder: Path) -> list[Path]:
    return sorted(
        (Path(root, name) for root, _dirs, names in os.walk(folder) for name in names),
        key=lambda p: p.relative_to(folder).parts,
    )


def make_torrent(folder: Path, announce: str, piece_length: int = 1 << 20) -> tuple[bytes, str]:
    """The .torrent bytes for `folder` and its info hash (hex)."""
    pieces: list[bytes] = []
    pending = hashlib.sha1()
    filled = 0
    entries: list[Bencodable] = []
    for path in _files(folder):
        size = 0
        with open(path, "rb") as f:
            while block := f.read(min(piece_length - filled, 1 << 20)):
                pending.update(block)
                filled += len(block)
                size += len(block)
                if filled == piece_length:
                    pieces.append(pending.digest())
                    pending, filled = hashlib.sha1(), 0
        entries.append({"length": size, "path": list(path.relative_to(folder).parts)})
    if filled:
        pieces.append(pending.digest())
    info: dict[str, Bencodable] = {
        "name": folder.name,
        "piece length": piece_length,
        "pieces": b"".join(pieces),
        "files": entries,
    }
    torrent = bencode({"announce": announce, "info": info})
    return torrent, hashlib.sha1(bencode(info)).hexdigest()
