"""The planner: who sends which chunk to whom, next. A pure policy over the swarm's state.

No sockets, no disk, no clock of its own: the caller passes `now` and a seeded `random.Random`, and
reports events (joins, haves, finished or failed transfers). `plan(now)` returns new transfers,
which are in flight from then on. The same object runs in the master and in the simulator. The
books it decides on (nodes, holdings, who is hungry or idle, flights) are kept by its base class,
`SwarmBooks` in books.py; this module is the policy.

Policy (docs/planner.md has the reasoning):
- Downloaders are served least-complete first, relays (across a WAN) before the seed's own site; a downloader takes the rarest chunk (fewest nodes
  holding or receiving it) among what the probed idle sources can give it.
- A source that is already sending a chunk offers other chunks first, so copies spread.
- Of equally rare chunks a seed sends the short ones (small files, files' ends) first: they are
  whole soonest, so at the start the peers have something to pass on while the big ones come.
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
  booked beyond its capacity. A host's port is split among the host's free slots, a site's shared
  switch among the transfers a round can still start towards the destination's site; a WAN transfer may take
  all the WAN has left. A WAN-bound transfer far slower than an upload slot runs beside the
  source's slots, so feeding relays does not starve the source's own site.
- A transfer crosses to another site only for a chunk that no node of the destination's site
  that can upload holds or is receiving, so each WAN link carries each chunk once. A remote
  downloader leaves the seed's uplink to the seed's own site when a peer can serve it.
- Timeouts follow the expected time at the rate cap (or the swarm's median seconds per byte),
  scaled by the swarm's median slowness; an expired transfer counts as a slow upload.
- A chunk still arriving at a node from outside the swarm (a relay's, from upstream) is offered like
  a holding; a transfer of it may last until that download is due, and measures no slowness. One
  arriving at a member from inside the swarm (`last_resort`) is offered only to a free slot that
  no idle source can give a whole chunk (in a swarm spanning WAN links: of a downloader with
  nothing in flight).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from operator import attrgetter

from lanscatter.core.linkmap import LinkMap
from lanscatter.core.planner.books import SwarmBooks
from lanscatter.core.planner.state import NodeState
from lanscatter.core.planner.types import ChunkBits, Flight, NodeStats, PlannerConfig, Transfer

__all__ = ["ChunkBits", "NodeStats", "Planner", "PlannerConfig", "Transfer"]


_DEFAULT_CONFIG = PlannerConfig()

_least_complete = attrgetter("n_have", "idx")
_new_tuple = tuple.__new__          # a Transfer without the named tuple's Python-level __new__
# (finite links, nominal rate, switch share the engine enforces, WAN link the source paces as a whole)
_Path = tuple[tuple[str, ...], float, float | None, tuple[str, float] | None]
_Offer = tuple[NodeState, int, bool, int]        # (source, the chunks it offers, slow, place in idle)


class Planner(SwarmBooks):
    def __init__(self, *, links: LinkMap | None = None, rng: random.Random | None = None,
                 config: PlannerConfig = _DEFAULT_CONFIG) -> None:
        super().__init__(links, config)
        self._rng = rng if rng is not None else random.Random(0)
        self._next_id = 1
        self._round_want: dict[str | None, int] = {}   # free download slots left this round, per site
        self._round_up = 0                              # free upload slots left this round
        self._soon: dict[int, int] = {}                 # per idle source, its arriving chunks worth following now
        self._guessed: list[int] = []                   # flights timed by the initial guess, until a speed is known
        self.extended: list[tuple[Transfer, float]] = []   # of the last expire(): given until then, at their port's pace

    # ---- planning ------------------------------------------------------------------------

    def plan(self, now: float) -> list[Transfer]:
        """New transfers for the free slots; they are in flight from now on."""
        self._refresh_stats(now)
        if self._guessed and self._median_spb is not None:
            self._retime_guessed()
        if not self._hungry or not self._idle:
            return []
        by_idx = self._by_idx
        idle = [by_idx[i] for i in sorted(self._idle)]
        out: list[Transfer] = []
        # One slot per downloader per pass, least complete first: a scarce source (the seed at
        # the start) spreads its first chunks over several downloaders, who can then pass them on.
        # A relay (a downloader of a site with no seed) with nothing in flight comes first: it
        # takes a narrow share of a source's port, while the LAN copies before it would book all
        # of it and hold the WAN idle until one of them ended (seconds, on 100 Mbit/s ports). One
        # transfer keeps a WAN busy (its source paces the link as a whole), so a relay's further
        # ones wait their turn like anyone's: they would take the seed's slots from its own site.
        seeded = {n.site for n in by_idx.values() if n.seed}
        queue = sorted([by_idx[i] for i in self._hungry],
                       key=lambda d: (d.n_dl > 0 or d.site is None or d.site in seeded, d.n_have, d.idx))
        # how many transfers this round may still start, per destination site and in all
        want = self._round_want = {}
        for d in queue:
            want[d.site] = want.get(d.site, 0) + d.dl_slots - d.n_dl
        self._round_up = sum(max(0, s.ul_slots - s.n_ul) for s in idle)
        # What the idle sources could give, once a round, by what _pick may offer whom (or draw a
        # random number for): a downloader needing none of it gets nothing, without probing each
        # source. Most hungry downloaders of a big site are such (one download in flight, the
        # idle sources holding only what it has), and each round probed them all.
        soon = self._soon = {}
        whole = fast = follow = slow_follow = 0
        cfg = self.config
        slow_limit = cfg.slow_threshold * self._median_slowness
        for s in idle:
            held = s.bits
            if s.last_resort:
                soon[s.idx] = got = self._arriving_soon(s, s.last_resort, now)
                held ^= s.last_resort
                if s.slowness <= slow_limit:
                    follow |= got
                else:
                    slow_follow |= got
            whole |= held
            if s.slowness <= slow_limit:
                fast |= held
        # (as _pick: beside a slow download only whole chunks, from a fast source once its extra
        # slots are taken; followings beside downloads in flight only in a swarm without WAN links)
        after_slow, beside = whole | slow_follow, (whole if self._wan else whole | follow) | slow_follow
        anything, bg_slots = whole | follow | slow_follow, cfg.slow_extra_slots
        pick = self._pick
        while queue and idle:
            again = []
            for d in queue:
                if not idle:
                    break
                t = pick(d, idle, now, (fast if d.n_bg >= bg_slots else after_slow) if d.n_bg
                         else beside if d.n_dl else anything)
                if t is not None:
                    out.append(t)
                    want[d.site] -= 1
                    self._round_up -= 1
                    if d.n_dl < d.dl_slots:
                        again.append(d)
                else:
                    want[d.site] -= d.dl_slots - d.n_dl      # it will not use them this round
            queue = sorted(again, key=_least_complete) if again else again
        return out

    def _pick(self, d: NodeState, idle: list[NodeState], now: float, supply: int) -> Transfer | None:
        """`supply`: every chunk some idle source could offer d this round (plan())."""
        need = self._full ^ (d.bits | d.recv)        # (the XOR of a subset: cheaper than & ~)
        if not need:
            return None
        cfg, rng = self.config, self._rng
        down = math.inf
        if d.down_link is not None:
            book = self._book
            left = book.left(d.down_link)
            if left <= cfg.min_link_share * book.capacity[d.down_link]:
                return None
            free = d.dl_slots - d.n_dl
            down = left / free if free > 1 else left         # (as left / max(1, free), without a call)
        n_need = -1                        # counted when a slow source needs it
        base = self._median_slowness
        slow_limit = cfg.slow_threshold * base
        offers: list[_Offer] = []
        fallback: list[_Offer] = []
        resorts: list[_Offer] = []         # chunks arriving at a peer (last_resort)
        far_seed = False                   # some offer comes from a seed of another site
        covered: int | None = None
        d_site = d.site
        max_probe, wanted = cfg.max_probe, cfg.candidates
        n = len(idle)
        start = int(rng.random() * n)
        if not need & supply:
            return None                    # (after the draw: the same choices as probing in vain)
        probed = 0
        for k in range(start, start + n):
            k %= n
            s = idle[k]
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
                cand ^= cand & covered
            if cand and s.last_resort:
                whole = cand ^ (cand & s.last_resort)
                cand, resort = (whole, False) if whole else (cand & self._soon[s.idx], True)
            else:
                resort = False
            if cand:
                held = slow = s.slowness > slow_limit
                if slow:
                    if d.n_bg >= cfg.slow_extra_slots:
                        continue
                    # A slow source is held back in proportion to its slowness, and always when its
                    # upload would outlast the downloader's remaining work: slow copies make tails.
                    rel = s.slowness / base
                    if n_need < 0:
                        n_need = need.bit_count()
                    held = (n_need <= max(cfg.endgame_chunks, cfg.endgame_margin * rel * d.dl_slots)
                            or rng.random() * rel > 1.0)
                if s.busy:
                    fresh = cand ^ (cand & s.busy)
                    if fresh:
                        cand = fresh
                if s.seed and s.site != d_site:
                    far_seed = True
                if resort:
                    if not slow:           # (a slow one would hold its follower to its pace)
                        resorts.append((s, cand, slow, k))
                elif held:
                    fallback.append((s, cand, slow, k))
                else:
                    offers.append((s, cand, slow, k))
                    if len(offers) >= wanted:
                        break
            if probed >= max_probe:
                break
        if not offers:
            # A held-back source still beats leaving a downloader with nothing in flight for good,
            # but not while a fast holder of what it needs will free up a slot soon. A chunk still
            # arriving at its source comes now, at the pace it arrives there, rather than a
            # chunk's time later; inside one site, to a slot that would otherwise wait beside
            # downloads in flight too: where the seed's port bounds the site, the chunks it sent
            # last are all there is.
            if d.n_bg:
                return None
            if d.n_dl:
                if not resorts or self._wan:
                    return None
                offers = resorts
            elif fallback and not self._holder(d, need, slow_limit):
                offers = fallback
            elif resorts:
                offers = resorts
            else:
                return None
        if far_seed and d_site is not None:
            # Across a WAN the order of chunks hardly matters (the site behind gets them all from
            # its relay), so a remote downloader leaves the seed's uplink to its own site.
            local_seed = [o for o in offers if not (o[0].seed and o[0].site != d_site)]
            if local_seed:
                offers = local_seed
        rarity = self._rarity
        while offers:
            # The offer of the rarest chunk wins; equally rare ones are weighed. The rarest count
            # among all offers is found once, on their union: an offer holding a chunk of that
            # count is among the rarest.
            if len(offers) == 1:
                choice = offers[0]
                j = rarity.lowest(choice[1])
            elif len(offers) == 2:         # the usual case, as below
                a, b = offers
                j = rarity.lowest(a[1] | b[1])
                rarest = rarity.below[j]           # nothing rarer in either: their rarest
                choice = (b if not a[1] & rarest else a if not b[1] & rarest else self._weighted(offers))
            else:
                union = 0
                for o in offers:
                    union |= o[1]
                j = rarity.lowest(union)
                rarest = rarity.below[j]
                top = [o for o in offers if o[1] & rarest]
                choice = top[0] if len(top) == 1 else self._weighted(top)
            s, cand, slow, i = choice
            if s.seed and (short := cand & self._short & rarity.below[j]):
                cand = short                   # a seed's short chunks are whole, and passed on, soonest
            chunk = rarity.pick(cand, j, rng)
            path = self._path_rate(s, d, down)     # checked last: a full path is the rare case
            narrow = path is not None and self._wan and self._narrow(s, path[0], path[1])
            if path is None or (s.n_ul >= s.ul_slots and not narrow):
                offers.remove(choice)
                continue
            t = self._start(s, d, chunk, path, slow, narrow, now)
            if not (s.n_ul < s.ul_slots or (self._wan and s.n_narrow < cfg.narrow_extra_slots)):
                # no upload left (as in _touch_up): swap-remove, the probe order starts at a
                # random place anyway
                idle[i] = idle[-1]
                idle.pop()
            return t
        return None

    def _arriving_soon(self, s: NodeState, cand: int, now: float) -> int:
        """Of the chunks arriving at s (last_resort), those whole there sooner than a copy of
        them from a source that holds them would take: a slow feed is not worth following."""
        spb = self._median_spb
        if spb is None:
            return cand
        due = self._arriving[s.name]
        soon = 0
        while cand:
            low = cand & -cand
            i = low.bit_length() - 1
            if due.get(self._hashes[i], math.inf) - now <= self._sizes[i] * spb:
                soon |= low
            cand ^= low
        return soon

    def _narrow(self, s: NodeState, links: tuple[str, ...], rate: float) -> bool:
        """Whether a transfer is WAN-bound far below what an upload slot of s moves.

        Such a transfer runs beside the source's slots (up to narrow_extra_slots): a site feeding
        several relays over slow WANs would otherwise spend its upload slots on them, and its own
        peers would wait."""
        if s.n_narrow >= self.config.narrow_extra_slots or self._book.wan.isdisjoint(links):
            return False
        if s.up_link is None:
            return True                    # the WAN is the only limit known
        slot = self._book.capacity[s.up_link] / max(1, s.ul_slots)
        return rate <= self.config.narrow_share * slot

    def _weighted(self, offers: list[_Offer]) -> _Offer:
        """One of equally rare offers: a seed weighs seed_weight, a flaky or slow source less."""
        seed_weight = self.config.seed_weight
        weights = []
        for o in offers:
            s = o[0]
            w = seed_weight if s.seed else 1.0
            if s.fail_score > 0.0:
                w *= max(0.05, 1.0 - s.fail_score)
            if s.slowness > 1.0:
                w /= s.slowness
            weights.append(w)
        if len(weights) == 2:          # the usual case, as below
            first, second = weights
            return offers[0] if self._rng.random() * (first + second) - first < 0 else offers[1]
        r = self._rng.random() * sum(weights)
        for o, w in zip(offers, weights):
            r -= w
            if r < 0:
                return o
        return offers[-1]

    def _path_rate(self, s: NodeState, d: NodeState, down: float) -> _Path | None:
        """Finite links of the path s -> d, the nominal rate a new transfer may book on them, and
        what the engine is to enforce (a transfer's share of a site's shared switch when it crosses
        no WAN; the WAN link its source paces as a whole).

        A host's port is split among the host's free slots. A site's switch is split among the
        transfers this round can still start towards the destination's site, so the first transfer
        of a round does not take a whole switch from the others. A WAN link carries `wan_streams`
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
            free = s.ul_slots - s.n_ul                 # split among the free slots (at least one)
            rate = min(rate, left / free if free > 1 else left)
            links = (s.up_link, *links)
        if d.down_link is not None:
            links = (*links, d.down_link)
        # A WAN transfer is kept to the WAN's rate by its source; a switch share taken when it was
        # planned (the site's own copies may hold most of the switch for a moment) would hold it
        # down for its whole life, far below a rate the switch hardly notices.
        return links, rate, (lan if group is None and math.isfinite(lan) else None), group

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
        elif self._median_spb is not None or d.rx_peak:
            expected = self._uncapped_s(slow, d, size, d.n_dl + d.n_bg + 1)
        guessed = expected is None
        timeout = cfg.initial_timeout_s if expected is None else self._timeout(expected)
        if self._arriving and (arriving := self._arriving.get(s.name)):
            due = arriving.get(self._hashes[chunk])
            if due is not None:
                # Served as it arrives: the source's own download sets the pace, not its speed.
                timeout += max(0.0, due - now)
                expected = None
        tid = self._next_id
        self._next_id = tid + 1
        t = _new_tuple(Transfer, (tid, self._hashes[chunk], s.name, d.name, size, cap, timeout, now,
                                   pace_cap, pace_group))
        if cap is not None:
            self._book.book(links, cap, s.name)
        # the books, inline: this runs once per transfer
        bit = 1 << chunk
        self._rarity.add(chunk, 1, bit)
        if d.site is not None and d.ul_slots and not d.corrupt:      # as _cover_add
            self._sites[d.site].add(chunk, 1)
        d.recv |= bit
        d.n_cover += 1
        if background:
            d.n_bg += 1
        else:
            d.n_dl += 1
        if narrow:
            s.n_narrow += 1
        else:
            s.n_ul += 1
        sending = s.sending
        k = sending.get(chunk, 0)
        sending[chunk] = k + 1
        if not k:
            s.busy |= bit
        self._flights[tid] = Flight(t, s, d, chunk, links, cap or 0.0, background, narrow, expected, slow,
                                     guessed=guessed)
        self.flights_epoch += 1
        self._due_at(tid, now + timeout)
        if guessed:
            guesses = self._guessed
            guesses.append(tid)
            if len(guesses) > 2 * len(self._flights) + 64:     # ended ones, while nothing is measured
                self._guessed = [g for g in guesses if g in self._flights]
        # a transfer changes only d's download and s's upload side (as _touch_down, _touch_up)
        if d.n_dl >= d.dl_slots or d.n_cover >= len(self._hashes):
            self._hungry.discard(d.idx)
        if not (s.n_ul < s.ul_slots or (self._wan and s.n_narrow < cfg.narrow_extra_slots)):
            self._idle.discard(s.idx)
        return t

    # ---- outcomes ------------------------------------------------------------------------

    def finish(self, transfer_id: int, now: float, *, ok: bool, corrupt: bool = False) -> None:
        """Outcome of a transfer; unknown ids (already expired or dropped) are ignored."""
        f = self._flights.get(transfer_id)
        if f is None:
            return
        port_s = self._dest_port_s(f)
        self._drop(f, delivered=ok)
        s, t = f.src, f.transfer
        cfg = self.config
        a = cfg.ewma_alpha
        elapsed = now - t.started if now > t.started else 0.0
        if ok:
            s.uploads += 1
            f.dst.downloads += 1
            s.upload_s_total += elapsed
            expected_s = f.expected_s
            if port_s and port_s >= self._swarm_s(t.size, f.slowness):
                # the destination's port set the pace (its own, or beside its other downloads): it
                # says nothing of the source's speed
                expected_s = max(expected_s or 0.0, port_s)
            else:
                busy = elapsed - cfg.transfer_overhead_s
                spb = busy / t.size if t.size and busy > 0.0 else 0.0
                s.spb = spb if s.spb is None else (1 - a) * s.spb + a * spb
            s.fail_score *= 1 - a
            if expected_s:
                ratio = elapsed / expected_s
                # at its cap an upload cannot show it could go faster: keeping pace counts as healthy
                sample = f.slowness * ratio if t.rate_cap is None or ratio > cfg.kept_pace else 1.0
                s.slowness = (1 - a) * s.slowness + a * sample        # as _sample
                s.measured = True
            self._stats_dirty = True
        else:
            s.failures += 1
            s.fail_score = (1 - a) * s.fail_score + a
            if corrupt and not s.corrupt:
                cover = self._site_cover(s)
                if cover is not None:
                    cover.add_many(s.bits | s.recv, -1)
                s.corrupt = True
                self._idle.discard(s.idx)

    def _dest_port_s(self, f: Flight) -> float:
        """Seconds an uncapped flight needs at its destination's own port beside the others in
        flight to it (0: capped, or the port unknown)."""
        d = f.dst
        if f.transfer.rate_cap is not None or not d.rx_peak:
            return 0.0
        return self._port_s(d, f.transfer.size, d.n_dl + d.n_bg) + self.config.transfer_overhead_s

    def _swarm_s(self, size: int, slow: float) -> float:
        """Seconds `size` bytes take at the swarm's median speed from a source this slow (0: none
        measured yet)."""
        return size * self._median_spb * slow if self._median_spb is not None else 0.0

    def _uncapped_s(self, slow: float, d: NodeState, size: int, downloads: int) -> float:
        """Expected seconds of a transfer no link caps: at the swarm's median speed (times the
        source's slowness), or at the destination's own port where that is slower."""
        return max(self._swarm_s(size, slow), self._port_s(d, size, downloads)) + self.config.transfer_overhead_s

    def _timeout(self, expected: float) -> float:
        cfg = self.config
        return min(cfg.max_timeout_s, max(cfg.min_timeout_s, cfg.timeout_factor * expected * self._median_slowness))

    def deadline(self, transfer_id: int) -> float | None:
        """When a transfer in flight is past its time. One planned before anything was measured
        has the initial guess (minutes) as its timeout; once the swarm's speed is known, the
        timeout a transfer like it would get now applies where it is sooner. None: not in flight."""
        f = self._flights.get(transfer_id)
        if f is None:
            return None
        t = f.transfer
        timeout = t.timeout_s
        if f.guessed and self._median_spb is not None:
            d = f.dst
            known = self._timeout(self._uncapped_s(max(1.0, f.src.slowness), d, t.size, d.n_dl + d.n_bg))
            timeout = min(timeout, timeout - self.config.initial_timeout_s + known)   # keeps a wait for an arriving chunk
        return t.started + timeout

    def _retime_guessed(self) -> None:
        """The swarm's speed is known: each flight timed by the initial guess (minutes) times out
        as one like it planned now would (a source that hangs at the start is left sooner)."""
        for tid in self._guessed:
            deadline = self.deadline(tid)
            f = self._flights.get(tid)
            if deadline is not None and f is not None and deadline < f.transfer.started + f.transfer.timeout_s:
                self._due_at(tid, deadline)
        self._guessed.clear()

    def expire(self, now: float, stalled: Callable[[str], bool] | None = None) -> list[Transfer]:
        """Transfers past their timeout: dropped and charged to their source as slow uploads, but
        for those whose destination `stalled` says is the one stalled (no verdict on the source).
        One its destination's own port (rx_peak) could not have carried in time, planned
        before that port was seen, is given the time the port needs instead (`extended`: the
        downloader keeps going until the master withdraws it)."""
        out: list[Transfer] = []
        self.extended = []
        overdue = self._overdue(now)
        ports = [self._dest_port_s(f) for f in overdue]     # beside each other: before any is dropped
        for f, port_s in zip(overdue, ports):
            t = f.transfer
            elapsed = now - t.started
            if port_s and not (stalled is not None and stalled(f.dst.name)):
                until = t.started + self._timeout(port_s)
                if until > now:
                    self._due_at(t.id, until)
                    f.expected_s = max(f.expected_s or 0.0, port_s)
                    self.extended.append((t, until))
                    continue
            self._drop(f)
            out.append(t)
            if stalled is not None and stalled(f.dst.name):
                continue
            f.src.failures += 1
            ratio = elapsed / f.expected_s if f.expected_s else self.config.timeout_factor
            self._sample(f.src, f.slowness * ratio)
        return out
