"""A discrete-event swarm simulator on a virtual clock, driving the real swarm session.

Pure: no sockets, no disk, no wall clock; everything random comes from one seeded generator, so
the same configuration and seed give the same run. The network is modelled the way production
runs it: one swarm session (core/session.py, the master's side as the engine runs it) per site,
its master or relay as seed, its peers, and the relay of each child site as a download-only member,
chained with cut-through (a chunk a relay finishes in its upstream swarm is at once on offer in its
own: the relay's session is told, as the engine's relay tells it). The simulated peers say what real
peers say: their whole Have after a Manifest, Receiving at a download's first bytes (but for one
too short to measure), Ending when its last bytes are the engine's lead away (core/ending_lead.py:
0.1 s inside a site, 0.3 s over a WAN link), a Report at its end (their Have too), Stats every
second. Each session is ticked as the engine
ticks it: after any input, and when `wake_in` says. A download's first bytes come a set-up time
after the session commands it (the WAN delays of the notice, the command and the request, and the
hosts' own work: `SimConfig.arrange_s`), and, with `SimConfig.master_transfer_s`, the time its
master's CPU is taken by the transfers it arranged before: one core serves them in turn.

Transfer model: a transfer moves at the rate its source was told (the Download's rate, then Rates:
the session's fair shares, or the switch share it books), but never faster than its share of the
source's real uplink, the destination's real downlink and any site switch (`switch:<site>`) it
crosses (max-min fair among the transfers on that link: bookings alone do not keep a switch, as
a released transfer's booking is free before its last bytes). The transfers of one WAN link come from one source, which paces them together as the engine
does (upload_pace.py): each moves at the link's rate divided among those in flight, so one ending
leaves its rate to the others. A transfer from a source still receiving its chunk (served as it
arrives, protocol.SERVES_ARRIVING) moves no faster than that download (though it may have
started behind it), ends no sooner and breaks with it.
"Slow" peers upload `slowdown` times slower than the link map says, which the planner only learns
by measuring. A failing transfer breaks after a random share of its bytes; a transfer the session
withdraws (its timeout passed, its downloader silent) stops at once. Bytes sent count on every WAN
link crossed, finished or not, so the WAN ratio includes retries.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any, cast

from lanscatter.core import protocol as p
from lanscatter.core.auth import Auth
from lanscatter.core.ending_lead import RATE_WINDOW_S, ending_lead, judged_at_told_rate
from lanscatter.core.ideal import Ideal, efficiency, ideal_time
from lanscatter.core.linkmap import Link, LinkMap
from lanscatter.core.manifest import FileEntry, FileTable, Manifest
from lanscatter.core.planner import Planner, PlannerConfig, Transfer
from lanscatter.core.session import SwarmSession
from lanscatter.core.session_types import Now, Output, SeedRates, Send
from lanscatter.sim.model import SimConfig, SimResult, SimTopology, SiteFigures, percentile, star_topology

_FINISH, _ENDING, _EXPIRE, _LEAVE, _JOIN, _WAKE, _STATS, _BEGIN = range(8)
STATS_S = 1.0           # peers send Stats this often (the session takes 5 s of silence as a stall)
WALL_AT_ZERO = 1_800_000_000.0    # the wall clock the sessions see at virtual time 0
# What one sharing of fair rates costs the session, per transfer under way: the engine's, about
# 8 µs (two fair-rate computations of ~4 µs per transfer, docs/benchmarks.md "The master's CPU").
# Charging more holds sharing back more than the engine does: at 50 µs a 500-host site's origin
# idled 7.6 s of 100 s on rates gone stale (docs/benchmarks.md, "Where the rest goes").
SHARE_COST_S = 8e-6


def _manifest(chunks: int, chunk_size: int) -> Manifest:
    """One file of `chunks` distinct chunks of `chunk_size` bytes."""
    hashes = tuple(f"{i + 1:064x}" for i in range(chunks))
    entry = FileEntry("data.bin", chunks * chunk_size, 1, False, hashes, (chunk_size,) * chunks)
    return Manifest(chunk_size=chunk_size, files=FileTable.of_entries([entry]), dirs=())


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
    held: set[str] = field(default_factory=set)     # chunks verified (kept while offline)
    own: _Swarm | None = None      # the swarm it seeds (a master or relay)


@dataclass(slots=True, eq=False)
class _Swarm:
    index: int
    site: str
    session: SwarmSession
    links: LinkMap
    active: dict[int, _Active] = field(default_factory=dict)     # transfer id -> its transfer here
    starting: dict[int, p.Download] = field(default_factory=dict)  # commanded, no bytes yet
    wake: int = 0                  # the version of its latest wake-up event
    busy_until: float = 0.0        # its master's CPU is taken until then (SimConfig.master_transfer_s)

    @property
    def planner(self) -> Planner:
        return self.session.planner


@dataclass(slots=True, eq=False)
class _Switch:
    """A site's shared switch (`switch:<site>`): its transfers share it max-min fairly."""

    capacity: float
    actives: list[_Active] = field(default_factory=list)
    demand: float = 0.0            # sum of the caps of actives


