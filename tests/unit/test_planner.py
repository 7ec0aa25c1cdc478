"""Small swarms with the exact transfers the planner must choose."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from lanscatter.core.linkmap import Link, LinkMap
from lanscatter.core.planner import Planner, PlannerConfig, Transfer

CHUNKS = [(f"c{i}", 1000) for i in range(8)]


def swarm(n_chunks: int = 4, *, links: LinkMap | None = None, config: PlannerConfig | None = None,
          seed_slots: int = 2) -> Planner:
    p = Planner(links=links, rng=random.Random(7), config=config or PlannerConfig())
    p.set_chunks(CHUNKS[:n_chunks])
    p.add_node("S", dl_slots=0, ul_slots=seed_slots, seed=True)
    p.set_have("S", [h for h, _ in CHUNKS[:n_chunks]])
    return p


def triples(transfers) -> set[tuple[str, str, str]]:
    return {(t.chunk, t.source, t.dest) for t in transfers}


def test_one_chunk_one_peer() -> None:
    p = swarm(1)
    p.add_node("a", dl_slots=2, ul_slots=2)
    [t] = p.plan(0.0)
    assert (t.chunk, t.source, t.dest, t.size, t.rate_cap, t.started) == ("c0", "S", "a", 1000, None, 0.0)
    assert p.plan(0.0) == []                      # a is receiving c0 already: nothing more to do
    p.finish(t.id, 1.0, ok=True)
    assert p.is_complete("a") and p.swarm_complete()
    assert p.plan(2.0) == []
    st = p.node_stats("S")
    assert (st.uploads, st.avg_upload_s, st.uploading) == (1, 1.0, 0)


def test_empty_generation_is_complete_at_once() -> None:
    p = swarm(0)
    p.add_node("a", dl_slots=2, ul_slots=2)
    assert p.plan(0.0) == [] and p.swarm_complete()


def test_rarest_chunk_first() -> None:
    p = swarm(2, seed_slots=1)
    p.add_node("a", dl_slots=0, ul_slots=1)
    p.set_have("a", ["c0"])
    p.add_node("b", dl_slots=1, ul_slots=1)
    # b can get c0 from a (2 copies) or c1 from S (1 copy): c1 is rarer.
    assert triples(p.plan(0.0)) == {("c1", "S", "b")}


def test_least_complete_downloader_first() -> None:
    p = swarm(4, seed_slots=1)
    p.add_node("a", dl_slots=1, ul_slots=0)
    p.set_have("a", ["c0", "c1"])
    p.add_node("b", dl_slots=1, ul_slots=0)
    p.set_have("b", ["c0"])
    p.add_node("c", dl_slots=1, ul_slots=0)
    [t] = p.plan(0.0)
    assert t.dest == "c"


def test_a_seed_sends_its_short_chunks_first() -> None:
    """Of equally rare chunks a seed sends the short ones (small files, files' ends) first: they are
    whole, and can be passed on, soonest."""
    chunks = [(f"c{i}", 4000 if i % 4 else 700) for i in range(12)]       # c0, c4, c8 are short
    for rng_seed in range(20):
        p = Planner(rng=random.Random(rng_seed))
        p.set_chunks(chunks)
        p.add_node("S", dl_slots=0, ul_slots=3, seed=True)
        p.set_have("S", [h for h, _ in chunks])
        for name in "abc":
            p.add_node(name, dl_slots=2, ul_slots=2)
        assert {t.chunk for t in p.plan(0.0)} == {"c0", "c4", "c8"}
    # rarity still comes first: b gets the whole c1 only S holds, not the short c0 that a holds too
    p = Planner(rng=random.Random(7))
    p.set_chunks([("c0", 100), ("c1", 1000)])
    p.add_node("S", dl_slots=0, ul_slots=1, seed=True)
    p.set_have("S", ["c0", "c1"])
    p.add_node("a", dl_slots=0, ul_slots=1)
    p.set_have("a", ["c0"])
    p.add_node("b", dl_slots=1, ul_slots=0)
    assert triples(p.plan(0.0)) == {("c1", "S", "b")}


def test_source_spreads_over_different_chunks() -> None:
    p = swarm(1, seed_slots=0)
    p.set_chunks(CHUNKS[:2])
    p.add_node("a", dl_slots=0, ul_slots=2)
    p.set_have("a", ["c0", "c1"])
    for name in ("x", "y"):
        p.add_node(name, dl_slots=1, ul_slots=0)
    ts = p.plan(0.0)
    assert sorted(t.chunk for t in ts) == ["c0", "c1"] and {t.source for t in ts} == {"a"}


@pytest.mark.parametrize("seed", range(10))
def test_seed_used_less_once_peers_hold_copies(seed: int) -> None:
    p = Planner(rng=random.Random(seed), config=PlannerConfig(seed_weight=0.0))
    p.set_chunks(CHUNKS[:2])
    for name in ("S", "a"):
        p.add_node(name, dl_slots=0, ul_slots=1, seed=name == "S")
        p.set_have(name, ["c0", "c1"])
    p.add_node("b", dl_slots=1, ul_slots=0)
    [t] = p.plan(0.0)
    assert t.source == "a"


def test_corrupt_source_is_avoided() -> None:
    p = swarm(2, seed_slots=1)
    p.add_node("a", dl_slots=0, ul_slots=1)
    p.set_have("a", ["c0", "c1"])
    p.add_node("b", dl_slots=2, ul_slots=0)
    ts = p.plan(0.0)
    assert {t.source for t in ts} == {"S", "a"}
    bad = next(t for t in ts if t.source == "a")
    p.finish(bad.id, 1.0, ok=False, corrupt=True)
    assert p.node_stats("a").corrupt
    good = next(t for t in ts if t.source == "S")
    p.finish(good.id, 1.0, ok=True)
    for _ in range(3):
        [t] = p.plan(1.0)
        assert (t.chunk, t.source) == (bad.chunk, "S")
        p.finish(t.id, 1.0, ok=False)


def test_relay_seed_cut_through() -> None:
    p = Planner(rng=random.Random(1))
    p.set_chunks(CHUNKS[:3])
    p.add_node("relay", dl_slots=0, ul_slots=2, seed=True)
    p.add_node("a", dl_slots=2, ul_slots=2)
    assert p.plan(0.0) == []                      # the relay has nothing yet
    p.add_have("relay", "c1")
    assert triples(p.plan(0.1)) == {("c1", "relay", "a")}
    p.add_have("relay", "c0")
    assert triples(p.plan(0.2)) == {("c0", "relay", "a")}
    assert not p.is_complete("relay")


def test_a_have_piece_at_once_is_the_same_as_its_chunks_one_by_one() -> None:
    """`add_haves` (a peer's Have piece) leaves the planner as `add_have` of each chunk does."""
    chunks = [(f"c{i}", 1000) for i in range(300)]
    plans = []
    for at_once in (False, True):
        p = Planner(rng=random.Random(3))
        p.set_chunks(chunks)
        p.add_node("S", dl_slots=0, ul_slots=4, seed=True)
        p.set_have("S", [h for h, _ in chunks])
        for name in "abc":
            p.add_node(name, dl_slots=2, ul_slots=2)
            p.set_have(name, [])
        p.plan(0.0)                             # some chunks on their way: received, not yet held
        p.add_arriving("b", "c7", due=9.0)
        piece = [f"c{i}" for i in range(0, 300, 3)] + ["c7", "c3", "unknown"]
        if at_once:
            p.add_haves("b", piece)
        else:
            for h in piece:
                p.add_have("b", h)
        plans.append((p.has("b").bits, p.receiving("b").bits, sorted(triples(p.plan(1.0)))))
    assert plans[0] == plans[1] and plans[0][0].bit_count() == 101


def test_relay_seed_serves_a_chunk_while_it_arrives() -> None:
    # One site, a 100 B/s port to the downloader: a 1000-byte chunk is expected in about 10 s.
    lm = LinkMap(links={"down:a": Link("down:a", 100.0), "up:a": Link("up:a", 100.0)},
                 node_site={"relay": "b", "a": "b"}, site_parent={"b": None})
    p = Planner(links=lm, rng=random.Random(1))
    p.set_chunks(CHUNKS[:3])
    p.add_node("relay", dl_slots=0, ul_slots=2, seed=True)
    p.add_node("a", dl_slots=1, ul_slots=2)
    normal = swarm(1, links=lm)
    normal.add_node("a", dl_slots=1, ul_slots=2)
    [usual] = normal.plan(0.0)
    # The relay's download of c0 from upstream is due at t=30: its transfers may last that long more.
    p.add_arriving("relay", "c0", due=30.0)
    assert 0 in p.has("relay") and not p.is_complete("relay")
    [t] = p.plan(0.0)
    assert (t.chunk, t.source, t.dest) == ("c0", "relay", "a")
    assert t.timeout_s == pytest.approx(usual.timeout_s + 30.0)
    p.finish(t.id, 35.0, ok=True)          # at the upstream's pace, far behind the port's: no slowness
    assert p.node_stats("relay").slowness == 1.0
    # An arrival that fails is withdrawn: nothing is planned from it.
    p.add_arriving("relay", "c1", due=40.0)
    p.drop_arriving("relay", "c1")
    assert 1 not in p.has("relay")
    assert p.plan(36.0) == []
    # Verified (add_have) after arriving: an ordinary holding, ordinary timeouts.
    p.add_arriving("relay", "c2", due=60.0)
    p.add_have("relay", "c2")
    p.drop_arriving("relay", "c2")         # too late: it is held
    [t] = p.plan(37.0)
    assert (t.chunk, t.source) == ("c2", "relay") and t.timeout_s == pytest.approx(usual.timeout_s)


def test_a_chunk_arriving_at_a_peer_is_the_last_resort_of_a_downloader_with_a_free_slot() -> None:
    p = swarm(3)
    p.add_node("a", dl_slots=2, ul_slots=2)
    p.add_node("b", dl_slots=2, ul_slots=2)
    sent = {t.dest: t for t in p.plan(0.0)}         # the seed's two slots: one chunk each
    assert set(sent) == {"a", "b"} and sent["a"].chunk != sent["b"].chunk
    first = sent["a"]
    assert p.plan(0.05) == []               # nothing whole to be had, nothing arriving yet
    p.add_arriving("a", first.chunk, due=5.0, last_resort=True)
    # b has a download in flight and a free slot, and no holder of anything it lacks has a slot:
    # it takes the chunk as it arrives at a rather than leave its slot idle.
    [fed] = p.plan(0.1)
    assert (fed.chunk, fed.source, fed.dest) == (first.chunk, "a", "b")
    p.add_node("c", dl_slots=2, ul_slots=2)
    [fed_c] = p.plan(0.2)                   # c has nothing: it takes the same chunk from a too
    assert (fed_c.chunk, fed_c.source, fed_c.dest) == (first.chunk, "a", "c")
    p.finish(first.id, 1.0, ok=True)        # whole at a now: an ordinary holding
    assert not p.is_arriving("a", first.chunk)


def test_across_wan_links_a_chunk_arriving_at_a_peer_waits_for_an_idle_downloader() -> None:
    p = swarm(2, links=LinkMap(links={"wan:hub>b": Link("wan:hub>b", 1e6)}))
    p.add_node("a", dl_slots=2, ul_slots=2)
    p.add_node("b", dl_slots=2, ul_slots=2)
    first = next(t for t in p.plan(0.0) if t.dest == "a")
    p.add_arriving("a", first.chunk, due=5.0, last_resort=True)
    assert p.plan(0.1) == []                # b has a download in flight: it waits for a whole copy
    p.add_node("c", dl_slots=2, ul_slots=2)
    [fed] = p.plan(0.2)                     # c has nothing: it takes the chunk as it arrives at a
    assert (fed.chunk, fed.source, fed.dest) == (first.chunk, "a", "c")
    p.finish(first.id, 1.0, ok=True)        # whole at a now: an ordinary holding
    assert not p.is_arriving("a", first.chunk)
    assert {t.chunk for t in p.plan(1.1) if t.dest == "b"} == {first.chunk}


def test_a_whole_copy_comes_before_a_chunk_still_arriving() -> None:
    p = swarm(3, seed_slots=1)
    p.add_node("a", dl_slots=2, ul_slots=2)
    p.add_node("b", dl_slots=2, ul_slots=2)
    p.add_have("b", "c2")
    sent = p.plan(0.0)
    [from_seed] = [t for t in sent if t.source == "S"]
    assert from_seed.dest == "a" and from_seed.chunk != "c2"
    p.add_arriving("a", from_seed.chunk, due=5.0, last_resort=True)
    [fed_b] = p.plan(0.05)                  # b has nothing in flight: it follows the arriving chunk
    assert (fed_b.chunk, fed_b.source) == (from_seed.chunk, "a")
    p.add_node("c", dl_slots=2, ul_slots=2)
    whole, fed_c = p.plan(0.1)
    # The arriving chunk is the rarer, but a whole copy (b's, b has a slot left) comes first; the
    # second slot then follows the arriving chunk rather than stay idle.
    assert (whole.chunk, whole.source, whole.dest) == ("c2", "b", "c")
    assert (fed_c.chunk, fed_c.source, fed_c.dest) == (from_seed.chunk, "a", "c")


def _two_sites(wan: float = 10.0) -> LinkMap:
    links = {
        "up:S": Link("up:S", 100.0), "down:S": Link("down:S", 100.0),
        "up:h": Link("up:h", 100.0), "down:h": Link("down:h", 100.0),
        "down:R": Link("down:R", 100.0), "up:R": Link("up:R", 100.0),
        "down:X": Link("down:X", 100.0), "up:X": Link("up:X", 100.0),
        "wan:hub>b": Link("wan:hub>b", wan), "wan:b>hub": Link("wan:b>hub", wan),
    }
    return LinkMap(links=links, node_site={"S": "hub", "h": "hub", "R": "b", "X": "b"},
                   site_parent={"hub": None, "b": "hub"})


def test_a_relay_is_fed_in_the_first_round_beside_the_seeds_own_site() -> None:
    # The seed's two upload slots and three peers of its site: their copies would book the whole
    # of the seed's port, and the WAN would wait for one of them to end.
    links = {f"{side}:{n}": Link(f"{side}:{n}", 100.0) for n in ("S", "h1", "h2", "h3", "R")
             for side in ("up", "down")}
    links |= {"wan:hub>b": Link("wan:hub>b", 10.0), "wan:b>hub": Link("wan:b>hub", 10.0)}
    lm = LinkMap(links=links, node_site={"S": "hub", "h1": "hub", "h2": "hub", "h3": "hub", "R": "b"},
                 site_parent={"hub": None, "b": "hub"})
    p = swarm(8, links=lm, seed_slots=2)
    for name in ("h1", "h2", "h3"):
        p.add_node(name, dl_slots=2, ul_slots=2)
    p.add_node("R", dl_slots=2, ul_slots=0)
    first = p.plan(0.0)
    assert "R" in {t.dest for t in first}
    assert len({t.dest for t in first if t.dest != "R"}) == 2          # the seed's slots still go to its site


def test_wan_link_never_overbooked_and_caps_given() -> None:
    p = swarm(4, links=_two_sites(wan=10.0))
    p.add_node("R", dl_slots=4, ul_slots=0)
    # wan_streams (2) transfers share the WAN, so the link stays busy while one ends and the next starts
    ts = p.plan(0.0)
    assert [(t.source, t.dest, t.rate_cap) for t in ts] == [("S", "R", 5.0)] * 2
    assert p.link_booked()["wan:hub>b"] == 10.0
    assert p.plan(0.0) == []                      # the WAN link is full
    p.finish(ts[0].id, 100.0, ok=True)
    [t2] = p.plan(100.0)
    assert t2.rate_cap == 5.0


def test_wan_link_held_by_one_source_which_paces_it_as_a_whole() -> None:
    p = swarm(4, links=_two_sites(wan=10.0))
    p.add_node("h", dl_slots=0, ul_slots=2)
    p.set_have("h", [h for h, _ in CHUNKS])        # a second source in the hub holding everything
    p.add_node("R", dl_slots=4, ul_slots=0)
    ts = p.plan(0.0)
    assert len(ts) == 2 and len({t.source for t in ts}) == 1     # one source for the whole link
    assert {t.pace_group for t in ts} == {("wan:hub>b", 10.0)}
    assert {t.pace_cap for t in ts} == {None}                    # no finite switch on the way
    p.finish(ts[0].id, 100.0, ok=True)
    [t2] = p.plan(100.0)
    assert t2.source == ts[1].source                 # the link is still that source's
    p.finish(ts[1].id, 200.0, ok=True)
    p.finish(t2.id, 200.0, ok=True)
    assert p.link_booked()["wan:hub>b"] == 0.0       # idle: any source may take it next
    [last] = p.plan(200.0)                           # the one chunk R still lacks
    assert last.pace_group == ("wan:hub>b", 10.0)


def test_engine_keeps_only_the_switch_share_per_transfer() -> None:
    # Host ports are kept by each host across its own transfers; a finite switch is shared by all.
    lm = LinkMap(links={"switch:hub": Link("switch:hub", 120.0), "up:S": Link("up:S", 1000.0),
                        "down:a": Link("down:a", 50.0)},
                 node_site={"S": "hub", "a": "hub"}, site_parent={"hub": None})
    p = Planner(links=lm, rng=random.Random(1))
    p.set_chunks(CHUNKS)
    p.add_node("S", dl_slots=0, ul_slots=4, seed=True)
    p.set_have("S", [h for h, _ in CHUNKS])
    p.add_node("a", dl_slots=2, ul_slots=2)
    ts = p.plan(0.0)
    assert [t.rate_cap for t in ts] == [25.0, 25.0]    # booked: a's downlink split between its slots
    # enforced: the switch's share (split among the round's transfers, then what is left)
    assert [t.pace_cap for t in ts] == [60.0, 95.0]
    assert {t.pace_group for t in ts} == {None}


def test_shared_switch_split_among_the_round_not_taken_by_the_first() -> None:
    lm = LinkMap(links={"switch:hub": Link("switch:hub", 120.0)}, node_site={n: "hub" for n in "Sabcd"},
                 site_parent={"hub": None})
    p = Planner(links=lm, rng=random.Random(1))
    p.set_chunks(CHUNKS)
    p.add_node("S", dl_slots=0, ul_slots=4, seed=True)
    p.set_have("S", [h for h, _ in CHUNKS])
    for name in "abcd":
        p.add_node(name, dl_slots=2, ul_slots=2)
    ts = p.plan(0.0)                              # 8 free download slots, 4 upload slots: 4 transfers
    assert len(ts) == 4 and {t.rate_cap for t in ts} == {30.0} and len({t.dest for t in ts}) == 4
    p.finish(ts[0].id, 1.0, ok=True)
    new = p.plan(1.0)
    assert sum(t.rate_cap for t in new) == 30.0   # what the finished one freed, no more
    assert p.link_booked()["switch:hub"] == 120.0


def test_wan_bound_upload_runs_beside_the_slots() -> None:
    p = swarm(4, links=_two_sites(wan=10.0), seed_slots=1)
    p.add_node("h", dl_slots=1, ul_slots=0)
    p.set_have("h", ["c0"])                       # R is served first (least complete)
    p.add_node("R", dl_slots=1, ul_slots=0)
    ts = sorted(p.plan(0.0), key=lambda t: t.dest)
    # the 10 B/s WAN copy (a tenth of the seed's one slot) runs beside the slot, which still serves
    # the seed's own site with the rest of the uplink
    assert [(t.source, t.dest, t.rate_cap) for t in ts] == [("S", "R", 10.0), ("S", "h", 90.0)]
    assert p.node_stats("S").uploading == 2


def test_host_links_split_between_free_slots() -> None:
    p = swarm(4, links=_two_sites(wan=1000.0))
    p.add_node("h", dl_slots=2, ul_slots=2)
    ts = p.plan(0.0)
    assert sorted(t.rate_cap for t in ts) == [50.0, 50.0]
    assert p.link_booked()["up:S"] == 100.0 and p.link_booked()["down:h"] == 100.0


def test_no_wan_transfer_when_own_site_has_the_chunk() -> None:
    lm = _two_sites(wan=1000.0)
    lm = LinkMap(links=lm.links, node_site={**lm.node_site, "Y": "b"}, site_parent=lm.site_parent)
    p = swarm(2, links=lm)
    p.add_node("X", dl_slots=0, ul_slots=1)
    p.set_have("X", ["c0"])
    p.add_node("Y", dl_slots=1, ul_slots=1)
    p.add_node("R", dl_slots=2, ul_slots=0)
    # Y takes c0 from X rather than the remote seed's uplink; then c0 is in site b already and
    # c1 is on its way to R: nothing more crosses the WAN.
    assert triples(p.plan(0.0)) == {("c0", "X", "Y"), ("c1", "S", "R")}
    assert p.plan(1.0) == []


def test_no_second_wan_copy_while_one_is_on_its_way() -> None:
    p = swarm(1, links=_two_sites(wan=1000.0))
    p.add_node("R", dl_slots=2, ul_slots=2)
    p.add_node("X", dl_slots=2, ul_slots=2)
    [t] = p.plan(0.0)
    assert t.chunk == "c0"
    assert p.plan(0.0) == []
    p.finish(t.id, 1.0, ok=True)
    [t2] = p.plan(1.0)
    assert (t2.source, t2.dest) == (t.dest, "RX".replace(t.dest, ""))


def _pair(config: PlannerConfig) -> Planner:
    links = LinkMap(links={n: Link(n, 1000.0) for n in ("up:a", "down:b")})
    p = Planner(links=links, rng=random.Random(3), config=config)
    p.set_chunks(CHUNKS)
    p.add_node("a", dl_slots=0, ul_slots=1)
    p.set_have("a", [h for h, _ in CHUNKS])
    p.add_node("b", dl_slots=1, ul_slots=0)
    return p


def test_slow_source_times_out_then_is_avoided() -> None:
    p = _pair(PlannerConfig(min_timeout_s=1.0, timeout_factor=4.0, endgame_chunks=8, slow_threshold=1.5,
                            transfer_overhead_s=0.0))
    [t] = p.plan(0.0)
    assert (t.source, t.rate_cap, t.timeout_s) == ("a", 1000.0, 4.0)   # 4 x (1000 B / 1000 B/s)
    assert p.expire(3.9) == []
    assert [x.id for x in p.expire(4.0)] == [t.id]
    assert p.node_stats("a").slowness == pytest.approx(0.7 + 0.3 * 4.0) and p.node_stats("a").failures == 1
    p.finish(t.id, 5.0, ok=True)                  # a late report of an expired transfer is ignored
    assert p.node_stats("a").uploads == 0
    [t] = p.plan(4.0)                             # the only source: still used (b has nothing else)
    assert t.source == "a"


def test_slow_source_is_measured_and_used_less() -> None:
    chunks = [(f"k{i:02d}", 1000) for i in range(60)]
    links = LinkMap(links={n: Link(n, 1000.0) for n in ("up:a", "up:f1", "up:f2", "down:b")})
    p = Planner(links=links, rng=random.Random(5), config=PlannerConfig(min_timeout_s=0.1))
    p.set_chunks(chunks)
    for name in ("a", "f1", "f2"):
        p.add_node(name, dl_slots=0, ul_slots=1)
        p.set_have(name, [h for h, _ in chunks])
    p.add_node("b", dl_slots=2, ul_slots=0)
    ends: dict[int, tuple[float, Transfer]] = {}
    order: list[str] = []
    now = 0.0
    for _ in range(500):
        for t in p.plan(now):                     # a uploads 20x slower than its link promises
            ends[t.id] = (t.started + t.size / t.rate_cap * (20 if t.source == "a" else 1), t)
        if p.is_complete("b"):
            break
        tid, (end, t) = min(ends.items(), key=lambda kv: kv[1][0])
        deadline = min(x.started + x.timeout_s for _, x in ends.values())
        now = min(end, deadline)
        for x in p.expire(now):
            del ends[x.id]
        if tid in ends and end <= now:
            del ends[tid]
            p.finish(tid, now, ok=True)
            order.append(t.source)
    assert p.is_complete("b")
    assert p.node_stats("a").slowness > 2.0
    assert order.count("a") * 5 < min(order.count("f1"), order.count("f2"))
    assert "a" not in order[-4:]                  # never a slow copy at the tail


def test_known_slow_source_gets_a_smaller_cap() -> None:
    p = _pair(PlannerConfig(endgame_chunks=0, slow_threshold=10.0, transfer_overhead_s=0.0))
    [t] = p.plan(0.0)
    p.finish(t.id, 3.0, ok=True)                  # 3 s for 1000 B at 1000 B/s nominal: sample 3
    slow = 0.7 + 0.3 * 3.0
    assert p.node_stats("a").slowness == pytest.approx(slow)
    [t] = p.plan(3.0)
    assert t.rate_cap == pytest.approx(1000.0 / slow)
    assert t.timeout_s == pytest.approx(4.0 * slow * slow)   # 4 x expected time x swarm median slowness
    p.finish(t.id, 4.0, ok=True)
    assert p.node_stats("a").slowness == pytest.approx(0.7 * slow + 0.3 * 1.0)


def test_new_generation_keeps_surviving_chunks_and_cancels_vanished() -> None:
    p = swarm(4)
    p.add_node("a", dl_slots=2, ul_slots=2)
    p.set_have("a", ["c0", "c3"])
    ts = p.plan(0.0)
    assert {t.chunk for t in ts} == {"c1", "c2"}
    cancelled = p.set_chunks([("c3", 1000), ("c2", 1000), ("c9", 1000)])
    assert [t.chunk for t in cancelled] == ["c1"]
    assert list(p.has("a")) == [0] and list(p.receiving("a")) == [1]
    assert [t.chunk for t in p.inflight()] == ["c2"]
    p.set_have("S", ["c3", "c2", "c9"])
    [t] = p.plan(1.0)
    assert (t.chunk, t.dest) == ("c9", "a")
    for x in p.inflight():
        p.finish(x.id, 2.0, ok=True)
    assert p.is_complete("a") and p.has("a").to_bytes() == b"\x07"


def test_remove_node_returns_its_transfers() -> None:
    p = swarm(4)
    p.add_node("a", dl_slots=2, ul_slots=2)
    ts = p.plan(0.0)
    assert sorted(t.id for t in p.remove_node("a")) == sorted(t.id for t in ts)
    assert p.inflight() == [] and p.node_names() == ["S"]
    assert p.node_stats("S").uploading == 0


def test_duplicate_node_and_duplicate_hash_are_refused() -> None:
    p = swarm(1)
    with pytest.raises(ValueError):
        p.add_node("S", dl_slots=1, ul_slots=1)
    with pytest.raises(ValueError):
        p.set_chunks([("c0", 1), ("c0", 1)])


def test_importing_the_planner_loads_no_network_stack() -> None:
    code = ("import sys, lanscatter.core.planner; "
            "print(','.join(m for m in ('asyncio', 'aiohttp', 'socket') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""


def test_small_chunks_on_a_fast_link_do_not_read_as_slow_sources() -> None:
    """A tiny chunk's time is the fixed cost of any transfer; it must not shrink later caps."""
    links = LinkMap(links={"up:a": Link("up:a", 100e6), "down:b": Link("down:b", 100e6)})
    p = Planner(links=links, rng=random.Random(3))
    tiny = [(f"{i:064x}", 100) for i in range(40)]
    p.set_chunks(tiny)
    p.add_node("a", dl_slots=0, ul_slots=1)
    p.set_have("a", [h for h, _ in tiny])
    p.add_node("b", dl_slots=1, ul_slots=0)
    now = 0.0
    caps = []
    while not p.is_complete("b"):
        [t] = p.plan(now)
        caps.append(t.rate_cap)
        now += 0.02                              # 20 ms of messages and request per transfer
        p.finish(t.id, now, ok=True)
    assert min(caps) == pytest.approx(100e6)
    assert p.node_stats("a").slowness < 1.5


def test_a_transfer_to_a_very_slow_port_gets_a_timeout_a_download_message_can_carry() -> None:
    """A peer limited to a trickle once got timeouts above the protocol's bound, and refused every
    Download (reconnecting in a loop)."""
    links = LinkMap(links={"up:a": Link("up:a", 100e6), "down:b": Link("down:b", 1.0)})
    p = Planner(links=links, rng=random.Random(1))
    p.set_chunks([(f"{i:064x}", 64 << 20) for i in range(2)])
    p.add_node("a", dl_slots=0, ul_slots=1)
    p.set_have("a", [f"{i:064x}" for i in range(2)])
    p.add_node("b", dl_slots=1, ul_slots=0)
    [t] = p.plan(0.0)
    assert 5.0 <= t.timeout_s <= 86_400.0


def test_a_transfer_timed_by_the_initial_guess_times_out_at_the_measured_speed_once_known() -> None:
    """With no rates known the first transfers get the initial guess (minutes) as their timeout. A
    source that hangs at the start should not hold its downloader that long once a transfer shows
    the swarm's speed: the guess gives way to the timeout a transfer like it gets then."""
    p = Planner(rng=random.Random(2))
    p.set_chunks([(f"c{i}", 1000) for i in range(4)])
    p.add_node("S", dl_slots=0, ul_slots=1, seed=True)
    p.set_have("S", [f"c{i}" for i in range(4)])
    p.add_node("hung", dl_slots=0, ul_slots=1)
    p.set_have("hung", [f"c{i}" for i in range(4)])
    p.add_node("a", dl_slots=1, ul_slots=1)
    p.add_node("b", dl_slots=1, ul_slots=1)
    first = p.plan(0.0)
    assert len(first) == 2 and all(t.timeout_s == PlannerConfig().initial_timeout_s for t in first)
    stuck = next(t for t in first if t.source == "hung")
    done = next(t for t in first if t.source != "hung")
    p.finish(done.id, 0.1, ok=True)               # 1000 B in 0.1 s: the swarm's speed is known
    p.plan(1.5)                                   # (the medians refresh at most once a second)
    assert p.deadline(stuck.id) == pytest.approx(PlannerConfig().min_timeout_s)
    assert p.expire(4.9) == []
    assert p.expire(5.1) == [stuck]               # not at 300 s
    assert p.node_stats("hung").failures == 1


def test_the_transfers_timed_by_the_guess_are_not_remembered_past_their_end() -> None:
    """Before anything is measured every transfer is timed by the guess; if none ever succeeds
    (every one fails), the planner still remembers only about as many as are in flight."""
    p = Planner(rng=random.Random(4))
    p.set_chunks([(f"c{i}", 1000) for i in range(4)])
    p.add_node("S", dl_slots=0, ul_slots=2, seed=True)
    p.set_have("S", [f"c{i}" for i in range(4)])
    p.add_node("a", dl_slots=2, ul_slots=1)
    now = 0.0
    for _ in range(500):
        for t in p.plan(now):
            p.finish(t.id, now, ok=False)
        now += 0.01
    assert len(p._guessed) <= 2 * 2 + 64 + 1


def _measured_swarm() -> tuple[Planner, Transfer]:
    """S seeds four chunks of 1000 B; `a` took one in 0.01 s (the swarm's speed: 100 kB/s); `w`, a
    host on a slow port no link map states, gets one planned before its port was seen."""
    p = swarm(4, seed_slots=4)
    p.add_node("a", dl_slots=1, ul_slots=0)
    [first] = p.plan(0.0)
    p.finish(first.id, 0.01, ok=True)
    p.set_dl_slots("a", 0)                        # (out of the way)
    p.add_node("w", dl_slots=1, ul_slots=0)
    [slow] = p.plan(1.5)                          # (the medians refresh at most once a second)
    assert slow.dest == "w" and slow.rate_cap is None and slow.timeout_s == PlannerConfig().min_timeout_s
    return p, slow


def test_a_destinations_own_port_times_its_uncapped_downloads() -> None:
    """Where no link map states a host's port, what it has been seen receiving does: a host on
    Wi-Fi among wired ones gets timeouts for its own speed, not the swarm's."""
    p, _ = _measured_swarm()
    p.add_node("w2", dl_slots=2, ul_slots=0)
    p.set_rx_peak("w2", 100.0)                    # 100 B/s: 1000 B take 10 s alone, 20 s beside another
    first, second = p.plan(2.0)
    assert first.timeout_s >= PlannerConfig().timeout_factor * 10.0
    assert second.timeout_s >= PlannerConfig().timeout_factor * 20.0
    p.add_node("fast", dl_slots=1, ul_slots=0)
    p.set_rx_peak("fast", 1e9)                    # a fast port changes nothing
    [t] = p.plan(2.0)
    assert t.dest == "fast" and t.timeout_s == PlannerConfig().min_timeout_s


def test_a_download_its_destinations_port_needs_longer_for_is_given_that_time() -> None:
    """Planned before w's port was seen, a download gets the swarm's 5 s; at 5 s its port (seen
    since) explains it: it is given the time that port needs instead of being dropped (its bytes
    so far are not thrown away, its source is charged nothing), and past that it is the source's."""
    p, slow = _measured_swarm()
    p.set_rx_peak("w", 100.0)                     # its Stats show it: 1000 B need 10 s there
    before = p.node_stats("S").slowness
    assert p.expire(6.4) == [] and p.expire(6.6) == []
    [(t, until)] = p.extended
    assert t == slow and until == pytest.approx(1.5 + PlannerConfig().timeout_factor * 10.0, abs=0.5)
    st = p.node_stats("S")
    assert (st.failures, st.slowness, st.uploading) == (0, before, 1)
    assert p.expire(until - 0.1) == []
    assert p.expire(until + 0.1) == [slow] and p.extended == []    # past its port's time: the source's
    assert p.node_stats("S").failures == 1
    [again] = p.plan(until + 0.1)
    assert again.timeout_s >= 40.0                # timed for w's port from the start now


def test_a_fast_destinations_timeout_still_charges_the_source() -> None:
    p, slow = _measured_swarm()
    p.finish(slow.id, 1.6, ok=True)
    p.set_dl_slots("w", 0)
    p.add_node("b", dl_slots=1, ul_slots=0)
    p.set_rx_peak("b", 1e9)
    [late] = p.plan(2.0)
    assert late.dest == "b"
    assert p.expire(2.0 + late.timeout_s + 0.1) == [late] and p.extended == []
    assert p.node_stats("S").failures == 1


def test_a_download_its_destinations_port_held_back_is_no_slowness_of_its_source() -> None:
    p, slow = _measured_swarm()
    p.set_rx_peak("w", 250.0)
    before = p.node_stats("S").slowness
    p.finish(slow.id, 1.5 + 4.0, ok=True)         # 1000 B in 4 s: the port's pace, 400 times the swarm's
    assert p.node_stats("S").slowness == pytest.approx(before, rel=0.01)
    p.set_dl_slots("w", 0)
    p.add_node("b", dl_slots=1, ul_slots=0)       # the swarm's speed is still the sources' own
    [t] = p.plan(7.0)
    assert t.dest == "b" and t.timeout_s == PlannerConfig().min_timeout_s


def test_an_extended_download_is_no_measure_of_its_sources_speed_when_it_ends() -> None:
    """Given more time at its destination's port, a download that ends after its destination's
    other download did (its port's time now shorter than the one it was given) still says
    nothing of its source's speed."""
    p = swarm(4, seed_slots=4)
    p.add_node("a", dl_slots=1, ul_slots=0)
    [first] = p.plan(0.0)
    p.finish(first.id, 0.01, ok=True)             # the swarm's speed: 1000 B in 0.01 s
    p.set_dl_slots("a", 0)
    p.add_node("w", dl_slots=2, ul_slots=0)
    one, two = p.plan(1.5)
    p.set_rx_peak("w", 100.0)
    assert p.expire(6.6) == [] and len(p.extended) == 2
    spb = p._nodes["S"].spb
    p.finish(one.id, 20.0, ok=True)
    p.finish(two.id, 22.0, ok=True)
    assert p._nodes["S"].spb == spb
