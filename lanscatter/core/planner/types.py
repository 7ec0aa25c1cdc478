"""The planner's public value types: its configuration, transfers, node statistics, chunk sets.

Frozen, slotted values (the one mutable record, `Flight`, is private to the planner). Import them
from `lanscatter.core.planner`, which re-exports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from lanscatter.core.planner.state import NodeState, iter_bits


@dataclass(frozen=True, slots=True)
class PlannerConfig:
    default_dl_slots: int = 2
    default_ul_slots: int = 2
    min_timeout_s: float = 5.0          # never time a transfer out sooner than this
    max_timeout_s: float = 86_400.0     # nor later: the Download message bounds it (1e7 s)
    timeout_factor: float = 4.0         # timeout = factor x expected time x median slowness
    initial_timeout_s: float = 300.0    # before anything is measured and without a rate cap
    slow_threshold: float = 2.0         # slowness (relative to the swarm median) of a slow source
    slow_extra_slots: int = 1           # downloads from slow sources a node takes beside its slots
    narrow_extra_slots: int = 4         # WAN-bound uploads a source runs beside its slots
    narrow_share: float = 0.5           # ... when capped at most this share of an upload slot's rate
    endgame_chunks: int = 4             # a downloader needing this few chunks avoids slow sources
    endgame_margin: float = 2.0         # ... as does one whose remaining work is shorter than this
                                        #     many times a slow source's upload
    seed_weight: float = 0.25           # a seed's weight against an equally good peer
    candidates: int = 2                 # offers compared per downloader slot
    max_probe: int = 32                 # idle sources looked at per downloader slot
    ewma_alpha: float = 0.3             # weight of the newest upload measurement
    kept_pace: float = 1.25             # a capped upload within this factor of its cap proves no slowness
    min_link_share: float = 0.02        # a link with less than this share of capacity left is full
    stats_refresh_s: float = 1.0        # how often the swarm medians are recomputed
    wan_streams: int = 2                # transfers sharing a WAN link at once (keeps it busy between them)
    transfer_overhead_s: float = 0.05   # fixed cost of any transfer (messages, request, first byte):
                                        #     a small chunk's time is mostly this, not slowness


class Transfer(NamedTuple):
    """A transfer the planner started (a named tuple: one is made per transfer, and cheaply)."""

    id: int
    chunk: str              # chunk hash (hex)
    source: str             # node name
    dest: str               # node name
    size: int               # chunk bytes
    rate_cap: float | None  # bytes/s, None = uncapped
    timeout_s: float        # the engine aborts the transfer after this long and reports failure
    started: float          # the `now` it was planned at
    # What the engine enforces. `rate_cap` is the planner's booking (and the simulator's speed);
    # the engine lets a transfer go faster where nothing shared is at stake: a host's own limits
    # are kept by that host across all its transfers, a WAN link by its one source across the
    # link's transfers (`pace_group`: link name, capacity), a site's finite switch per transfer.
    pace_cap: float | None = None                  # bytes/s, the switch share; None = none
    pace_group: tuple[str, float] | None = None    # (WAN link, bytes/s) paced in aggregate


@dataclass(frozen=True, slots=True)
class NodeStats:
    downloads: int
    uploads: int
    dl_slots: int
    ul_slots: int
    have_count: int
    avg_upload_s: float | None
    failures: int
    downloading: int             # transfers in flight to it, in its slots or beside them
    uploading: int               # transfers in flight from it, in its slots or beside them
    slowness: float
    corrupt: bool
    seed: bool
    site: str | None
    dl_in_slots: int = 0         # of `downloading`, those in its download slots
    ul_in_slots: int = 0         # of `uploading`, those in its upload slots


class ChunkBits:
    """Read-only set of chunk indices backed by an int bitmap (bit i = manifest index i)."""

    __slots__ = ("bits", "size")

    def __init__(self, bits: int, size: int) -> None:
        self.bits = bits
        self.size = size

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and index >= 0 and bool(self.bits >> index & 1)

    def __len__(self) -> int:
        return self.bits.bit_count()

    def __iter__(self) -> Iterator[int]:
        return iter_bits(self.bits)

    def to_bytes(self) -> bytes:
        """Little-endian bitmap, (size + 7) // 8 bytes: byte k bit j is chunk 8k + j."""
        return self.bits.to_bytes((self.size + 7) // 8, "little")


@dataclass(slots=True, eq=False)
class Flight:
    """A transfer in flight, with what the planner booked and expects for it."""

    transfer: Transfer
    src: NodeState
    dst: NodeState
    chunk: int
    links: tuple[str, ...]
    booked: float
    background: bool            # from a slow source, beside the destination's download slots
    narrow: bool                # WAN-bound, beside the source's upload slots
    expected_s: float | None    # duration expected at the cap (or the swarm's median speed)
    slowness: float             # the source's slowness when it was planned
    released: bool = False      # its slots and bookings were freed ahead of its end (release)
    guessed: bool = False       # its timeout is the initial guess: nothing was measured when planned
