"""Where chunks begin and end: fixed offsets or content-defined boundaries (pure, no I/O).

Rules:
- A chunking is a kind and a target size (`Chunking`); it alone decides the boundaries of a file's
  bytes, so every node that scans the same bytes with the same chunking gets the same chunks.
- `fixed`: chunk k covers [k*size, (k+1)*size), the last one shorter. For data only ever
  overwritten in place (disk images): an overwrite changes the chunks it touches and no others.
- `cdc`: FastCDC 2020 with normalised chunk sizes (the `pyfastcdc` library, Cython, releases the GIL
  while cutting): a boundary depends only on the bytes just before it, so an insertion or deletion
  changes about one chunk. Every chunk is within [min_size, max_size] except a file's last one.
  The library cuts chunks of at most 16 MiB (target 4 MiB); a larger target groups those base chunks
  by content too: a base cut is also a cut of the large chunk when the gear hash at it (a function
  of the 64 bytes before it) falls under a threshold, with the same minimum and maximum rules, so
  the grouping resynchronises after an edit just as the base cuts do.
- A content-defined cut depends only on the bytes since the chunk's start, so a cutter started at
  a later offset agrees with the one started at the file's head from the first cut they share on.
  `stitch` uses that to cut one file in segments on every core and still give exactly the
  chunks of one cutter run over the whole file.
- `auto_chunk_size` picks a target from the data set's size, as BitTorrent clients pick a piece
  size: a power of two that gives at least `AUTO_MIN_CHUNKS` chunks, bounded to
  [`AUTO_MIN_SIZE`, `AUTO_MAX_SIZE`], and not below a `floor` (a power of two at least that, within
  the same bounds: `swarm_load.chunk_floor`, so that the busiest site's master keeps up); a size
  already in use is kept while the count stays within [`AUTO_MIN_CHUNKS`/2, `AUTO_MAX_CHUNKS`]
  and it is not below the floor, so a growing data set is not re-chunked on every scan.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass

from pyfastcdc import FastCDC

FIXED = "fixed"
CDC = "cdc"
KINDS = (FIXED, CDC)
AUTO = 0                      # a chunk size of 0 asks for `auto_chunk_size`

MIB = 1 << 20
AUTO_MIN_SIZE = 1 * MIB
AUTO_MAX_SIZE = 64 * MIB
AUTO_MIN_CHUNKS = 2_000
AUTO_MAX_CHUNKS = 20_000
CDC_MIN_TARGET = 4096         # below this FastCDC's own bounds (a 1 KiB maximum) are not met
_BASE_TARGET = 4 * MIB        # the library's largest target (min 1 MiB, max 16 MiB)
_MIX = 0x9E3779B97F4A7C15     # odd 64-bit constant: spreads the gear hash's free bits upward
_U64 = (1 << 64) - 1


Span = tuple[int, int, str]   # a chunk found: file offset, length, content hash
# run(start, until, sync): the chunks a cutter started at `start` finds, up to and including the
# first that ends at an offset in `sync` or at or past `until` (or the file's last).
RunFn = Callable[[int, int, Collection[int]], list[Span]]


@dataclass(frozen=True, slots=True)
class Chunking:
    kind: str
    size: int                 # fixed: every chunk's size; cdc: the target (about the average)

    @property
    def min_size(self) -> int:
        return self.size if self.kind == FIXED else self.size // 4

    @property
    def max_size(self) -> int:
        return self.size if self.kind == FIXED else self.size * 4

    @property
    def key(self) -> str:
        """What a remembered hash depends on besides the file's bytes."""
        return f"{self.kind}/{self.size}"


def chunking_problem(kind: object, size: object) -> str | None:
    """Why (kind, size) is not a chunking a manifest may carry (None: it is)."""
    if kind not in KINDS:
        return f"unknown chunking {str(kind)[:20]!r} (known: {', '.join(KINDS)})"
    low = CDC_MIN_TARGET if kind == CDC else 1
    if not isinstance(size, int) or isinstance(size, bool) or not low <= size <= 2**30:
        return f"chunk size {str(size)[:24]} out of range for {kind} chunking ({low} bytes to 1 GiB)"
    if kind == CDC and size & (size - 1):
        return f"chunk size {size} for cdc chunking is not a power of two"
    return None


def fixed_sizes(size: int, chunk_size: int) -> tuple[int, ...]:
    """Chunk lengths of a `size`-byte file cut every `chunk_size` bytes."""
    full, rest = divmod(size, chunk_size)
    return (chunk_size,) * full + ((rest,) if rest else ())