@dataclass(slots=True, eq=False)
class _Active:
    swarm: _Swarm
    t: Transfer
    src: _Host
    dst: _Host
    cap: float
    group: tuple[str, float] | None     # (WAN link, bytes/s) its source paces it in
    wan: tuple[str, ...]
    switches: tuple[_Switch, ...]  # the shared switches it crosses
    fail_left: float               # bytes still to go when it breaks (0.0 = it will not break)
    rate: float = 0.0
    remaining: float = 0.0
    last: float = 0.0
    version: int = 0               # of its latest finish event; -1 once it is off the network
    began: float = 0.0             # its first bytes
    told: float = 0.0              # the rate its Download named (0: none, or in a WAN link's group)
    ending: bool = False           # its Ending was said
    feed: _Active | None = None    # the source's own download of the chunk, while it lasts
    fed: list[_Active] = field(default_factory=list)   # transfers its destination serves it to meanwhile
    held: bool = False             # its bytes are done but for those its feed has yet to bring


class _WorkClock:
    """A session's work clock (what sharing fair rates costs, which the session keeps to a share
    of the time): each reading adds SHARE_COST_S per transfer under way, so sharing is held back
    as the engine's is, on the virtual clock, and runs repeat."""

    def __init__(self) -> None:
        self.session: SwarmSession | None = None
        self.spent = 0.0

    def __call__(self) -> float:
        if self.session is not None:
            self.spent += SHARE_COST_S * len(self.session.transfers)
        return self.spent


def _host_links(topo: SimTopology) -> dict[str, Link]:
    return {f"{d}:{h.name}": Link(f"{d}:{h.name}", rate)
            for h in topo.hosts for d, rate in (("up", h.up_rate), ("down", h.down_rate))}


