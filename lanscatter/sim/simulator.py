"""A discrete-event swarm simulator on a virtual clock, driving the real planner.

Pure: no sockets, no disk, no wall clock; everything random comes from one seeded generator, so
the same configuration and seed give the same run. The network is modelled the way production
runs it: one planner per site's swarm (its master or relay as seed, its peers, and the relay of
each child site as a download-only member), chained with cut-through (a chunk a relay finishes in
its upstream swarm is at once on offer in its own).

Transfer model: a transfer moves at its rate cap, but never faster than its share of the source's
real uplink and the destination's real downlink (max-min fair among the transfers on that link).
The transfers of one WAN link come from one source, which paces them together as the engine does
(upload_pace.py): each moves at the link's rate divided among those in flight, so one ending
leaves its rate to the others. (On a LAN the engine also lets a transfer beyond its booked cap
when its host's other slot is idle; the simulator keeps the cap there, so it errs on the slow side.)
A site's shared switch (`switch:<site>`) is kept by the planner's bookings alone: the caps of the
transfers crossing it never add up to more than it.
"Slow" peers upload `slowdown` times slower than the link map says, which the planner only learns
by measuring. A failing transfer breaks after a random share of its bytes; a transfer still
running at its timeout is aborted, as the engine would. Bytes sent count on every WAN link crossed,
finished or not, so the WAN ratio includes retries.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any, cast

from lanscatter.core.ideal import Ideal, efficiency, ideal_time
from lanscatter.core.linkmap import Link, LinkMap
from lanscatter.core.planner import Planner, PlannerConfig, Transfer
from lanscatter.sim.model import SimConfig, SimResult, SimTopology, SiteFigures, percentile, star_topology

_FINISH, _EXPIRE, _LEAVE, _JOIN, _TICK = range(5)


@dataclass(slots=True, eq=False)
class _Host:
    name: str
    site: str
    up_rate: float                 # real capacity; the link map may promise more
    down_rate: float
    slow: bool = False
    online: bool = True
    completed_at: float | None = None
    ups: list[_Active] = field(default_factory=list)
    downs: list[_Active] = field(default_factory=list)
    up_demand: float = 0.0         # sum of the caps of ups / downs
    down_demand: float = 0.0
    held: list[str] = field(default_factory=list)   # chunks kept while offline
    own: _Swarm | None = None      # the swarm it seeds (a master or relay)


@dataclass(slots=True, eq=False)
class _Swarm:
    index: int
    site: str
    planner: Planner
    links: LinkMap
    active: dict[int, _Active] = field(default_factory=dict)     # transfer id -> its transfer here


@dataclass(slots=True, eq=False)
class _Active:
    swarm: _Swarm
    t: Transfer
    src: _Host
    dst: _Host
    cap: float
    wan: tuple[str, ...]
    fail_left: float               # bytes still to go when it breaks (0.0 = it will not break)
    rate: float = 0.0
    remaining: float = 0.0
    last: float = 0.0
    version: int = 0               # of its latest finish event; -1 once it is off the network


def _site_of(topo: SimTopology, host: str) -> str:
    """The site of a host of the tree."""
    return next(h.site for h in topo.hosts if h.name == host)


def _total_cap(actives: list[_Active]) -> float:
    """The sum of the caps, added afresh (no drift), in order."""
    if len(actives) == 1:
        return actives[0].cap
    total = 0.0
    for a in actives:
        total += a.cap
    return total


def _fair_shares(actives: list[_Active], capacity: float) -> dict[int, float]:
    """Max-min fair split of capacity among transfers whose demand is their rate cap (by id())."""
    shares: dict[int, float] = {}
    left, todo = capacity, sorted(actives, key=lambda a: a.cap)
    for k, a in enumerate(todo):
        fair = left / (len(todo) - k)
        give = min(a.cap, fair)
        shares[id(a)] = give
        left -= give
    return shares


class Simulation:
    def __init__(self, config: SimConfig, topology: SimTopology | None = None) -> None:
        self.config = cfg = config
        self.topology = topology if topology is not None else star_topology(config)
        self.rng = random.Random(cfg.seed)
        self.now = 0.0
        self.chunks = [(f"{i:08x}", cfg.chunk_size) for i in range(cfg.chunks)]
        self.dataset_bytes = cfg.chunks * cfg.chunk_size
        self.sites = [site for site, _ in self.topology.sites]
        self.hosts: dict[str, _Host] = {}
        self.head: dict[str, str] = {}                   # site -> its master or relay
        self.swarm_of: dict[str, list[_Swarm]] = {}     # host -> swarms it belongs to
        self.own_swarm: dict[str, _Swarm] = {}          # master/relay -> the swarm it seeds
        self.wan_bytes: dict[str, float] = {}
        self.wan_wasted: dict[str, float] = {}           # the part sent by attempts that failed
        self.transfers = self.failures = self.expired = 0
        # time -> its events (kind, payload, version) in the order they were scheduled, and the
        # times as a heap: transfers of one round end at few distinct times. A finish event counts
        # only while its version is the transfer's latest (a new rate or its end makes it stale).
        self._events: dict[float, list[tuple[int, Any, int]]] = {}    # (payload: by kind)
        self._times: list[float] = []
        self._dirty: set[int] = set()
        self._wan_route: dict[tuple[str, str], tuple[str, ...]] = {}
        self._groups: dict[str, list[_Active]] = {}      # WAN link -> its transfers in flight
        self.origin = self._build()
        self._incomplete = {h for h in self.hosts if h != self.origin} if self.chunks else set()

    # ---- setup -----------------------------------------------------------------------------

    def _build(self) -> str:
        cfg, rng, topo = self.config, self.rng, self.topology
        heads = {h.site: h.name for h in topo.hosts if h.role in ("master", "relay")}
        masters = [h.name for h in topo.hosts if h.role == "master"]
        root = [site for site, parent in topo.sites if parent is None]
        if len(masters) != 1 or set(heads) != set(self.sites) or root != [_site_of(topo, masters[0])]:
            raise ValueError("a simulated tree needs one master in the root site "
                             "and one relay in every other site")
        self.head = heads
        peers = [h.name for h in topo.hosts if h.role == "peer"]
        slow = set(rng.sample(peers, round(cfg.slow_fraction * len(peers))))
        for h in topo.hosts:
            up = h.up_rate / cfg.slowdown if h.name in slow else h.up_rate
            self.hosts[h.name] = _Host(h.name, h.site, up, h.down_rate, slow=h.name in slow,
                                       completed_at=0.0 if h.role == "master" else None)
        host_links = {f"{d}:{h.name}": Link(f"{d}:{h.name}", rate)
                      for h in topo.hosts for d, rate in (("up", h.up_rate), ("down", h.down_rate))}
        parents = dict(topo.sites)
        # the whole tree in one map: what ideal multicast from the origin would cross
        self.physical = LinkMap(links={**host_links, **topo.links},
                                node_site={h.name: h.site for h in topo.hosts}, site_parent=parents)
        pcfg = PlannerConfig(min_timeout_s=cfg.min_timeout_s)
        self.swarms: list[_Swarm] = []
        for site in self.sites:
            children = [c for c, parent in topo.sites if parent == site]
            members = [heads[site], *(h.name for h in topo.hosts if h.site == site and h.role == "peer"),
                       *(heads[c] for c in children)]
            near = {f"switch:{site}"} | {f"switch:{c}" for c in children} \
                | {f"wan:{site}>{c}" for c in children} | {f"wan:{c}>{site}" for c in children}
            shared = {n: link for n, link in topo.links.items() if n in near}
            own = self.own_swarm[heads[site]] = self._add_swarm(site, members, shared, host_links, parents, pcfg)
            self.hosts[heads[site]].own = own
        churners = rng.sample(peers, round(cfg.churn * len(peers)))
        ideal = self.ideal(masters[0])
        for p in churners:
            leave = rng.uniform(0.0, ideal)
            self._push(leave, _LEAVE, p)
            self._push(leave + rng.uniform(0.05, 0.3) * ideal, _JOIN, p)
        self._push(cfg.plan_interval_s, _TICK, None)
        return masters[0]

    def _add_swarm(self, site: str, members: list[str], shared: dict[str, Link], host_links: dict[str, Link],
                   parents: dict[str, str | None], pcfg: PlannerConfig) -> _Swarm:
        cfg = self.config
        links = {**shared, **{k: v for k, v in host_links.items() if k.split(":", 1)[1] in members}}
        node_site = {m: self.hosts[m].site for m in members}
        lm = LinkMap(links=links, node_site=node_site, site_parent=parents)
        planner = Planner(links=lm, rng=random.Random(self.rng.getrandbits(64)), config=pcfg)
        sw = _Swarm(len(self.swarms), site, planner, lm)
        planner.set_chunks(self.chunks)
        self.swarms.append(sw)
        for m in members:
            self.swarm_of.setdefault(m, []).append(sw)
            if m == members[0]:
                slots = (0, cfg.ul_slots)
            elif self.hosts[m].site != site:
                slots = (cfg.relay_dl_slots, 0)       # a child site's relay: downloads only here
            else:
                slots = (cfg.dl_slots, cfg.ul_slots)
            planner.add_node(m, dl_slots=slots[0], ul_slots=slots[1], seed=m == members[0])
        if parents[site] is None:
            planner.set_have(members[0], [h for h, _ in self.chunks])
        self._dirty.add(sw.index)
        return sw

    def ideal(self, origin: str | None = None) -> float:
        """The ideal time of the whole tree (`lanscatter.core.ideal`): no schedule is faster."""
        return self.ideal_bound(origin).seconds

    def ideal_bound(self, origin: str | None = None) -> Ideal:
        return ideal_time(self.physical, origin or self.origin, self.dataset_bytes)

    # ---- event loop ------------------------------------------------------------------------

    def _push(self, when: float, kind: int, payload: object, version: int = 0) -> None:
        batch = self._events.get(when)
        if batch is None:
            self._events[when] = [(kind, payload, version)]
            heappush(self._times, when)
        else:
            batch.append((kind, payload, version))

    def done(self) -> bool:
        return not self._incomplete

    def run_until(self, until: float) -> bool:
        """Process every event up to virtual time `until`; True once every host is complete."""
        events, times, incomplete = self._events, self._times, self._incomplete
        if self._dirty:
            self._plan()                 # the joins at time zero
        while incomplete and times and times[0] <= until:
            now = self.now = times[0]
            batch = events[now]
            i = 0
            while i < len(batch):        # events scheduled for now while handling these join in
                kind, payload, version = batch[i]
                i += 1
                if kind == _FINISH:
                    if payload.version == version:
                        self._end(payload, not payload.fail_left)
                else:
                    self._handle(kind, payload)
            heappop(times)
            del events[now]
            self._plan()
        if not self.done():
            self.now = max(self.now, until)
        return self.done()

    def run(self) -> SimResult:
        limit = self.ideal() * self.config.max_ideal_multiple
        self.run_until(limit)
        return self.result()

    def _handle(self, kind: int, payload: object) -> None:
        if kind == _EXPIRE:
            self._expire(cast(_Swarm, payload))
        elif kind == _LEAVE:
            self._leave(self.hosts[cast(str, payload)])
        elif kind == _JOIN:
            self._join(self.hosts[cast(str, payload)])
        elif kind == _TICK:
            for sw in self.swarms:
                self._expire(sw)
                self._dirty.add(sw.index)
            self._push(self.now + self.config.plan_interval_s, _TICK, None)

    def _expire(self, sw: _Swarm) -> None:
        for t in sw.planner.expire(self.now):
            self.expired += 1
            self._end(sw.active[t.id], False, False)

    def _plan(self) -> None:
        start = self._start
        for i in sorted(self._dirty):
            sw = self.swarms[i]
            for t in sw.planner.plan(self.now):
                start(sw, t)
        self._dirty.clear()

    # ---- transfers -------------------------------------------------------------------------

    def _start(self, sw: _Swarm, t: Transfer) -> None:
        src, dst = self.hosts[t.source], self.hosts[t.dest]
        route = (src.site, dst.site)
        wan = self._wan_route.get(route)
        if wan is None:
            wan = self._wan_route[route] = tuple(f"wan:{a}>{b}" for a, b in self.physical.site_route(*route))
        fail_left = 0.0
        if self.config.fail_rate and self.rng.random() < self.config.fail_rate:
            fail_left = max(1.0, t.size * self.rng.random())
        now = self.now
        cap = t.rate_cap if t.rate_cap is not None else math.inf
        a = _Active(sw, t, src, dst, cap, wan, fail_left, 0.0, float(t.size), now)
        sw.active[t.id] = a
        self.transfers += 1
        src.ups.append(a)
        dst.downs.append(a)
        if t.pace_group is not None:
            group = self._groups.setdefault(t.pace_group[0], [])
            group.append(a)
            self._share_group(group)            # rates are set there, this one's included
            return
        src.up_demand += cap
        dst.down_demand += cap
        up_busy, down_busy = src.up_demand > src.up_rate, dst.down_demand > dst.down_rate
        if up_busy:
            self._rerate(src.ups)
        if down_busy:
            self._rerate(dst.downs)
        if not (up_busy or down_busy):
            # the usual case, links as promised and the cap rules: _set_rate(a, cap), inline
            a.rate, a.version = cap, 1
            left = a.remaining - fail_left
            if cap > 0:
                end = now + left / cap if left > 0.0 else now
            else:
                end = math.inf
            self._push(end, _FINISH, a, 1)
            deadline = t.started + t.timeout_s
            if end > deadline:
                self._push(deadline, _EXPIRE, sw)

    def _share_group(self, group: list[_Active]) -> None:
        """A WAN link's transfers (one source) after one joined or left: each gets the link's rate
        divided among them, then the hosts' real links have their say."""
        share = group[0].t.pace_group[1] / len(group)          # type: ignore[index]
        hosts: list[_Host] = []                                # in a fixed order: runs repeat
        for a in group:
            a.cap = share
            for h in (a.src, a.dst):
                if h not in hosts:
                    hosts.append(h)
        for h in hosts:
            h.up_demand = _total_cap(h.ups)
            h.down_demand = _total_cap(h.downs)
            if h.up_demand > h.up_rate:
                self._rerate(h.ups)
            if h.down_demand > h.down_rate:
                self._rerate(h.downs)
        for a in group:
            self._set_rate(a, self._limit(a))

    def _rerate(self, actives: list[_Active]) -> None:
        """Rates of the transfers on one link after a change on it."""
        for a in actives:
            self._set_rate(a, self._limit(a))

    @staticmethod
    def _limit(a: _Active) -> float:
        """The transfer's cap, lowered to its fair share of whichever end is oversubscribed."""
        rate = a.cap
        if a.src.up_demand > a.src.up_rate:
            rate = min(rate, _fair_shares(a.src.ups, a.src.up_rate)[id(a)])
        if a.dst.down_demand > a.dst.down_rate:
            rate = min(rate, _fair_shares(a.dst.downs, a.dst.down_rate)[id(a)])
        return rate

    def _set_rate(self, a: _Active, rate: float) -> None:
        now = self.now
        if rate == a.rate and a.version:
            return
        a.remaining -= a.rate * (now - a.last)
        a.last, a.rate = now, rate
        a.version += 1
        left = max(0.0, a.remaining - a.fail_left)
        end = now + left / rate if rate > 0 else math.inf
        self._push(end, _FINISH, a, a.version)
        deadline = a.t.started + a.t.timeout_s
        if end > deadline:
            self._push(deadline, _EXPIRE, a.swarm)

    def _end(self, a: _Active, ok: bool, report: bool = True) -> None:
        """Take a transfer off the network; `report` tells the planner (expired/dropped ones it knows)."""
        sw, t = a.swarm, a.t
        del sw.active[t.id]
        a.version = -1
        if a.wan:
            sent = t.size if ok else min(t.size, t.size - a.remaining + a.rate * (self.now - a.last))
            for w in a.wan:
                self.wan_bytes[w] = self.wan_bytes.get(w, 0.0) + sent
                if not ok:
                    self.wan_wasted[w] = self.wan_wasted.get(w, 0.0) + sent
        src, dst = a.src, a.dst
        up_busy, down_busy = src.up_demand > src.up_rate, dst.down_demand > dst.down_rate
        src.ups.remove(a)
        dst.downs.remove(a)
        src.up_demand = _total_cap(src.ups)       # summed afresh: no drift
        dst.down_demand = _total_cap(dst.downs)
        if up_busy:
            self._rerate(src.ups)
        if down_busy:
            self._rerate(dst.downs)
        if t.pace_group is not None:
            group = self._groups[t.pace_group[0]]
            group.remove(a)
            if group:
                self._share_group(group)
        planner = sw.planner
        if report:
            if not ok:
                self.failures += 1
            planner.finish(t.id, self.now, ok=ok)
        if ok:
            own = dst.own
            if own is not None and own is not sw:
                own.planner.add_have(dst.name, t.chunk)     # a relay: cut-through downstream
                self._dirty.add(own.index)
            if dst.completed_at is None and planner.is_complete(dst.name):
                dst.completed_at = self.now
                self._incomplete.discard(dst.name)
        self._dirty.add(sw.index)

    def _leave(self, h: _Host) -> None:
        h.online = False
        for sw in self.swarm_of[h.name]:
            hashes = sw.planner.chunks()
            h.held = [hashes[i][0] for i in sw.planner.has(h.name)]
            for t in sw.planner.remove_node(h.name):
                self._end(sw.active[t.id], False, False)
            self._dirty.add(sw.index)

    def _join(self, h: _Host) -> None:
        h.online = True
        cfg = self.config
        for sw in self.swarm_of[h.name]:
            sw.planner.add_node(h.name, dl_slots=cfg.dl_slots, ul_slots=cfg.ul_slots)
            sw.planner.set_have(h.name, h.held)      # a restarted node keeps what it verified
            self._dirty.add(sw.index)

    # ---- results ---------------------------------------------------------------------------

    def result(self) -> SimResult:
        done = [h.completed_at for h in self.hosts.values() if h.name != self.origin]
        complete = self.done()
        makespan = max((t for t in done if t is not None), default=0.0) if complete else math.inf
        bound = self.ideal_bound()
        sites = {}
        for site in self.sites:
            times = sorted(h.completed_at if h.completed_at is not None else math.inf
                           for h in self.hosts.values() if h.site == site and h.name != self.origin)
            last = times[-1] if times else 0.0
            sites[site] = SiteFigures(percentile(times, 50), percentile(times, 99), last)
        names = sorted(n for n in self.topology.links if n.startswith("wan:"))
        wan = {w: self.wan_bytes.get(w, 0.0) for w in names}
        wasted = {w: self.wan_wasted.get(w, 0.0) for w in names}
        return SimResult(
            makespan=makespan, ideal=bound.seconds, ideal_limit=bound.limit,
            efficiency=efficiency(bound.seconds, makespan).value if makespan else float(complete),
            complete=complete, sites=sites, wan_bytes=wan, wan_wasted=wasted,
            dataset_bytes=self.dataset_bytes,
            transfers=self.transfers, failures=self.failures, expired=self.expired,
        )
