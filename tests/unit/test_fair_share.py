"""Max-min fair rates over shared links (fair_share.py), and the planner's rates for its flights."""

from __future__ import annotations

import math
import random

import pytest

from lanscatter.core.fair_share import fair_rates
from lanscatter.core.linkmap import Link, LinkMap
from lanscatter.core.planner import Planner


def test_one_link_split_evenly_and_a_cap_leaves_the_rest_to_others() -> None:
    assert fair_rates([("a", ("L",), None), ("b", ("L",), None)], {"L": 100.0}) == {"a": 50.0, "b": 50.0}
    rates = fair_rates([("a", ("L",), 10.0), ("b", ("L",), None), ("c", ("L",), None)], {"L": 100.0})
    assert rates == {"a": 10.0, "b": 45.0, "c": 45.0}


def test_a_flow_held_down_elsewhere_frees_its_share_of_the_other_link() -> None:
    # b crosses the narrow link N with c: 2 each; a takes what b leaves of the wide link W
    rates = fair_rates([("a", ("W",), None), ("b", ("W", "N"), None), ("c", ("N",), None)],
                       {"W": 10.0, "N": 4.0})
    assert rates == {"a": 8.0, "b": 2.0, "c": 2.0}


def test_unlimited_flows() -> None:
    rates = fair_rates([("a", ("unknown",), None), ("b", ("inf",), None), ("c", (), 7.0)], {"inf": math.inf})
    assert rates == {"a": math.inf, "b": math.inf, "c": 7.0}


@pytest.mark.parametrize("seed", range(20))
def test_random_instances_are_feasible_and_max_min_fair(seed: int) -> None:
    rng = random.Random(seed)
    links = {f"l{i}": rng.uniform(1, 100) for i in range(rng.randint(1, 8))}
    flows = []
    for k in range(rng.randint(1, 25)):
        crossed = tuple(rng.sample(sorted(links), rng.randint(1, min(3, len(links)))))
        flows.append((k, crossed, rng.uniform(0.5, 60) if rng.random() < 0.3 else None))
    rates = fair_rates(flows, links)
    load = dict.fromkeys(links, 0.0)
    for k, crossed, cap in flows:
        assert rates[k] > 0 and (cap is None or rates[k] <= cap + 1e-9)
        for name in crossed:
            load[name] += rates[k]
    for name, used in load.items():
        assert used <= links[name] * (1 + 1e-9)
    # max-min: every flow is at its cap, or crosses a full link where no flow goes faster than it
    for k, crossed, cap in flows:
        at_cap = cap is not None and rates[k] >= cap - 1e-9
        bottleneck = any(load[n] >= links[n] * (1 - 1e-9)
                         and all(rates[j] <= rates[k] + 1e-9 for j, c2, _ in flows if n in c2)
                         for n in crossed)
        assert at_cap or bottleneck, (k, rates[k])


def test_planner_shares_each_port_among_the_transfers_crossing_it() -> None:
    """Origin O (upload 300) feeds a and b; c feeds b too. b's download port (100) is shared by
    its two transfers, a's (200) is a's alone."""
    links = LinkMap(links={"up:O": Link("up:O", 300.0), "down:a": Link("down:a", 200.0),
                           "down:b": Link("down:b", 100.0), "up:c": Link("up:c", 1000.0)})
    p = Planner(links=links, rng=random.Random(1))
    p.set_chunks([("x", 1000), ("y", 1000)])
    p.add_node("O", dl_slots=0, ul_slots=4, seed=True)
    p.set_have("O", ["x", "y"])
    for name in "abc":
        p.add_node(name, dl_slots=2, ul_slots=2)
    p.set_have("c", ["y"])
    transfers = p.plan(0.0)
    rates = p.fair_rates()
    into_b = [t for t in transfers if t.dest == "b"]
    assert len(into_b) == 2 and sum(rates[t.id] for t in into_b) == pytest.approx(100.0)
    from_o = sum(rates[t.id] for t in transfers if t.source == "O")
    assert from_o <= 300.0 + 1e-9
    # a transfer still waiting for its first bytes leaves its share to the others
    waiting = into_b[0]
    assert p.fair_rates({waiting.id})[into_b[1].id] == pytest.approx(100.0)