def sizes_problem(chunking: Chunking, size: int, sizes: tuple[int, ...]) -> str | None:
    """Why `sizes` cannot be the chunk lengths of a `size`-byte file under `chunking`."""
    if chunking.kind == FIXED:
        n = -(-size // chunking.size)
        if len(sizes) != n or (n and (sizes[-1] != size - (n - 1) * chunking.size
                                      or any(s != chunking.size for s in sizes[:-1]))):
            return "chunk sizes do not follow fixed chunking"
        return None
    if sum(sizes) != size:
        return "chunk sizes do not add up to the file size"
    if size and (not 0 < sizes[-1] <= chunking.max_size
                 or any(not chunking.min_size <= s <= chunking.max_size for s in sizes[:-1])):
        return f"a chunk size outside [{chunking.min_size}, {chunking.max_size}]"
    return None


def auto_floor_size(floor: int) -> int:
    """The smallest automatic size for a floor of `floor` bytes (see the module rules)."""
    lowest = AUTO_MIN_SIZE
    while lowest < min(floor, AUTO_MAX_SIZE):
        lowest *= 2
    return lowest


def auto_chunk_size(total_bytes: int, current: int = AUTO, floor: int = 0) -> int:
    """A target chunk size for a data set of `total_bytes`, `floor` bytes or more (see the module
    rules)."""
    lowest = auto_floor_size(floor)
    if lowest <= current <= AUTO_MAX_SIZE and not current & (current - 1):
        count = total_bytes / current
        fits = AUTO_MIN_CHUNKS // 2 <= count <= AUTO_MAX_CHUNKS
        if fits or (current == lowest and count < AUTO_MIN_CHUNKS) or (
                current == AUTO_MAX_SIZE and count > AUTO_MAX_CHUNKS):
            return current
    size = lowest
    while size < AUTO_MAX_SIZE and total_bytes // (size * 2) >= AUTO_MIN_CHUNKS:
        size *= 2
    return size


class CdcCutter:
    """Content-defined cuts of one file's bytes, fed in windows.

    `cut(window, eof)` yields the pieces of `window` whose place is certain, in order, as lengths
    where a 0 marks the end of a chunk (a chunk is one or more pieces), one at a time as they are
    found, so a caller hashes each piece while it is still in the CPU's caches. The pieces add up
    to the bytes of `window` consumed; the caller passes the rest again at the head of the next
    window, which must then hold at least `window_min` bytes unless the file ends.
    """

    def __init__(self, target: int) -> None:
        if target < CDC_MIN_TARGET:
            raise ValueError(f"cdc target {target} below {CDC_MIN_TARGET}")
        self.min_size, self.max_size = target // 4, target * 4
        base = min(target, _BASE_TARGET)
        # Normalisation level 2 (the FastCDC paper's NC-2): sizes gather closer to the target,
        # which measured better here than level 1 for insertions (0.83 against 0.95 of the bound
        # in benchmarks/cdc_update.py's terms) and no worse for overwrites.
        self._base = FastCDC(base, min_size=base // 4, max_size=base * 4, normalized_chunking=2)
        self.base_max = base * 4
        self.window_min = 2 * self.base_max
        self._grouped = target > base
        # After the minimum, each base cut ends the large chunk with the probability that puts the
        # large average near the target (measured: 0.9 x target on random data).
        per_cut = max(1.0, (target - self.min_size) / base)
        self._threshold = int((1 << 64) / per_cut) if self._grouped else 0
        self._open_len = 0                  # bytes of the large chunk not yet ended

    def cut(self, window: memoryview, eof: bool) -> Iterator[int]:
        for piece in self._base.cut_buf(window):
            # A cut found with less than a base maximum ahead may differ from the one found with
            # the whole file: wait for the next window.
            if not eof and piece.offset + self.base_max > len(window):
                return
            yield from self._group(piece.length, piece.gear_hash)
        if eof and self._open_len:
            yield 0
            self._open_len = 0

    def _group(self, length: int, gear: int) -> Iterator[int]:
        if not self._grouped:
            yield length
            yield 0
            return
        if self._open_len and self._open_len + length > self.max_size:
            yield 0
            self._open_len = 0
        yield length
        self._open_len += length
        if self._open_len >= self.min_size and (gear * _MIX) & _U64 < self._threshold:
            yield 0
            self._open_len = 0


def stitch(bounds: Sequence[int], runs: Sequence[Sequence[Span]], run: RunFn) -> list[Span]:
    """The chunks of one cutter run from `bounds[0]`, put together from runs started at each bound.

    `runs[k]` is what a cutter started at `bounds[k]` found up to its first chunk ending at or past
    `bounds[k + 1]` (the last bound is the file's end). Where the chunks so far end on a chunk start
    of the next run, that run's chunks from there on are the sequential ones (module rules);
    elsewhere `run` cuts on from that end until it meets one of the next run's starts (on random
    data within a chunk or two; through a long run of equal bytes, maybe never: then the sequential
    cut simply goes on into the following segment).
    """
    out: list[Span] = list(runs[0]) if runs else []
    for k in range(1, len(runs)):
        end = out[-1][0] + out[-1][1]
        until = bounds[k + 1]
        if end >= until:
            continue
        starts = {span[0]: i for i, span in enumerate(runs[k])}
        if end not in starts:
            out.extend(run(end, until, starts.keys()))
            end = out[-1][0] + out[-1][1]
            if end not in starts:
                continue
        out.extend(runs[k][starts[end]:])
    return out
