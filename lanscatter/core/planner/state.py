"""Incremental bookkeeping behind the planner: chunk bitmaps, rarity buckets, per-site coverage.

Pure data structures, no I/O, no clock. Chunk sets are Python ints used as bitmaps (bit i = chunk
at manifest index i): set algebra over 50,000 chunks is then a handful of word operations in C,
which is what keeps a planning round cheap without re-scanning every chunk.

Rules kept here:
- A chunk's *cover count* is the number of nodes that hold it or are receiving it. Rarest-first
  ranks by this count, so a chunk already on its way somewhere stops looking rare at once and the
  next transfer picks a different one (that is how the swarm diversifies within one round).
- Counts change one chunk at a time (O(words) per change); a bulk change (a node joining with
  thousands of chunks) updates the count array and shifts whole buckets at once. The buckets are
  built from the counts only when a generation starts.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

BULK_THRESHOLD = 32     # above this many changed chunks, shift whole buckets instead of single bits


def iter_bits(x: int) -> Iterator[int]:
    """Indices of the set bits of x, ascending."""
    text = bin(x)[:1:-1]            # least significant bit first, without the "0b" prefix
    i = text.find("1")
    while i >= 0:
        yield i
        i = text.find("1", i + 1)


def bits_from_indices(indices: list[int], n: int) -> int:
    raw = bytearray((n + 7) // 8)
    for i in indices:
        raw[i >> 3] |= 1 << (i & 7)
    return int.from_bytes(raw, "little")


_LOW = (1 << 64) - 1


def pick_bit(x: int, rng: random.Random, n: int) -> int:
    """A set bit of x (x != 0): the first at or after a random offset, wrapping around."""
    top = x.bit_length() - 1
    if x == 1 << top:
        return top
    r = int(rng.random() * n)
    y = x >> r
    if not y:
        r, y = 0, x
    low = y & _LOW                 # the lowest set bit is almost always among the first few
    if low:
        return r + (low & -low).bit_length() - 1
    return r + (y & -y).bit_length() - 1


def kept_runs(old_hashes: Sequence[str], new_index: Mapping[str, int]) -> list[tuple[int, int, int]]:
    """(old_start, new_start, length) of the stretches of chunks a new generation keeps, in order.

    A generation that changes a few files keeps long stretches, so remapping a bitmap costs a
    few shifts per stretch rather than a step per chunk.
    """
    runs: list[list[int]] = []
    for i, h in enumerate(old_hashes):
        j = new_index.get(h)
        if j is None:
            continue
        if runs and runs[-1][0] + runs[-1][2] == i and runs[-1][1] + runs[-1][2] == j:
            runs[-1][2] += 1
        else:
            runs.append([i, j, 1])
    return [(a, b, n) for a, b, n in runs]


def remap_bits(x: int, runs: list[tuple[int, int, int]]) -> int:
    out = 0
    for a, b, n in runs:
        out |= ((x >> a) & ((1 << n) - 1)) << b
    return out


def remap_counts(old: array, runs: list[tuple[int, int, int]], size: int) -> array:
    new = array("i", bytes(4 * size))
    for a, b, n in runs:
        new[b:b + n] = old[a:a + n]
    return new


class RarityIndex:
    """Cover count per chunk, and the chunks by count as prefix unions.

    `keys` are the counts some chunk has, ascending; `below[j]` is the set of chunks counted at most
    keys[j] times. The rarest chunks of a set are then found by a binary search over a few unions
    (`lowest`), and one more copy of a chunk is one XOR (plus a new key the first time a count is
    reached, and one fewer when a count is left by its last chunk).
    """

    __slots__ = ("_dirty", "below", "counts", "keys", "n")

    def __init__(self, counts: array) -> None:
        self.n = len(counts)
        self.counts = counts
        self.keys: list[int] = []
        self.below: list[int] = []
        self._dirty = True

    def _rebuild(self) -> None:
        groups: dict[int, list[int]] = {}
        for i, c in enumerate(self.counts):
            groups.setdefault(c, []).append(i)
        self._set_buckets({c: bits_from_indices(idx, self.n) for c, idx in groups.items()})
        self._dirty = False

    def _set_buckets(self, buckets: dict[int, int]) -> None:
        self.keys = sorted(buckets)
        self.below = []
        union = 0
        for k in self.keys:
            union |= buckets[k]
            self.below.append(union)

    def bucket(self, count: int) -> int:
        """The chunks counted exactly `count` times."""
        if self._dirty:
            self._rebuild()
        j = bisect_left(self.keys, count)
        if j == len(self.keys) or self.keys[j] != count:
            return 0
        return self.below[j] ^ (self.below[j - 1] if j else 0)

    def _move(self, bit: int, a: int, b: int) -> None:
        keys, below = self.keys, self.below
        j = bisect_left(keys, b)
        if j == len(keys) or keys[j] != b:           # a count no chunk had: the union below it
            keys.insert(j, b)
            below.insert(j, below[j - 1] if j else 0)
        j = bisect_left(keys, min(a, b))
        if a < b:
            while keys[j] < b:                       # unions of counts a..b-1 lose the chunk
                below[j] ^= bit
                j += 1
        else:
            while keys[j] < a:                       # unions of counts b..a-1 gain it
                below[j] |= bit
                j += 1
        self._drop_if_empty(bisect_left(keys, a))

    def _drop_if_empty(self, j: int) -> None:
        below = self.below
        if below[j] == (below[j - 1] if j else 0):   # no chunk has count keys[j] any more
            del self.keys[j], below[j]

    def add(self, i: int, delta: int, bit: int = 0) -> None:
        """Change chunk i's count by delta (`bit`, if given, is 1 << i, already at hand)."""
        k = self.counts[i]
        self.counts[i] = k + delta
        if self._dirty:
            return
        if delta != 1:
            self._move(bit or 1 << i, k, k + delta)
            return
        # one more copy, the usual change: as _move, without searching for the next count
        keys, below = self.keys, self.below
        j = bisect_left(keys, k)
        old = below[j]
        below[j] = old ^ (bit or 1 << i)
        if j + 1 == len(keys) or keys[j + 1] != k + 1:
            keys.insert(j + 1, k + 1)
            below.insert(j + 1, old)
        if below[j] == (below[j - 1] if j else 0):
            del keys[j], below[j]

    def add_many(self, mask: int, delta: int) -> None:
        if mask.bit_count() <= BULK_THRESHOLD:
            for i in iter_bits(mask):
                self.add(i, delta)
            return
        counts = self.counts
        for i in iter_bits(mask):
            counts[i] += delta
        if self._dirty:
            return
        # Shift the masked chunks of every count at once: a join with thousands of chunks costs a
        # few big-int operations per distinct count, not a step (or a rebuild) per chunk.
        moved: dict[int, int] = {}
        lower = 0
        for k, union in zip(self.keys, self.below):
            bits, lower = union ^ lower, union
            going = bits & mask
            for key, part in ((k, bits ^ going), (k + delta, going)):
                if part:
                    moved[key] = moved.get(key, 0) | part
        self._set_buckets(moved)

    def lowest(self, cand: int) -> int:
        """The place j in `keys` of the least count among cand's chunks (cand != 0): cand has
        chunks in below[j] and none in below[j - 1], so cand & below[j] are its rarest."""
        if self._dirty:
            self._rebuild()
        below = self.below
        if cand & below[0]:
            return 0
        # The first union cand meets, by bisection in C: the key is `cand & union`, below 1 exactly
        # when they do not meet. The union at the end holds every chunk.
        return bisect_left(below, 1, 1, len(below) - 1, key=cand.__and__)

    def pick(self, cand: int, j: int, rng: random.Random) -> int:
        """One of cand's rarest chunks at random, j being `lowest` of cand (or of a superset)."""
        return pick_bit(cand & self.below[j], rng, self.n)

    def rarest(self, cand: int, rng: random.Random) -> tuple[int, int]:
        """(chunk index, cover count) of a least-covered chunk in cand (cand != 0)."""
        j = self.lowest(cand)
        return self.pick(cand, j, rng), self.keys[j]


