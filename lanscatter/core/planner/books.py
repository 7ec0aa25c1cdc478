"""The planner's books: the chunks of a generation, the nodes, who holds and receives what, which
nodes want a download or can give an upload, the transfers in flight and when they are due, and
what the sources' uploads showed (their slowness, the swarm's medians).

Pure, like the planner. `SwarmBooks` keeps these consistent on every event (a node joins or
leaves, reports what it holds, a transfer starts or ends) and answers queries and the read-only
views; it makes no decision. The policy, `Planner` in the package's __init__.py, builds on it and is the only
writer of a transfer's start and outcome.

Rules kept here:
- A chunk's cover count (`RarityIndex`) and its site's coverage (`SiteCover`) count the nodes that
  hold the chunk or are receiving it; a node that cannot upload, or served corrupt data, does not
  count for its site.
- `_hungry` holds exactly the non-seed nodes with a free download slot and a chunk they neither
  hold nor receive; `_idle` the nodes that can upload something now. Every change of a node's
  slots or holdings re-derives its membership (`_touch_down` / `_touch_up`), so a round only ever
  looks at nodes that can take part.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Collection, Iterable, Mapping, Sequence
from heapq import heappop, heappush
from statistics import median

from lanscatter.core.fair_share import fair_rates
from lanscatter.core.linkmap import LinkMap
from lanscatter.core.manifest import ChunkTable
from lanscatter.core.planner.links import LinkBook
from lanscatter.core.planner.state import (
    NodeState,
    RarityIndex,
    SiteCover,
    bits_from_indices,
    kept_runs,
    remap_bits,
    remap_counts,
)
from lanscatter.core.planner.types import ChunkBits, Flight, NodeStats, PlannerConfig, Transfer


class SwarmBooks:
    def __init__(self, links: LinkMap | None, config: PlannerConfig) -> None:
        self.config = config
        self._book = LinkBook(links)
        self._wan = bool(self._book.wan)     # narrow uploads (beside the slots) exist only with WANs
        self._hashes: Sequence[str] = []
        self._sizes: Sequence[int] = []
        self._short = 0             # chunks shorter than a whole one (small files, files' ends)
        self._index: Mapping[str, int] = {}
        self._full = 0
        self._rarity = RarityIndex(array("i"))
        self._sites: dict[str, SiteCover] = {}
        self._nodes: dict[str, NodeState] = {}
        self._by_idx: dict[int, NodeState] = {}
        self._next_idx = 0
        self._hungry: set[int] = set()     # non-seed nodes with a free download slot and a need
        self._idle: set[int] = set()       # nodes with a free upload slot and something to give
        self._flights: dict[int, Flight] = {}
        # node -> chunk hash -> when its download from outside the swarm is due: chunks the node
        # can serve while they arrive (add_arriving)
        self._arriving: dict[str, dict[str, float]] = {}
        self.flights_epoch = 0             # counts flights started and dropped: fair rates changed
        # deadline -> ids of the flights due then, in start order (so in id order); and the
        # deadlines as a heap. Flights of one round share few deadlines: far fewer heap steps.
        self._due: dict[float, list[int]] = {}
        self._due_times: list[float] = []
        self._median_slowness = 1.0        # of the measured sources, never below 1.0
        self._median_spb: float | None = None
        self._stats_dirty = False
        self._stats_at = -math.inf

    # ---- generation and membership -------------------------------------------------------

    def set_chunks(self, chunks: Sequence[tuple[str, int]]) -> list[Transfer]:
        hashes, index, sizes = _columns(chunks)
        cancelled = [f for f in self._flights.values() if self._hashes[f.chunk] not in index]
        for arriving in self._arriving.values():
            for h in [h for h in arriving if h not in index]:
                del arriving[h]
        for f in cancelled:
            self._drop(f)
        runs = kept_runs(self._hashes, index)
        for node in self._nodes.values():
            node.bits, node.recv = remap_bits(node.bits, runs), remap_bits(node.recv, runs)
            node.last_resort = remap_bits(node.last_resort, runs)
            node.n_have = node.bits.bit_count()
            node.n_cover = (node.bits | node.recv).bit_count()
        for f in self._flights.values():
            f.chunk = index[self._hashes[f.chunk]]
        for node in self._nodes.values():
            node.sending = {index[self._hashes[c]]: k for c, k in node.sending.items()}
            node.busy = sum(1 << c for c in node.sending)
        n = len(hashes)
        self._rarity = RarityIndex(remap_counts(self._rarity.counts, runs, n))
        self._sites = {s: SiteCover(remap_counts(c.counts, runs, n)) for s, c in self._sites.items()}
        self._hashes, self._index, self._sizes = hashes, index, sizes
        whole = max(self._sizes, default=0)
        self._short = bits_from_indices([i for i, size in enumerate(self._sizes) if size < whole], n)
        self._full = (1 << len(hashes)) - 1
        for node in self._nodes.values():
            self._touch(node)
        return [f.transfer for f in cancelled]

    def add_node(self, name: str, *, dl_slots: int, ul_slots: int, seed: bool = False) -> None:
        if name in self._nodes:
            raise ValueError(f"node {name!r} is already in the swarm")
        up, down = self._book.host_links(name)
        site = self._book.map.site_of(name)
        node = NodeState(self._next_idx, name, dl_slots, ul_slots, seed, site, up, down)
        self._next_idx += 1
        self._nodes[name] = node
        self._by_idx[node.idx] = node
        if site is not None and site not in self._sites:
            self._sites[site] = SiteCover(array("i", bytes(4 * len(self._hashes))))
        self._touch(node)

    def set_dl_slots(self, name: str, dl_slots: int) -> None:
        """A node's download slots from now on; 0 plans nothing more to it (while it is silent)."""
        node = self._nodes[name]
        node.dl_slots = max(0, dl_slots)
        self._touch_down(node)

    def set_rx_peak(self, name: str, bytes_per_s: float) -> None:
        """The most a node has been seen receiving: where the swarm states no port for it, its
        downloads cannot go faster together (a host on Wi-Fi among wired ones), so neither are
        they timed out as if they could, nor are their sources charged as slow for it."""
        node = self._nodes[name]
        if math.isfinite(bytes_per_s) and bytes_per_s > node.rx_peak:
            node.rx_peak = bytes_per_s

    def _port_s(self, d: NodeState, size: int, downloads: int) -> float:
        """Seconds d's own port needs for `size` bytes beside `downloads` - 1 others (0: unknown)."""
        return size * max(1, downloads) / d.rx_peak if d.rx_peak > 0.0 else 0.0

    def set_silent(self, name: str, silent: bool) -> None:
        """A node that says nothing (frozen, cut off) answers no request either: nothing is
        planned from it until it speaks. Its holdings still count for its site (the silence may
        pass in seconds; the WAN link should not bring them again meanwhile)."""
        node = self._nodes[name]
        node.silent = silent
        self._touch_up(node)

    def remove_node(self, name: str) -> list[Transfer]:
        node = self._nodes[name]
        dropped = [f for f in self._flights.values() if f.src is node or f.dst is node]
        for f in dropped:
            self._drop(f)
        self._cover_change(node, node.bits, -1)
        self._arriving.pop(name, None)
        del self._nodes[name], self._by_idx[node.idx]
        self._hungry.discard(node.idx)
        self._idle.discard(node.idx)
        return [f.transfer for f in dropped]

    def set_have(self, name: str, chunks: Iterable[str]) -> None:
        """A node's holdings in full (at its join, a new generation, its files read again)."""
        node = self._nodes[name]
        self._arriving.pop(name, None)
        node.last_resort = 0
        index = self._index
        bits = bits_from_indices([i for i in map(index.get, chunks) if i is not None], len(self._hashes))
        old_cover, new_cover = node.bits | node.recv, bits | node.recv
        self._cover_change(node, new_cover & ~old_cover, +1)
        self._cover_change(node, old_cover & ~new_cover, -1)
        node.bits, node.n_have = bits, bits.bit_count()
        node.n_cover = (bits | node.recv).bit_count()
        if node.corrupt:
            # It read its files again (a full Have after serving a chunk corrupt): a source once
            # more. Its copies left the site's coverage when it was caught; they count again.
            node.corrupt = False
            cover = self._site_cover(node)
            if cover is not None:
                cover.add_many(node.bits | node.recv, +1)
        self._touch(node)

    def add_have(self, name: str, chunk: str) -> None:
        node = self._nodes[name]
        arriving = self._arriving.get(name)
        i = self._index.get(chunk)
        if arriving and arriving.pop(chunk, None) is not None and i is not None:
            node.last_resort &= ~(1 << i)      # verified: a holding like any other from now on
        if i is None or node.bits >> i & 1:
            return
        bit = 1 << i
        if not node.recv & bit:
            self._cover_add(node, i, bit, +1)
            node.n_cover += 1
        node.bits |= bit
        node.n_have += 1
        self._touch(node)

    def add_haves(self, name: str, chunks: Iterable[str]) -> None:
        """`add_have` of several chunks (a Have piece) in one pass over the node's bitmaps: one at
        a time, each chunk cost passes over integers of a bit a chunk, and a peer announcing a
        million chunks held the master's loop long enough to lose its connection."""
        node = self._nodes[name]
        arriving = self._arriving.get(name)
        found = []
        for chunk in chunks:
            i = self._index.get(chunk)
            if arriving and arriving.pop(chunk, None) is not None and i is not None:
                node.last_resort &= ~(1 << i)  # verified: a holding like any other from now on
            if i is not None:
                found.append(i)
        new = bits_from_indices(found, len(self._hashes)) & ~node.bits
        if not new:
            return
        fresh = new & ~node.recv
        self._cover_change(node, fresh, +1)
        node.n_cover += fresh.bit_count()
        node.bits |= new
        node.n_have += new.bit_count()
        self._touch(node)

    def add_arriving(self, name: str, chunk: str, due: float, *, last_resort: bool = False) -> None:
        """`name` is receiving `chunk` (a relay from its upstream, a peer from a source of this
        swarm), its download due by `due`, and serves the prefix it has to downloaders that verify
        the whole.
        Planned from like a holding, but a transfer from it may take until `due` longer, and its
        time says nothing of the source's speed. `last_resort` (a peer receiving it in this
        swarm): offered only to a downloader with a free slot and no whole copy of anything it
        lacks to be had from an idle source (with nothing in flight where the swarm spans WAN
        links), which would otherwise wait, as it moves no faster than its source receives it.
        `add_have` makes it a holding; `drop_arriving` withdraws it."""
        node = self._nodes[name]
        i = self._index.get(chunk)
        if i is None or node.bits >> i & 1:
            return
        self.add_have(name, chunk)
        self._arriving.setdefault(name, {})[chunk] = due
        if last_resort:
            node.last_resort |= 1 << i

    @property
    def spans_wan(self) -> bool:
        """Whether some members are across a WAN link (relays of sites below)."""
        return self._wan

    def is_arriving(self, name: str, chunk: str) -> bool:
        """Whether `name` is a source of `chunk` while it still arrives there (add_arriving)."""
        arriving = self._arriving.get(name)
        return arriving is not None and chunk in arriving

    def drop_arriving(self, name: str, chunk: str) -> None:
        """The chunk `name` was receiving did not arrive whole: it is no source of it (its
        transfers of it fail by themselves). Ignored when it is not arriving there."""
        arriving = self._arriving.get(name)
        if not arriving or arriving.pop(chunk, None) is None:
            return
        node = self._nodes[name]
        i = self._index[chunk]
        bit = 1 << i
        node.last_resort &= ~bit
        node.bits ^= bit
        node.n_have -= 1
        if not node.recv & bit:
            self._cover_add(node, i, bit, -1)
            node.n_cover -= 1
        self._touch(node)

    # ---- transfers in flight -------------------------------------------------------------

    def cancel(self, transfer_id: int) -> Transfer | None:
        """Withdraw an in-flight transfer with no verdict on its source (the generation changed,
        the engine gave up for its own reasons). Unknown ids are ignored."""
        f = self._flights.get(transfer_id)
        if f is None:
            return None
        self._drop(f, delivered=False)
        return f.transfer

    def release(self, transfer_id: int) -> None:
        """The transfer is about to end (its downloader says so): its slots and link bookings are
        free for the next plan, so the next transfer starts as this one ends; its chunk stays on
        its way to the destination. The outcome still comes through finish(). Unknown or already
        released ids are ignored."""
        f = self._flights.get(transfer_id)
        if f is None or f.released:
            return
        f.released = True
        self._free_slots(f)
        self._touch_down(f.dst)
        self._touch_up(f.src)

    def _free_slots(self, f: Flight) -> None:
        """Give back a flight's link bookings and slots (the caller re-derives the nodes' sides)."""
        if f.booked:
            self._book.release(f.links, f.booked)
        s, d = f.src, f.dst
        if f.background:
            d.n_bg -= 1
        else:
            d.n_dl -= 1
        if f.narrow:
            s.n_narrow -= 1
        else:
            s.n_ul -= 1

    def _due_at(self, tid: int, deadline: float) -> None:
        """Flight tid times out at `deadline`."""
        due = self._due.get(deadline)
        if due is None:
            self._due[deadline] = [tid]
            heappush(self._due_times, deadline)
        else:
            due.append(tid)

    def _overdue(self, now: float) -> list[Flight]:
        """The flights still in flight whose deadline is not after now, by deadline then id; their
        deadlines are forgotten."""
        out = []
        times, flights = self._due_times, self._flights
        while times and times[0] <= now:
            for tid in self._due.pop(heappop(times)):
                f = flights.get(tid)
                if f is not None:
                    out.append(f)
        return out

    def _drop(self, f: Flight, delivered: bool = False) -> None:
        """Take a flight out of the books; `delivered` moves its chunk into the destination's holdings."""
        del self._flights[f.transfer.id]
        self.flights_epoch += 1
        if not f.released:
            self._free_slots(f)
        s, d, chunk = f.src, f.dst, f.chunk
        bit = 1 << chunk
        d.recv ^= bit                  # set while in flight: a node receives a chunk once at a time
        sending = s.sending
        left = sending[chunk] - 1
        if left:
            sending[chunk] = left
        else:
            del sending[chunk]
            s.busy ^= bit
        if delivered:
            if not d.bits & bit:
                d.bits |= bit
                d.n_have += 1
            elif d.name in self._arriving:     # it served it as it arrived: whole now
                self._arriving[d.name].pop(self._hashes[chunk], None)
                d.last_resort &= ~bit
        elif not d.bits & bit:
            self._cover_add(d, chunk, bit, -1)
            d.n_cover -= 1
        # d's download side, and its upload side if it got the chunk; s's upload side: _touch(d),
        # _touch_up(s), inline
        if not d.seed and d.n_dl < d.dl_slots and d.n_cover < len(self._hashes):
            self._hungry.add(d.idx)
        else:
            self._hungry.discard(d.idx)
        idle, wan = self._idle, self._wan
        for n in (d, s):
            if n.ul_slots and n.n_have and not n.corrupt and not n.silent and (
                    n.n_ul < n.ul_slots or (wan and n.n_narrow < self.config.narrow_extra_slots)):
                idle.add(n.idx)
            else:
                idle.discard(n.idx)

    # ---- incremental indexes -------------------------------------------------------------

    def _site_cover(self, node: NodeState) -> SiteCover | None:
        """The coverage of node's site, if node's chunks count as the site's own copies there
        (it can pass them on)."""
        if node.site is None or not node.ul_slots or node.corrupt:
            return None
        return self._sites[node.site]

    def _cover_add(self, node: NodeState, chunk: int, bit: int, delta: int) -> None:
        self._rarity.add(chunk, delta, bit)
        if node.site is not None and node.ul_slots and not node.corrupt:
            self._sites[node.site].add(chunk, delta)

    def _cover_change(self, node: NodeState, mask: int, delta: int) -> None:
        if not mask:
            return
        self._rarity.add_many(mask, delta)
        cover = self._site_cover(node)
        if cover is not None:
            cover.add_many(mask, delta)

    def _touch(self, n: NodeState) -> None:
        """Re-derive whether n wants a download and can give an upload right now."""
        self._touch_down(n)
        self._touch_up(n)

    def _touch_down(self, n: NodeState) -> None:
        if not n.seed and n.n_dl < n.dl_slots and n.n_cover < len(self._hashes):
            self._hungry.add(n.idx)
        else:
            self._hungry.discard(n.idx)

    def _touch_up(self, n: NodeState) -> None:
        """n can upload now: a free upload slot, or (in a swarm with WAN links) room for a narrow
        upload, and a chunk to give."""
        if n.ul_slots and n.n_have and not n.corrupt and not n.silent and (
                n.n_ul < n.ul_slots or (self._wan and n.n_narrow < self.config.narrow_extra_slots)):
            self._idle.add(n.idx)
        else:
            self._idle.discard(n.idx)

    # ---- queries over the swarm ----------------------------------------------------------

    def _holder(self, d: NodeState, need: int, limit: float) -> bool:
        """Whether some source no slower than `limit` could serve d something it needs, once free
        (across sites only what d's site does not cover)."""
        far = need & ~self._sites[d.site].covered() if d.site is not None else need
        for n in self._nodes.values():
            if (n.ul_slots and not n.corrupt and not n.silent and n.slowness <= limit and n is not d
                    and n.bits & (need if n.site == d.site or n.site is None else far)):
                return True
        return False

    # ---- what the sources' uploads showed -------------------------------------------------

    def _sample(self, s: NodeState, slowness: float) -> None:
        a = self.config.ewma_alpha
        s.slowness = (1 - a) * s.slowness + a * slowness    # starts from 1.0: one bad sample is no verdict
        s.measured = True
        self._stats_dirty = True

    def _refresh_stats(self, now: float) -> None:
        """The swarm's medians: the slowness of the measured sources (never below 1.0) and the
        seconds per byte of those that uploaded (None before any did); at most every
        stats_refresh_s, and only after a new measurement."""
        if not self._stats_dirty or now - self._stats_at < self.config.stats_refresh_s:
            return
        nodes = self._nodes.values()
        slow = [n.slowness for n in nodes if n.measured]
        spb = [n.spb for n in nodes if n.spb is not None]
        self._median_slowness = max(1.0, median(slow)) if slow else 1.0
        self._median_spb = median(spb) if spb else None
        self._stats_dirty = False
        self._stats_at = now

    # ---- read-only views -----------------------------------------------------------------

    def chunks(self) -> list[tuple[str, int]]:
        return list(zip(self._hashes, self._sizes))

    def has(self, name: str) -> ChunkBits:
        return ChunkBits(self._nodes[name].bits, len(self._hashes))

    def receiving(self, name: str) -> ChunkBits:
        return ChunkBits(self._nodes[name].recv, len(self._hashes))

    def node_names(self) -> list[str]:
        return list(self._nodes)

    def inflight(self) -> list[Transfer]:
        return [f.transfer for f in self._flights.values()]

    def fair_rates(self, skip: Collection[int] = ()) -> dict[int, float]:
        """The rate (bytes/s) each transfer in flight but those in `skip` is to be paced at: max-min
        fair over the finite links of their paths, released ones included (their last bytes still
        cross their links); a transfer from a slow source no faster than it booked. inf where no
        finite link limits a transfer."""
        return fair_rates(((tid, f.links, f.booked if f.background and f.booked else None)
                           for tid, f in self._flights.items() if tid not in skip), self._book.capacity)

    def link_booked(self) -> dict[str, float]:
        """Rate booked per finite link (bytes/s); never above the link's capacity."""
        return dict(self._book.booked)

    def node_stats(self, name: str) -> NodeStats:
        n = self._nodes[name]
        return NodeStats(
            downloads=n.downloads, uploads=n.uploads, dl_slots=n.dl_slots, ul_slots=n.ul_slots,
            have_count=n.n_have, avg_upload_s=n.upload_s_total / n.uploads if n.uploads else None,
            failures=n.failures, downloading=n.n_dl + n.n_bg, uploading=n.n_ul + n.n_narrow, slowness=n.slowness,
            corrupt=n.corrupt, seed=n.seed, site=n.site, dl_in_slots=n.n_dl, ul_in_slots=n.n_ul,
        )

    def is_complete(self, name: str) -> bool:
        return self._nodes[name].n_have == len(self._hashes)

    def swarm_complete(self) -> bool:
        total = len(self._hashes)
        return all(n.n_have == total for n in self._nodes.values())


def _columns(chunks: Sequence[tuple[str, int]]) -> tuple[Sequence[str], Mapping[str, int], Sequence[int]]:
    """The chunks' hashes, each one's number and their sizes: a manifest's `ChunkTable` gives
    them as they are held there (a list and a dict of a million hex texts would cost some 200
    bytes a chunk); other chunks (a simulated swarm's) are listed here."""
    if isinstance(chunks, ChunkTable):
        return chunks.hashes, chunks.numbers, chunks.sizes
    hashes = [h for h, _ in chunks]
    index = {h: i for i, h in enumerate(hashes)}
    if len(index) != len(hashes):
        raise ValueError("chunk hashes must be unique within a generation")
    return hashes, index, [size for _, size in chunks]
