"""The planner: who sends which chunk to whom, next. A pure policy over the swarm's state.

No sockets, no disk, no clock of its own: the caller passes `now` and a seeded `random.Random`, and
reports events (joins, haves, finished or failed transfers). `plan(now)` returns new transfers,
which are in flight from then on. The same object runs in the master and in the simulator.

Policy (docs/planner.md has the reasoning):
- Downloaders are served least-complete first; a downloader takes the rarest chunk (fewest nodes
  holding or receiving it) among what the probed idle sources can give it.
- A source that is already sending a chunk offers other chunks first, so copies spread.
- Among equally rare offers, a seed (master or relay) weighs `seed_weight` of a peer, a slow
  source 1/slowness, a source whose uploads failed lately (1 - its recent failure share).
- Slowness is measured (upload time against the time the rate cap allows) and compared with the
  swarm's median. A source slower than `slow_threshold` gets a cap it can keep, is held back with
  probability 1 - 1/slowness, and always when its upload would outlast the downloader's remaining
  work; its transfer takes one of `slow_extra_slots` beside the downloader's slots, so a slow
  copy never halves a downloader's speed. A held-back source is used only by a downloader that
  would otherwise have nothing in flight.
- A source that served corrupt data is never used again.
- Every finite link on a transfer's path is booked with the transfer's rate cap; a link is never
  booked beyond its capacity. A host link is split among the host's free slots, a site LAN among
  the transfers a round can still start towards the destination's site; a WAN transfer may take
  all the WAN has left. A WAN-bound transfer far slower than an upload slot runs beside the
  source's slots, so feeding relays does not starve the source's own site.
- A transfer crosses to another site only for a chunk that no node of the destination's site
  that can upload holds or is receiving, so each WAN link carries each chunk once. A remote
  downloader leaves the seed's uplink to the seed's own site when a peer can serve it.
- Timeouts follow the expected time at the rate cap (or the swarm's median seconds per byte),
  scaled by the swarm's median slowness; an expired transfer counts as a slow upload.
"""

from __future__ import annotations

import heapq
import math
import random
from array import array
from collections.abc import Iterable, Sequence
from statistics import median

from lanscatter.linkmap import LinkMap
from lanscatter.planner_links import LinkBook
from lanscatter.planner_state import (
    NodeState,
    RarityIndex,
    SiteCover,
    bits_from_indices,
    kept_runs,
    remap_bits,
    remap_counts,
)
from lanscatter.planner_types import ChunkBits, Flight, NodeStats, PlannerConfig, Transfer

__all__ = ["ChunkBits", "NodeStats", "Planner", "PlannerConfig", "Transfer"]


_DEFAULT_CONFIG = PlannerConfig()

# (finite links, nominal rate, LAN share the engine enforces, WAN link the source paces as a whole)
_Path = tuple[tuple[str, ...], float, float | None, tuple[str, float] | None]


