"""Chunk bitmaps for status pages: bit i (chunk index i in manifest order) is byte i // 8,
bit i % 8, least significant bit first; sent as standard base64."""

from __future__ import annotations

import base64


class Bitmap:
    __slots__ = ("bits", "count", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.bits = bytearray((size + 7) // 8)
        self.count = 0

    def set(self, i: int) -> None:
        mask = 1 << (i & 7)
        if not self.bits[i >> 3] & mask:
            self.bits[i >> 3] |= mask
            self.count += 1

    def clear(self, i: int) -> None:
        mask = 1 << (i & 7)
        if self.bits[i >> 3] & mask:
            self.bits[i >> 3] &= ~mask & 0xFF
            self.count -= 1

    def __contains__(self, i: int) -> bool:
        return bool(self.bits[i >> 3] & (1 << (i & 7)))

    def fill(self) -> None:
        self.bits[:] = b"\xff" * len(self.bits)
        if self.size % 8:
            self.bits[-1] = (1 << (self.size % 8)) - 1
        self.count = self.size

    def encode(self) -> str:
        return base64.b64encode(self.bits).decode("ascii")

    @staticmethod
    def decode(text: str, size: int) -> Bitmap:
        bm = Bitmap(size)
        raw = base64.b64decode(text)
        bm.bits[: len(raw)] = raw[: len(bm.bits)]
        bm.count = sum(b.bit_count() for b in bm.bits)
        return bm