class SiteCover:
    """Which chunks some node of one site holds or is receiving (count per chunk + bitmap)."""

    __slots__ = ("_dirty", "bits", "counts")

    def __init__(self, counts: array) -> None:
        self.counts = counts
        self.bits = 0
        self._dirty = True

    def add(self, i: int, delta: int) -> None:
        k = self.counts[i] + delta
        self.counts[i] = k
        if not self._dirty and (k == 0 or k == delta):
            self.bits ^= 1 << i

    def add_many(self, mask: int, delta: int) -> None:
        if mask.bit_count() <= BULK_THRESHOLD:
            for i in iter_bits(mask):
                self.add(i, delta)
            return
        counts = self.counts
        emptied = []
        for i in iter_bits(mask):
            counts[i] += delta
            if not counts[i]:
                emptied.append(i)
        if not self._dirty:
            if delta > 0:
                self.bits |= mask
            elif emptied:
                self.bits &= ~bits_from_indices(emptied, len(counts))

    def covered(self) -> int:
        if self._dirty:
            self.bits = bits_from_indices([i for i, c in enumerate(self.counts) if c], len(self.counts))
            self._dirty = False
        return self.bits


@dataclass(slots=True, eq=False)
class NodeState:
    """Everything the planner knows about one node; mutated only by the Planner."""

    idx: int
    name: str
    dl_slots: int
    ul_slots: int
    seed: bool
    site: str | None
    up_link: str | None
    down_link: str | None
    bits: int = 0              # chunks held
    recv: int = 0              # chunks in flight to this node
    # chunks it serves while they arrive from a source of this swarm: offered last (add_arriving)
    last_resort: int = 0
    n_have: int = 0
    n_cover: int = 0           # chunks held or in flight to this node: popcount(bits | recv)
    n_dl: int = 0              # transfers in flight to this node, in its download slots
    n_bg: int = 0              # transfers in flight to this node from slow sources, beside its slots
    n_ul: int = 0              # transfers in flight from this node, in its upload slots
    n_narrow: int = 0          # WAN-bound transfers in flight from this node, beside its slots
    sending: dict[int, int] = field(default_factory=dict)   # chunk -> uploads of it in flight
    busy: int = 0              # bitmap of the keys of `sending`
    downloads: int = 0
    uploads: int = 0
    upload_s_total: float = 0.0
    failures: int = 0
    fail_score: float = 0.0    # EWMA of "this upload failed" (0 = never fails, 1 = always)
    corrupt: bool = False
    silent: bool = False       # says nothing (frozen, cut off): planned from by no one (set_silent)
    slowness: float = 1.0      # EWMA of (upload time / expected time); 1.0 = as fast as the links say
    spb: float | None = None   # EWMA of seconds per uploaded byte
    rx_peak: float = 0.0       # the most bytes/s it has been seen receiving (0: unknown): its port
    measured: bool = False     # slowness has at least one sample
