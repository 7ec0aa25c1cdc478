"""Property tests: whatever the swarm, the planner keeps its invariants and finishes fault-free runs."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from lanscatter.core.linkmap import Link, LinkMap
from lanscatter.core.planner import Planner, PlannerConfig, Transfer


@dataclass
class Scenario:
    n_chunks: int
    peers: list[tuple[int, int, str]]          # (dl_slots, ul_slots, site)
    two_sites: bool
    capacities: dict[str, float]
    initial: list[list[int]]                   # chunks each peer starts with
    seed: int


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n_chunks = draw(st.integers(0, 12))
    n_peers = draw(st.integers(1, 6))
    two_sites = draw(st.booleans())
    peers = [(draw(st.integers(1, 3)), draw(st.integers(0, 3)),
              draw(st.sampled_from(["hub", "b"])) if two_sites else "hub") for _ in range(n_peers)]
    names = ["S", *(f"p{i}" for i in range(n_peers))]
    capacities: dict[str, float] = {}
    if draw(st.booleans()):
        for n in names:
            capacities[f"up:{n}"] = float(draw(st.integers(50, 400)))
            capacities[f"down:{n}"] = float(draw(st.integers(50, 400)))
        capacities["switch:hub"] = float(draw(st.integers(100, 1000)))
        capacities["wan:hub>b"] = float(draw(st.integers(20, 200)))
        capacities["wan:b>hub"] = float(draw(st.integers(20, 200)))
    initial = [draw(st.lists(st.integers(0, max(0, n_chunks - 1)), max_size=n_chunks)) if n_chunks else []
               for _ in range(n_peers)]
    return Scenario(n_chunks, peers, two_sites, capacities, initial, draw(st.integers(0, 2**32 - 1)))


@dataclass
class Shadow:
    """An independent, naive model of who holds and receives what."""

    have: dict[str, set[str]] = field(default_factory=dict)
    recv: dict[str, set[str]] = field(default_factory=dict)
    flights: dict[int, Transfer] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)


def build(sc: Scenario) -> tuple[Planner, Shadow, LinkMap]:
    names = ["S", *(f"p{i}" for i in range(len(sc.peers)))]
    site = {"S": "hub", **{f"p{i}": s for i, (_, _, s) in enumerate(sc.peers)}}
    lm = LinkMap(links={n: Link(n, c) for n, c in sc.capacities.items()},
                 node_site=site if sc.two_sites else {}, site_parent={"hub": None, "b": "hub"})
    p = Planner(links=lm, rng=random.Random(sc.seed), config=PlannerConfig(min_timeout_s=0.5))
    chunks = [(f"c{i}", 100 + i) for i in range(sc.n_chunks)]
    p.set_chunks(chunks)
    sh = Shadow()
    p.add_node("S", dl_slots=0, ul_slots=2, seed=True)
    p.set_have("S", [h for h, _ in chunks])
    sh.have["S"], sh.recv["S"] = {h for h, _ in chunks}, set()
    for i, (dl, ul, _) in enumerate(sc.peers):
        name = names[i + 1]
        p.add_node(name, dl_slots=dl, ul_slots=ul)
        start = {f"c{c}" for c in sc.initial[i]}
        p.set_have(name, start)
        sh.have[name], sh.recv[name] = set(start), set()
    return p, sh, lm


def check_plan(p: Planner, sh: Shadow, lm: LinkMap, new: list[Transfer], sc: Scenario) -> None:
    slots = {"S": (0, 2), **{f"p{i}": (dl, ul) for i, (dl, ul, _) in enumerate(sc.peers)}}
    for t in new:
        assert t.source != t.dest
        assert t.chunk in sh.have[t.source]
        assert t.chunk not in sh.have[t.dest] and t.chunk not in sh.recv[t.dest]
        if lm.crosses_wan(t.source, t.dest):
            site = lm.site_of(t.dest)
            # a site's own copies are those of nodes that can pass them on
            same_site = [n for n in sh.have
                         if lm.site_of(n) == site and slots[n][1] > 0 and n not in sh.corrupt]
            assert not any(t.chunk in sh.have[n] or t.chunk in sh.recv[n] for n in same_site)
        sh.recv[t.dest].add(t.chunk)
        sh.flights[t.id] = t
    for name, (dl, ul) in slots.items():
        assert sum(t.dest == name for t in sh.flights.values()) <= dl + p.config.slow_extra_slots
        ups = [t for t in sh.flights.values() if t.source == name]
        local = [t for t in ups if not lm.crosses_wan(t.source, t.dest)]
        assert len(local) <= ul and len(ups) <= ul + p.config.narrow_extra_slots
    used: dict[str, float] = {}
    for t in sh.flights.values():
        if t.rate_cap is not None:
            for link in lm.path(t.source, t.dest):
                used[link] = used.get(link, 0.0) + t.rate_cap
        else:
            assert not lm.path(t.source, t.dest)       # uncapped only where no link is finite
    for link, rate in used.items():
        assert rate <= sc.capacities[link] * (1 + 1e-9)
    sources: dict[str, set[str]] = {}
    for t in sh.flights.values():
        for link in lm.path(t.source, t.dest):
            if link.startswith("wan:"):
                sources.setdefault(link, set()).add(t.source)
                # the source paces the link's transfers together at the link's rate
                assert t.pace_group is not None and t.pace_group[1] <= sc.capacities[link]
    assert all(len(s) == 1 for s in sources.values()), sources     # one source per WAN link at a time
    assert {t.id for t in p.inflight()} == set(sh.flights)


def settle(sh: Shadow, t: Transfer, ok: bool) -> None:
    del sh.flights[t.id]
    sh.recv[t.dest].discard(t.chunk)
    if ok:
        sh.have[t.dest].add(t.chunk)


def disturb(p: Planner, sh: Shadow, sc: Scenario, events: random.Random) -> None:
    """A have from elsewhere (a relay verifying a chunk), or a peer restarting with what it kept."""
    peers = [f"p{i}" for i in range(len(sc.peers))]
    name = events.choice(peers)
    if events.random() < 0.5 and sc.n_chunks:
        chunk = f"c{events.randrange(sc.n_chunks)}"
        p.add_have(name, chunk)
        sh.have[name].add(chunk)
        return
    dropped = p.remove_node(name)
    assert {t.id for t in dropped} == {i for i, t in sh.flights.items() if name in (t.source, t.dest)}
    for t in dropped:
        settle(sh, t, ok=False)
    dl, ul, _ = sc.peers[peers.index(name)]
    p.add_node(name, dl_slots=dl, ul_slots=ul)
    p.set_have(name, sh.have[name])
    sh.corrupt.discard(name)


def run(sc: Scenario, fail_rate: float, steps: int = 400) -> tuple[Planner, list[tuple[int, str, str, str]]]:
    p, sh, lm = build(sc)
    events = random.Random(sc.seed ^ 0x5EED)
    log: list[tuple[int, str, str, str]] = []
    now = 0.0
    for _ in range(steps):
        new = p.plan(now)
        check_plan(p, sh, lm, new, sc)
        log += [(t.id, t.chunk, t.source, t.dest) for t in new]
        if not sh.flights:
            break
        now += events.random()
        for t in p.expire(now):
            settle(sh, t, ok=False)
        if sh.flights:
            t = sh.flights[events.choice(sorted(sh.flights))]
            ok = events.random() >= fail_rate
            corrupt = not ok and events.random() < 0.1
            p.finish(t.id, now, ok=ok, corrupt=corrupt)
            if corrupt:
                sh.corrupt.add(t.source)
            settle(sh, t, ok)
        if fail_rate and events.random() < 0.2:
            disturb(p, sh, sc, events)
        for name in sh.have:
            assert set(p.has(name)) == {int(h[1:]) for h in sh.have[name]}
    return p, log


@settings(max_examples=120, deadline=None)
@given(scenarios())
def test_fault_free_runs_complete_within_invariants(sc: Scenario) -> None:
    p, _ = run(sc, fail_rate=0.0, steps=2000)
    assert p.swarm_complete() and not p.inflight()


@settings(max_examples=80, deadline=None)
@given(scenarios(), st.floats(0.05, 0.5))
def test_faulty_runs_keep_invariants(sc: Scenario, fail_rate: float) -> None:
    run(sc, fail_rate=fail_rate, steps=200)


@settings(max_examples=30, deadline=None)
@given(scenarios())
def test_same_seed_same_run(sc: Scenario) -> None:
    assert run(sc, fail_rate=0.1)[1] == run(sc, fail_rate=0.1)[1]