class Planner:
    def __init__(self, *, links: LinkMap | None = None, rng: random.Random | None = None,
                 config: PlannerConfig = _DEFAULT_CONFIG) -> None:
        self.config = config
        self._rng = rng if rng is not None else random.Random(0)
        self._book = LinkBook(links)
        self._hashes: list[str] = []
        self._sizes: list[int] = []
        self._index: dict[str, int] = {}
        self._full = 0
        self._rarity = RarityIndex(array("i"))
        self._sites: dict[str, SiteCover] = {}
        self._nodes: dict[str, NodeState] = {}
        self._by_idx: dict[int, NodeState] = {}
        self._next_idx = 0
        self._hungry: set[int] = set()     # non-seed nodes with a free download slot and a need
        self._idle: set[int] = set()       # nodes with a free upload slot and something to give
        self._flights: dict[int, Flight] = {}
        self._deadlines: list[tuple[float, int]] = []
        self._next_id = 1
        self._median_slowness = 1.0        # of the measured sources, never below 1.0
        self._median_spb: float | None = None
        self._stats_dirty = False
        self._stats_at = -math.inf
        self._round_want: dict[str | None, int] = {}   # free download slots left this round, per site
        self._round_up = 0                              # free upload slots left this round

    # ---- generation and membership -------------------------------------------------------

    def set_chunks(self, chunks: Sequence[tuple[str, int]]) -> list[Transfer]:
        hashes = [h for h, _ in chunks]
        index = {h: i for i, h in enumerate(hashes)}
        if len(index) != len(hashes):
            raise ValueError("chunk hashes must be unique within a generation")
        cancelled = [f for f in self._flights.values() if self._hashes[f.chunk] not in index]
        for f in cancelled:
            self._drop(f)
        runs = kept_runs(self._hashes, index)
        for node in self._nodes.values():
            node.bits, node.recv = remap_bits(node.bits, runs), remap_bits(node.recv, runs)
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
        self._hashes, self._index = hashes, index
        self._sizes = [size for _, size in chunks]
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

    def remove_node(self, name: str) -> list[Transfer]:
        node = self._nodes[name]
        dropped = [f for f in self._flights.values() if f.src is node or f.dst is node]
        for f in dropped:
            self._drop(f)
        self._cover_change(node, node.bits, -1)
        del self._nodes[name], self._by_idx[node.idx]
        self._hungry.discard(node.idx)
        self._idle.discard(node.idx)
        return [f.transfer for f in dropped]

    def set_have(self, name: str, chunks: Iterable[str]) -> None:
        node = self._nodes[name]
        index = self._index
        bits = bits_from_indices([i for i in map(index.get, chunks) if i is not None], len(self._hashes))
        old_cover, new_cover = node.bits | node.recv, bits | node.recv
        self._cover_change(node, new_cover & ~old_cover, +1)
        self._cover_change(node, old_cover & ~new_cover, -1)
        node.bits, node.n_have = bits, bits.bit_count()
        node.n_cover = (bits | node.recv).bit_count()
        self._touch(node)

    def add_have(self, name: str, chunk: str) -> None:
        node = self._nodes[name]
        i = self._index.get(chunk)
        if i is None or node.bits >> i & 1:
            return
        if not node.recv >> i & 1:
            self._cover_add(node, i, +1)
            node.n_cover += 1
        node.bits |= 1 << i
        node.n_have += 1
        self._touch(node)

    # ---- planning ------------------------------------------------------------------------

    def plan(self, now: float) -> list[Transfer]:
        """New transfers for the free slots; they are in flight from now on."""
        self._refresh_stats(now)
        if not self._hungry or not self._idle:
            return []
        idle = sorted(self._idle)
        by_idx = self._by_idx
        out: list[Transfer] = []
        # One slot per downloader per pass, least complete first: a scarce source (the seed at
        # the start) spreads its first chunks over several downloaders, who can then pass them on.
        queue = [by_idx[i] for i in sorted(self._hungry, key=lambda i: (by_idx[i].n_have, i))]
        # how many transfers this round may still start, per destination site and in all
        want = self._round_want = {}
        for d in queue:
            want[d.site] = want.get(d.site, 0) + d.dl_slots - d.n_dl
        self._round_up = sum(max(0, by_idx[i].ul_slots - by_idx[i].n_ul) for i in idle)
        while queue and idle:
            again = []
            for d in queue:
                if not idle:
                    break
                t = self._pick(d, idle, now)
                if t is not None:
                    out.append(t)
                    want[d.site] -= 1
                    self._round_up -= 1
                    if d.n_dl < d.dl_slots:
                        again.append(d)
                else:
                    want[d.site] -= d.dl_slots - d.n_dl      # it will not use them this round
            queue = again
        return out

    def _pick(self, d: NodeState, idle: list[int], now: float) -> Transfer | None:
        cfg, rng, book = self.config, self._rng, self._book
        need = self._full & ~(d.bits | d.recv)
        if not need:
            return None
        down = math.inf
        if d.down_link is not None:
            left = book.left(d.down_link)
            if left <= cfg.min_link_share * book.capacity[d.down_link]:
                return None
            down = left / max(1, d.dl_slots - d.n_dl)
        n_need = need.bit_count()
        base = self._median_slowness
        slow_limit = cfg.slow_threshold * base
        offers: list[tuple[int, NodeState, int, bool]] = []       # (cover count, source, chunk, slow)
        fallback: list[tuple[int, NodeState, int, bool]] = []
        covered: int | None = None
        by_idx, rarest, d_site = self._by_idx, self._rarity.rarest, d.site
        max_probe, wanted = cfg.max_probe, cfg.candidates
        n = len(idle)
        start = int(rng.random() * n)
        probed = 0
        for k in range(n):
            s = by_idx[idle[(start + k) % n]]
            if s is d:
                continue
            probed += 1
            if s.n_ul >= s.ul_slots and (s.site == d_site or d_site is None):
                if probed >= max_probe:
                    break
                continue                   # full slots: only a narrow upload to another site fits
            cand = s.bits & need
            if cand and s.site != d_site and s.site is not None and d_site is not None:
                if covered is None:
                    covered = self._sites[d_site].covered()
                cand &= ~covered
            if cand:
                held = slow = s.slowness > slow_limit
                if slow:
                    if d.n_bg >= cfg.slow_extra_slots:
                        continue
                    # A slow source is held back in proportion to its slowness, and always when its
                    # upload would outlast the downloader's remaining work: slow copies make tails.
                    rel = s.slowness / base
                    held = (n_need <= max(cfg.endgame_chunks, cfg.endgame_margin * rel * d.dl_slots)
                            or rng.random() * rel > 1.0)
                if s.busy:
                    fresh = cand & ~s.busy
                    if fresh:
                        cand = fresh
                chunk, count = rarest(cand, rng)
                if held:
                    fallback.append((count, s, chunk, slow))
                else:
                    offers.append((count, s, chunk, slow))
                    if len(offers) >= wanted:
                        break
            if probed >= max_probe:
                break
        if not offers:
            # A held-back source still beats leaving a downloader with nothing in flight for good,
            # but not while a fast holder of what it needs will free up a slot soon.
            if not fallback or d.n_dl or d.n_bg or self._fast_holder(d, need, base):
                return None
            offers = fallback
        if d.site is not None:
            # Across a WAN the order of chunks hardly matters (the site behind gets them all from
            # its relay), so a remote downloader leaves the seed's uplink to its own site.
            local_seed = [o for o in offers if not (o[1].seed and o[1].site != d.site)]
            if local_seed:
                offers = local_seed
        while offers:
            best = min(o[0] for o in offers)
            top = [o for o in offers if o[0] == best]
            choice = top[0] if len(top) == 1 else self._weighted(top)
            _, s, chunk, slow = choice
            path = self._path_rate(s, d, down)     # checked last: a full path is the rare case
            narrow = path is not None and self._narrow(s, path[0], path[1])
            if path is None or (s.n_ul >= s.ul_slots and not narrow):
                offers.remove(choice)
                continue
            t = self._start(s, d, chunk, path, slow, narrow, now)
            if not self._uploads_free(s):
                # swap-remove: the probe order starts at a random place anyway
                i = idle.index(s.idx)
                idle[i] = idle[-1]
                idle.pop()
            return t
        return None

    def _narrow(self, s: NodeState, links: tuple[str, ...], rate: float) -> bool:
        """Whether a transfer is WAN-bound far below what an upload slot of s moves.

        Such a transfer runs beside the source's slots (up to narrow_extra_slots): a site feeding
        several relays over slow WANs would otherwise spend its upload slots on them, and its own
        peers would wait."""
        if s.n_narrow >= self.config.narrow_extra_slots or not any(n in self._book.wan for n in links):
            return False
        if s.up_link is None:
            return True                    # the WAN is the only limit known
        slot = self._book.capacity[s.up_link] / max(1, s.ul_slots)
        return rate <= self.config.narrow_share * slot

    def _weighted(self, offers: list[tuple[int, NodeState, int, bool]]) -> tuple[int, NodeState, int, bool]:
        """One of equally rare offers: a seed weighs seed_weight, a flaky or slow source less."""
        seed_weight = self.config.seed_weight
        weights = []
        for o in offers:
            s = o[1]
            w = seed_weight if s.seed else 1.0
            if s.fail_score > 0.0:
                w *= max(0.05, 1.0 - s.fail_score)
            if s.slowness > 1.0:
                w /= s.slowness
            weights.append(w)
        r = self._rng.random() * sum(weights)
        for o, w in zip(offers, weights):
            r -= w
            if r < 0:
                return o
        return offers[-1]

    def _fast_holder(self, d: NodeState, need: int, base: float) -> bool:
        """Whether some source that is not slow could serve d something it needs, once free."""
        limit = self.config.slow_threshold * base
        far = need & ~self._sites[d.site].covered() if d.site is not None else need
        for n in self._nodes.values():
            if (n.ul_slots and not n.corrupt and n.slowness <= limit and n is not d
                    and n.bits & (need if n.site == d.site or n.site is None else far)):
                return True
        return False

    def _path_rate(self, s: NodeState, d: NodeState, down: float) -> _Path | None:
        """Finite links of the path s -> d, the nominal rate a new transfer may book on them, and
        what the engine is to enforce (the LAN share; the WAN link its source paces as a whole).

        A host link is split among the host's free slots. A site LAN is split among the transfers
        this round can still start towards the destination's site, so the first transfer of a
        round does not take a whole LAN from the others. A WAN link carries `wan_streams`
        transfers at once, each booking that share of its capacity, all from one source: while
        one ends and the next is being arranged (messages, request, first byte), the source
        gives the others its rate, so the link stays busy."""
        book = self._book
        floor = self.config.min_link_share
        rate = down
        lan = math.inf
        group: tuple[str, float] | None = None
        links: tuple[str, ...] = book.middle(s.site, d.site)
        if links:
            split = max(1, min(self._round_want.get(d.site, 1), self._round_up))
            for name in links:
                left = book.left(name)
                if left <= floor * book.capacity[name]:
                    return None
                if name in book.wan:
                    if book.held_by_other(name, s.name):
                        return None
                    streams = max(1, min(self.config.wan_streams, d.dl_slots))
                    capacity = book.capacity[name]
                    rate = min(rate, left, capacity / streams)
                    if group is None or capacity < group[1]:
                        group = (name, capacity)
                else:
                    lan = min(lan, left / split)
                    rate = min(rate, lan)
        if s.up_link is not None:
            left = book.left(s.up_link)
            if left <= floor * book.capacity[s.up_link]:
                return None
            rate = min(rate, left / max(1, s.ul_slots - s.n_ul))
            links = (s.up_link, *links)
        if d.down_link is not None:
            links = (*links, d.down_link)
        return links, rate, (lan if math.isfinite(lan) else None), group

    def _start(self, s: NodeState, d: NodeState, chunk: int, path: _Path, background: bool, narrow: bool,
               now: float) -> Transfer:
        cfg = self.config
        links, nominal, pace_cap, pace_group = path
        size = self._sizes[chunk]
        slow = max(1.0, s.slowness)
        cap: float | None = None
        expected: float | None = None
        if math.isfinite(nominal):
            rate = nominal / slow                  # a known-slow source books only what it delivers
            cap, expected = rate, size / rate + cfg.transfer_overhead_s
        elif self._median_spb is not None:
            expected = size * self._median_spb * slow + cfg.transfer_overhead_s
        if expected is not None:
            timeout = max(cfg.min_timeout_s, cfg.timeout_factor * expected * self._median_slowness)
        else:
            timeout = cfg.initial_timeout_s
        t = Transfer(self._next_id, self._hashes[chunk], s.name, d.name, size, cap, timeout, now,
                     pace_cap, pace_group)
        self._next_id += 1
        if cap is not None:
            self._book.book(links, cap, s.name)
        self._cover_add(d, chunk, +1)
        d.recv |= 1 << chunk
        d.n_cover += 1
        if background:
            d.n_bg += 1
        else:
            d.n_dl += 1
        if narrow:
            s.n_narrow += 1
        else:
            s.n_ul += 1
        k = s.sending.get(chunk, 0)
        s.sending[chunk] = k + 1
        if not k:
            s.busy |= 1 << chunk
        self._flights[t.id] = Flight(t, s, d, chunk, links, cap or 0.0, background, narrow, expected, slow)
        heapq.heappush(self._deadlines, (now + timeout, t.id))
        self._touch_down(d)          # a transfer changes only d's download and s's upload side
        self._touch_up(s)
        return t

    # ---- outcomes ------------------------------------------------------------------------

    def finish(self, transfer_id: int, now: float, *, ok: bool, corrupt: bool = False) -> None:
        """Outcome of a transfer; unknown ids (already expired or dropped) are ignored."""
        f = self._flights.get(transfer_id)
        if f is None:
            return
        self._drop(f, delivered=ok)
        s, d = f.src, f.dst
        elapsed = max(0.0, now - f.transfer.started)
        if ok:
            s.uploads += 1
            d.downloads += 1
            s.upload_s_total += elapsed
            busy = max(0.0, elapsed - self.config.transfer_overhead_s)
            spb = busy / f.transfer.size if f.transfer.size else 0.0
            a = self.config.ewma_alpha
            s.spb = spb if s.spb is None else (1 - a) * s.spb + a * spb
            s.fail_score *= 1 - a
            if f.expected_s:
                ratio = elapsed / f.expected_s
                # at its cap an upload cannot show it could go faster: keeping pace counts as healthy
                uncapped = f.transfer.rate_cap is None
                self._sample(s, f.slowness * ratio if uncapped or ratio > self.config.kept_pace else 1.0)
            self._stats_dirty = True
        else:
            s.failures += 1
            a = self.config.ewma_alpha
            s.fail_score = (1 - a) * s.fail_score + a
            if corrupt and not s.corrupt:
                cover = self._site_cover(s)
                if cover is not None:
                    cover.add_many(s.bits | s.recv, -1)
                s.corrupt = True
                self._idle.discard(s.idx)

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

    def _free_slots(self, f: Flight) -> None:
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
        self._touch_down(d)
        self._touch_up(s)

    def expire(self, now: float) -> list[Transfer]:
        """Transfers past their timeout: dropped and charged to their source as slow uploads."""
        out: list[Transfer] = []
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            _, tid = heapq.heappop(heap)
            f = self._flights.get(tid)
            if f is None:
                continue
            self._drop(f)
            elapsed = now - f.transfer.started
            f.src.failures += 1
            ratio = elapsed / f.expected_s if f.expected_s else self.config.timeout_factor
            self._sample(f.src, f.slowness * ratio)
            out.append(f.transfer)
        return out

    def _drop(self, f: Flight, delivered: bool = False) -> None:
        """Take a flight out of the books; `delivered` moves its chunk into the destination's holdings."""
        del self._flights[f.transfer.id]
        if not f.released:
            self._free_slots(f)
        s, d, bit = f.src, f.dst, 1 << f.chunk
        d.recv &= ~bit
        left = s.sending[f.chunk] - 1
        if left:
            s.sending[f.chunk] = left
        else:
            del s.sending[f.chunk]
            s.busy &= ~bit
        if delivered:
            if not d.bits & bit:
                d.bits |= bit
                d.n_have += 1
        elif not d.bits & bit:
            self._cover_add(d, f.chunk, -1)
            d.n_cover -= 1
        self._touch(d)               # its download side, and its upload side if it got the chunk
        self._touch_up(s)

    def _sample(self, s: NodeState, slowness: float) -> None:
        a = self.config.ewma_alpha
        s.slowness = (1 - a) * s.slowness + a * slowness    # starts from 1.0: one bad sample is no verdict
        s.measured = True
        self._stats_dirty = True

    def _refresh_stats(self, now: float) -> None:
        if not self._stats_dirty or now - self._stats_at < self.config.stats_refresh_s:
            return
        nodes = self._nodes.values()
        slow = [n.slowness for n in nodes if n.measured]
        spb = [n.spb for n in nodes if n.spb is not None]
        self._median_slowness = max(1.0, median(slow)) if slow else 1.0
        self._median_spb = median(spb) if spb else None
        self._stats_dirty = False
        self._stats_at = now

    # ---- incremental indexes -------------------------------------------------------------

    def _site_cover(self, node: NodeState) -> SiteCover | None:
        """The coverage of node's site, if node's chunks count as the site's own copies there
        (it can pass them on)."""
        if node.site is None or not node.ul_slots or node.corrupt:
            return None
        return self._sites[node.site]

    def _cover_add(self, node: NodeState, chunk: int, delta: int) -> None:
        self._rarity.add(chunk, delta)
        cover = self._site_cover(node)
        if cover is not None:
            cover.add(chunk, delta)

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

    def _uploads_free(self, n: NodeState) -> bool:
        """A free upload slot, or (in a swarm with WAN links) room for a narrow upload."""
        return n.n_ul < n.ul_slots or (bool(self._book.wan) and n.n_narrow < self.config.narrow_extra_slots)

    def _touch_up(self, n: NodeState) -> None:
        if n.ul_slots and self._uploads_free(n) and n.n_have and not n.corrupt:
            self._idle.add(n.idx)
        else:
            self._idle.discard(n.idx)

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

    def link_booked(self) -> dict[str, float]:
        """Rate booked per finite link (bytes/s); never above the link's capacity."""
        return dict(self._book.booked)

    def node_stats(self, name: str) -> NodeStats:
        n = self._nodes[name]
        return NodeStats(
            downloads=n.downloads, uploads=n.uploads, dl_slots=n.dl_slots, ul_slots=n.ul_slots,
            have_count=n.n_have, avg_upload_s=n.upload_s_total / n.uploads if n.uploads else None,
            failures=n.failures, downloading=n.n_dl + n.n_bg, uploading=n.n_ul + n.n_narrow, slowness=n.slowness,
            corrupt=n.corrupt, seed=n.seed, site=n.site,
        )

    def is_complete(self, name: str) -> bool:
        return self._nodes[name].n_have == len(self._hashes)

    def swarm_complete(self) -> bool:
        total = len(self._hashes)
        return all(n.n_have == total for n in self._nodes.values())