def physical_map(topo: SimTopology) -> LinkMap:
    """The whole tree in one map, every host's ports as the link map states them: what ideal
    multicast from the origin would cross, and what the engine sizes chunks by."""
    return LinkMap(links={**_host_links(topo), **topo.links},
                   node_site={h.name: h.site for h in topo.hosts}, site_parent=dict(topo.sites))


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
        self.manifest = _manifest(cfg.chunks, cfg.chunk_size)
        self.chunks = list(self.manifest.chunk_table())
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
        self._dirty: set[int] = set()                    # swarms that had an input since their tick
        self._wan_route: dict[tuple[str, str], tuple[str, ...]] = {}
        self._switch_route: dict[tuple[str, str], tuple[_Switch, ...]] = {}
        self._setup: dict[tuple[str, str, str], float] = {}     # (master's, dest's, source's site) -> s
        self._switches = {n: _Switch(link.bytes_per_s) for n, link in self.topology.links.items()
                          if n.startswith("switch:")}
        self._groups: dict[str, list[_Active]] = {}      # WAN link -> its transfers in flight
        self._auth = Auth(None)
        self.swarms: list[_Swarm] = []
        self._members: list[list[str]] = []             # by swarm: its members but the seed
        self._slots = {h.name: h.slots for h in self.topology.hosts if h.slots is not None}
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
        self.hosts[masters[0]].held = {c for c, _ in self.chunks}
        host_links = _host_links(topo)
        parents = dict(topo.sites)
        self.physical = physical_map(topo)
        pcfg = PlannerConfig(min_timeout_s=cfg.min_timeout_s)
        for site in self.sites:
            children = [c for c, parent in topo.sites if parent == site]
            members = [heads[site], *(h.name for h in topo.hosts if h.site == site and h.role == "peer"),
                       *(heads[c] for c in children)]
            near = {f"switch:{site}"} | {f"switch:{c}" for c in children} \
                | {f"wan:{site}>{c}" for c in children} | {f"wan:{c}>{site}" for c in children}
            shared = {n: link for n, link in topo.links.items() if n in near}
            own = self.own_swarm[heads[site]] = self._add_swarm(site, members, shared, host_links, parents, pcfg)
            self.hosts[heads[site]].own = own
        for sw in self.swarms:
            for m in self._members[sw.index]:
                self._join_swarm(sw, self.hosts[m])
        churners = rng.sample(peers, round(cfg.churn * len(peers)))
        ideal = self.ideal(masters[0])
        for name in churners:
            leave = rng.uniform(0.0, ideal)
            self._push(leave, _LEAVE, name)
            self._push(leave + rng.uniform(0.05, 0.3) * ideal, _JOIN, name)
        self._push(STATS_S, _STATS, None)
        return masters[0]

    def _add_swarm(self, site: str, members: list[str], shared: dict[str, Link], host_links: dict[str, Link],
                   parents: dict[str, str | None], pcfg: PlannerConfig) -> _Swarm:
        cfg = self.config
        links = {**shared, **{k: v for k, v in host_links.items() if k.split(":", 1)[1] in members}}
        node_site = {m: self.hosts[m].site for m in members}
        lm = LinkMap(links=links, node_site=node_site, site_parent=parents)
        clock = _WorkClock()
        seed_slots = self._slots.get(members[0], cfg.ul_slots)
        session = clock.session = SwarmSession(name=members[0], auth=self._auth, seed_slots=seed_slots,
                                               link_map=lm, seed=self.rng.getrandbits(64), work_clock=clock,
                                               planner_config=pcfg)
        sw = _Swarm(len(self.swarms), site, session, lm)
        self.swarms.append(sw)
        self._members.append(members[1:])
        # the root's seed holds every chunk; a relay's, what it has verified upstream (none yet)
        session.set_manifest(self.manifest, self._at(), None if parents[site] is None else set())
        for m in members:
            self.swarm_of.setdefault(m, []).append(sw)
        self._dirty.add(sw.index)
        return sw

    def _join_swarm(self, sw: _Swarm, h: _Host) -> None:
        """`h` joins `sw` as a peer (a child site's relay: downloads only, serving none here)."""
        cfg = self.config
        relay = h.site != sw.site
        port, dl, ul = (0, cfg.relay_dl_slots, 0) if relay else \
            (7000, self._slots.get(h.name, cfg.dl_slots), self._slots.get(h.name, cfg.ul_slots))
        hello = p.Hello(h.name, p.PROTOCOL_VERSION, p.PROTOCOL_VERSION, "simulator", "0" * 32, "10.0.0.1",
                        port, dl, ul, "relay" if relay else "peer")
        self._feed(sw, sw.session.join(h.name, hello, self._at(), addr="10.0.0.1", protocol=p.PROTOCOL_VERSION,
                                       seed_url="http://10.0.0.2:7000", seed_source="10.0.0.2:7000"))

    def ideal(self, origin: str | None = None) -> float:
        """The ideal time of the whole tree (`lanscatter.core.ideal`): no schedule is faster."""
        return self.ideal_bound(origin).seconds

    def ideal_bound(self, origin: str | None = None) -> Ideal:
        return ideal_time(self.physical, origin or self.origin, self.dataset_bytes)

    # ---- event loop ------------------------------------------------------------------------

    def _at(self) -> Now:
        return Now(self.now, WALL_AT_ZERO + self.now)

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
            self._tick()                 # the joins at time zero
        while incomplete and times and times[0] <= until:
            now = self.now = times[0]
            batch = events[now]
            i = 0
            while i < len(batch):        # events scheduled for now while handling these join in
                kind, payload, version = batch[i]
                i += 1
                if kind == _FINISH:
                    if payload.version == version:
                        if payload.feed is not None:
                            self._hold(payload)
                        else:
                            self._end(payload, not payload.fail_left)
                elif kind == _ENDING:
                    if payload.version == version and not payload.ending:
                        self._say_ending(payload)
                else:
                    self._handle(kind, payload, version)
            heappop(times)
            del events[now]
            self._tick()
        if not self.done():
            self.now = max(self.now, until)
        return self.done()

    def run(self) -> SimResult:
        limit = self.ideal() * self.config.max_ideal_multiple
        self.run_until(limit)
        return self.result()

    def _handle(self, kind: int, payload: object, version: int) -> None:
        if kind == _EXPIRE:
            self._dirty.add(cast(_Swarm, payload).index)     # its tick withdraws what is overdue
        elif kind == _WAKE:
            sw = cast(_Swarm, payload)
            if sw.wake == version:
                self._dirty.add(sw.index)
        elif kind == _BEGIN:
            self._begin(*cast(tuple[_Swarm, p.Download], payload))
        elif kind == _LEAVE:
            self._leave(self.hosts[cast(str, payload)])
        elif kind == _JOIN:
            self._join(self.hosts[cast(str, payload)])
        elif kind == _STATS:
            for sw, members in zip(self.swarms, self._members):
                for m in members:
                    if self.hosts[m].online:
                        self._say(sw, m, p.Stats(0, 0, 0, len(self.hosts[m].held) == len(self.chunks)))
            self._push(self.now + STATS_S, _STATS, None)

    def _tick(self) -> None:
        """Tick every swarm that had an input (as the engine does after each), and set when each
        wants its next tick; a tick's outputs may give other swarms inputs (cut-through)."""
        cap = self.config.plan_interval_s
        while self._dirty:
            sw = self.swarms[min(self._dirty)]
            self._dirty.discard(sw.index)
            self._feed(sw, sw.session.tick(self._at()), ticked=True)
            sw.wake += 1
            self._push(self.now + min(cap, sw.session.wake_in(self.now)), _WAKE, sw, sw.wake)

    # ---- the peers' side -------------------------------------------------------------------

    def _say(self, sw: _Swarm, name: str, msg: p.Message) -> None:
        """Peer `name` sends `msg` to the session of `sw`."""
        self._feed(sw, sw.session.receive(name, msg, self._at()))

    def _feed(self, sw: _Swarm, outputs: list[Output], *, ticked: bool = False) -> None:
        """Carry out a session's outputs in order; the peers' replies are fed back in the order
        they were sent. The swarm ticks next if it had an input: the outputs of anything but a
        tick (`ticked`), or a reply to them."""
        todo: deque[Output] = deque(outputs)
        session = sw.session
        replied = False
        rates: dict[int, float] = {}     # new rates told to sources: applied together, at this instant
        while todo:
            out = todo.popleft()
            if isinstance(out, Send):
                h = self.hosts[out.peer]
                msg = out.msg
                if isinstance(msg, p.Rates):
                    rates.update(zip(msg.transfers, msg.rates))
                    continue
                for reply in self._react(sw, h, msg):
                    replied = True
                    todo.extend(session.receive(h.name, reply, self._at()))
            elif isinstance(out, SeedRates):
                rates.update(out.rates)
        if rates:
            self._recap(sw, rates)
        if replied or not ticked:
            self._dirty.add(sw.index)

    def _react(self, sw: _Swarm, h: _Host, msg: p.Message) -> list[p.Message]:
        """What peer `h` does with a message of `sw`'s session, and what it answers (Rates are
        gathered by _feed)."""
        if isinstance(msg, p.Download):
            sw.starting[msg.transfer] = msg             # its first bytes come after the set-up time
            src = self.hosts[sw.session.transfers[msg.transfer].source]
            sent = self.now
            if (cost := self.config.master_transfer_s) > 0:     # after the master's earlier work
                sent = sw.busy_until = max(sent, sw.busy_until) + cost
            self._push(sent + self._setup_s(sw.site, h.site, src.site), _BEGIN, (sw, msg))
            return []
        if isinstance(msg, p.ManifestMsg):
            held = sorted(h.held)
            return [p.Have(self.manifest.generation, held[k:k + p.HAVE_PIECE], replace=k == 0)
                    for k in range(0, max(1, len(held)), p.HAVE_PIECE)]
        if isinstance(msg, p.Cancel):
            if sw.starting.pop(msg.transfer, None) is not None:
                self.expired += 1
            elif (a := sw.active.get(msg.transfer)) is not None:
                self.expired += 1                        # withdrawn: overdue, or its downloader silent
                self._end(a, False, False)
        return []

    def _setup_s(self, master: str, dest: str, source: str) -> float:
        """From a session's decision to a download's first bytes, by the sites of the master, the
        downloader and the source: the notice that freed the slot up to the master and the Download
        back (the WAN delays between them, twice), the request to the source and its first bytes
        back (between those two, twice), and the hosts' own work (`arrange_s`)."""
        key = (master, dest, source)
        got = self._setup.get(key)
        if got is None:
            links = self.topology.links

            def one_way(a: str, b: str) -> float:
                return sum(links[f"wan:{x}>{y}"].latency_s for x, y in self.physical.site_route(a, b))
            got = self._setup[key] = 2 * one_way(master, dest) + 2 * one_way(dest, source) + self.config.arrange_s
        return got

    def _begin(self, sw: _Swarm, d: p.Download) -> None:
        """A commanded download's first bytes arrive (unless it was withdrawn meanwhile or an end
        went away): it moves from now, and its downloader says Receiving (as the engine's, not for a
        download too short to measure: its Ending says it, protocol.ENDING_RECEIVES)."""
        if sw.starting.pop(d.transfer, None) is None:
            return
        t = sw.session.transfers.get(d.transfer)
        if t is None or not (self.hosts[t.source].online and self.hosts[t.dest].online):
            return
        a = self._start(sw, t, d)
        if not (self.config.release and judged_at_told_rate(t.size, a.told)):
            self._say(sw, t.dest, p.Receiving(d.transfer))

    def _say_ending(self, a: _Active) -> None:
        """The downloader's notice that the transfer's last bytes are its lead away (or less)."""
        a.ending = True
        left = max(0.0, a.remaining - a.rate * (self.now - a.last))
        seconds = left / a.rate if a.rate > 0 else 0.0
        self._say(a.swarm, a.dst.name, p.Ending(a.t.id, round(seconds, 3)))

    # ---- transfers -------------------------------------------------------------------------

    def _start(self, sw: _Swarm, t: Transfer, d: p.Download) -> _Active:
        """The downloader of `d` starts it: at the rate its source was told, in its WAN link's
        group where the source paces one."""
        src, dst = self.hosts[t.source], self.hosts[t.dest]
        route = (src.site, dst.site)
        wan = self._wan_route.get(route)
        if wan is None:
            wan = self._wan_route[route] = tuple(f"wan:{a}>{b}" for a, b in self.physical.site_route(*route))
        switches = self._switch_route.get(route)
        if switches is None:
            switches = self._switch_route[route] = tuple(
                self._switches[n] for n in self.physical.path(src.name, dst.name) if n in self._switches)
        fail_left = 0.0
        if self.config.fail_rate and self.rng.random() < self.config.fail_rate:
            fail_left = max(1.0, t.size * self.rng.random())
        now = self.now
        cap = d.rate_cap if d.rate_cap is not None else math.inf
        group = (d.group, d.group_rate) if d.group is not None and d.group_rate is not None else None
        a = _Active(sw, t, src, dst, cap, group, wan, switches, fail_left, 0.0, float(t.size), now, began=now,
                    told=(d.rate_cap or 0.0) if group is None else 0.0)
        for feed in src.downs:
            if feed.t.chunk == t.chunk:            # served while it arrives at its source
                a.feed = feed
                feed.fed.append(a)
        sw.active[t.id] = a
        self.transfers += 1
        src.ups.append(a)
        dst.downs.append(a)
        for x in switches:
            x.actives.append(a)
        if group is not None:
            members = self._groups.setdefault(group[0], [])
            members.append(a)
            self._share_group(members)            # rates are set there, this one's included
            return a
        src.up_demand += cap
        dst.down_demand += cap
        up_busy, down_busy = src.up_demand > src.up_rate, dst.down_demand > dst.down_rate
        busy = False
        for x in switches:
            x.demand += cap
            if x.demand > x.capacity:
                busy = True
                self._rerate(x.actives)
        if up_busy:
            self._rerate(src.ups)
        if down_busy:
            self._rerate(dst.downs)
        if not (up_busy or down_busy or busy):
            self._set_rate(a, cap if a.feed is None else self._limit(a))
        return a

    def _share_group(self, group: list[_Active]) -> None:
        """A WAN link's transfers (one source) after one joined or left: each gets the link's rate
        divided among them, then the hosts' real links have their say."""
        share = group[0].group[1] / len(group)          # type: ignore[index]
        hosts: list[_Host] = []                          # in a fixed order: runs repeat
        for a in group:
            a.cap = share
            for h in (a.src, a.dst):
                if h not in hosts:
                    hosts.append(h)
        for h in hosts:
            self._relink(h)
        for x in {x: None for a in group for x in a.switches}:
            self._reswitch(x)
        for a in group:
            self._set_rate(a, self._limit(a))

    def _relink(self, h: _Host) -> None:
        """The demands on h's links summed afresh (no drift), and its transfers re-rated where
        one is oversubscribed."""
        h.up_demand = _total_cap(h.ups)
        h.down_demand = _total_cap(h.downs)
        if h.up_demand > h.up_rate:
            self._rerate(h.ups)
        if h.down_demand > h.down_rate:
            self._rerate(h.downs)

    def _reswitch(self, x: _Switch) -> None:
        """A switch's demand summed afresh, and its transfers re-rated if it is oversubscribed."""
        x.demand = _total_cap(x.actives)
        if x.demand > x.capacity:
            self._rerate(x.actives)

    def _recap(self, sw: _Swarm, rates: dict[int, float]) -> None:
        """Sources were told new rates for these transfers (Rates, or the seed's SeedRates); the
        links they cross are re-rated once."""
        hosts: list[_Host] = []                          # in a fixed order: runs repeat
        switches: list[_Switch] = []
        for tid, rate in rates.items():
            a = sw.active.get(tid)
            if a is None or a.group is not None or rate == a.cap:
                continue
            a.cap = rate
            for h in (a.src, a.dst):
                if h not in hosts:
                    hosts.append(h)
            for x in a.switches:
                if x not in switches:
                    switches.append(x)
        for h in hosts:
            h.up_demand = _total_cap(h.ups)
            h.down_demand = _total_cap(h.downs)
        for x in switches:
            x.demand = _total_cap(x.actives)
        shares: dict[int, dict[int, float]] = {}
        for h in hosts:
            for a in h.ups:
                self._set_rate(a, self._limit(a, shares))
            for a in h.downs:
                self._set_rate(a, self._limit(a, shares))
        for x in switches:
            for a in x.actives:
                self._set_rate(a, self._limit(a, shares))

    def _rerate(self, actives: list[_Active]) -> None:
        """Rates of the transfers on one link after a change on it."""
        shares: dict[int, dict[int, float]] = {}     # each link's fair shares, computed once here
        for a in actives:
            self._set_rate(a, self._limit(a, shares))

    @staticmethod
    def _limit(a: _Active, shares: dict[int, dict[int, float]] | None = None) -> float:
        """The transfer's cap, lowered to its fair share of whichever end is oversubscribed
        (`shares`: the fair shares of links already computed, by id() of their transfers' list)."""
        rate = a.cap
        known = shares if shares is not None else {}
        for on, capacity, demand in ((a.src.ups, a.src.up_rate, a.src.up_demand),
                                     (a.dst.downs, a.dst.down_rate, a.dst.down_demand)):
            if demand > capacity:
                split = known.get(id(on))
                if split is None:
                    split = known[id(on)] = _fair_shares(on, capacity)
                rate = min(rate, split[id(a)])
        for x in a.switches:
            if x.demand > x.capacity:
                split = known.get(id(x.actives))
                if split is None:
                    split = known[id(x.actives)] = _fair_shares(x.actives, x.capacity)
                rate = min(rate, split[id(a)])
        if a.feed is not None:
            rate = min(rate, a.feed.rate)    # (it never gets ahead of what its source received)
        return rate

    def _set_rate(self, a: _Active, rate: float) -> None:
        """`a` moves at `rate` from now on: when it ends (or breaks), when its downloader says
        Ending, and when its session will find it overdue."""
        now = self.now
        if rate == a.rate and a.version:
            return
        a.remaining -= a.rate * (now - a.last)
        a.last, a.rate = now, rate
        a.version += 1
        left = max(0.0, a.remaining - a.fail_left)
        end = now + left / rate if rate > 0 else math.inf
        self._push(end, _FINISH, a, a.version)
        # (a transfer that is to break says no Ending: it breaks before it would have, but for the
        # few that break within their last lead)
        if self.config.release and not a.ending and not a.fail_left and math.isfinite(end):
            lead = ending_lead(a.group is not None)
            measured = a.began + RATE_WINDOW_S
            when = max(measured, end - lead)
            if now < measured and judged_at_told_rate(a.t.size, a.told):
                # as the engine's downloader: a transfer too short to measure its rate judges the
                # bytes left at the rate its source was told, once half of it came
                left = min(lead * a.told, a.t.size / 2)
                when = min(when, now + max(0.0, a.remaining - left) / rate)
            self._push(max(now, when), _ENDING, a, a.version)
        deadline = a.t.started + a.t.timeout_s
        if end > deadline:
            self._push(deadline, _EXPIRE, a.swarm)
        for fed in a.fed:
            if fed.version != -1 and not fed.held:
                self._set_rate(fed, self._limit(fed))

    def _end(self, a: _Active, ok: bool, report: bool = True) -> None:
        """Take a transfer off the network (unless it is held there already); `report`: its
        downloader reports it (a withdrawn or dropped one the session knows of)."""
        sw, t = a.swarm, a.t
        del sw.active[t.id]
        a.version = -1
        if not a.held:
            self._off_network(a, ok)
        if report:
            self._report(a, ok)
        for fed in a.fed:
            # What its destination served meanwhile: whole once this is (those through their own
            # bytes end now), cut if this broke.
            if fed.version == -1:
                continue
            fed.feed = None
            if fed.held or not ok:
                # (a held one is off the network: a leave of its destination did not end it)
                self._end(fed, ok and not fed.fail_left, report=fed.dst.online)
            else:
                self._set_rate(fed, self._limit(fed))      # free of its feed's pace

    def _hold(self, a: _Active) -> None:
        """`a` is through its bytes but for those its feed has yet to bring: off the network, it
        ends with its feed (_end)."""
        a.held = True
        a.version += 1                 # (no event of it fires any more)
        self._off_network(a, True)

    def _off_network(self, a: _Active, ok: bool) -> None:
        """Its bytes counted on the WAN links it crossed, and its ports and switches freed."""
        t = a.t
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
        for x in a.switches:
            busy = x.demand > x.capacity
            x.actives.remove(a)
            x.demand = _total_cap(x.actives)
            if busy:
                self._rerate(x.actives)
        if a.group is not None:
            group = self._groups[a.group[0]]
            group.remove(a)
            if group:
                self._share_group(group)

    def _report(self, a: _Active, ok: bool) -> None:
        """Its downloader's Report, and what the chunk it holds now changes."""
        sw, t, dst = a.swarm, a.t, a.dst
        seconds = self.now - t.started
        if not ok:
            self.failures += 1
            self._say(sw, dst.name, p.Report(t.id, False, seconds, "connection broken"))
            return
        dst.held.add(t.chunk)
        self._say(sw, dst.name, p.Report(t.id, True, seconds))      # (its Have too: REPORT_HOLDS)
        own = dst.own
        if own is not None and own is not sw:
            own.session.seed_got(t.chunk, self._at())     # a relay: cut-through downstream
            self._dirty.add(own.index)
        if dst.completed_at is None and len(dst.held) == len(self.chunks):
            dst.completed_at = self.now
            self._incomplete.discard(dst.name)

    def _leave(self, h: _Host) -> None:
        """`h` goes down: its transfers stop, and each session it was in sees its connection close."""
        h.online = False
        for a in [*h.ups, *h.downs]:
            self._end(a, False, False)
        for sw in self.swarm_of[h.name]:
            self._feed(sw, sw.session.leave(h.name))

    def _join(self, h: _Host) -> None:
        """`h` comes back with what it verified before."""
        h.online = True
        for sw in self.swarm_of[h.name]:
            self._join_swarm(sw, h)

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
