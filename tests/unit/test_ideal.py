"""The ideal time every report measures against: hand-computed bounds, and efficiency never above 1."""

from __future__ import annotations

import math

import pytest

from lanscatter.core.ideal import Efficiency, efficiency, ideal_time
from lanscatter.core.linkmap import Link, LinkMap
from lanscatter.sim.model import SimConfig
from lanscatter.sim.simulator import Simulation


def _map(ports: dict[str, tuple[float, float]], shared: dict[str, float], node_site: dict[str, str],
         parent: dict[str, str | None]) -> LinkMap:
    links = {f"up:{h}": Link(f"up:{h}", up) for h, (up, _) in ports.items()}
    links.update({f"down:{h}": Link(f"down:{h}", down) for h, (_, down) in ports.items()})
    links.update({name: Link(name, cap) for name, cap in shared.items()})
    return LinkMap(links=links, node_site=node_site, site_parent=parent)


def _lan(ports: dict[str, tuple[float, float]], shared: dict[str, float] | None = None) -> LinkMap:
    return _map(ports, shared or {}, dict.fromkeys(ports, "hq"), {"hq": None})


def test_one_lan_is_bound_by_a_port() -> None:
    # 3 receivers at 100 B/s each way: a copy through one port is 10 s; the 4 upload ports could
    # carry the 3 copies in 7.5 s
    ideal = ideal_time(_lan(dict.fromkeys("oabc", (100.0, 100.0))), "o", 1000.0)
    assert (ideal.seconds, ideal.limit, ideal.bytes_per_s) == (10.0, "up:o", 100.0)


def test_a_shared_switch_carries_every_receivers_copy() -> None:
    ideal = ideal_time(_lan(dict.fromkeys("oabc", (100.0, 100.0)), {"switch:hq": 250.0}), "o", 1000.0)
    assert (ideal.seconds, ideal.limit) == (12.0, "switch:hq")          # 3 x 1000 B / 250 B/s


def test_a_site_is_served_by_its_own_uploads() -> None:
    ports = {"o": (100.0, 1000.0), "a": (10.0, 1000.0), "b": (10.0, 1000.0)}
    ideal = ideal_time(_lan(ports), "o", 1000.0)
    assert ideal.limit == "uploads:hq"
    assert ideal.seconds == pytest.approx(2 * 1000 / 120)              # 2 copies over 120 B/s of uploads


def test_a_tree_of_sites() -> None:
    # hq: o, a; branch br behind a 20 B/s WAN: its relay g and x, y on a 30 B/s switch.
    ports = dict.fromkeys(("o", "a", "g", "x", "y"), (100.0, 100.0))
    links = _map(ports, {"wan:hq>br": 20.0, "wan:br>hq": 20.0, "switch:br": 30.0},
                 {"o": "hq", "a": "hq", "g": "br", "x": "br", "y": "br"}, {"hq": None, "br": "hq"})
    ideal = ideal_time(links, "o", 1000.0)
    # the WAN alone: 1000 / 20 = 50 s; br's switch carries the copies of g (from hq), x and y:
    # 3000 / 30 = 100 s; hq's uploads serve a and the relay g: 2000 / 200 = 10 s; br's uploads
    # serve x and y: 2000 / 300
    assert ideal.limit == "switch:br" and ideal.seconds == pytest.approx(100.0)
    without_switch = _map(ports, {"wan:hq>br": 20.0, "wan:br>hq": 20.0},
                          {"o": "hq", "a": "hq", "g": "br", "x": "br", "y": "br"}, {"hq": None, "br": "hq"})
    assert ideal_time(without_switch, "o", 1000.0).seconds == pytest.approx(50.0)
    assert ideal_time(without_switch, "o", 1000.0).limit == "wan:hq>br"


def test_nothing_to_send_or_nothing_limiting() -> None:
    assert ideal_time(_lan(dict.fromkeys("oa", (100.0, 100.0))), "o", 0.0).seconds == 0.0
    free = ideal_time(LinkMap(node_site={"o": "hq", "a": "hq"}, site_parent={"hq": None}), "o", 1000.0)
    assert (free.seconds, free.limit, free.bytes_per_s) == (0.0, "", math.inf)


def test_efficiency_is_clamped_and_flagged_when_compression_beats_the_ideal() -> None:
    assert efficiency(10.0, 20.0) == Efficiency(0.5, False)
    faster = efficiency(10.0, 8.0)          # LZ4 carried fewer bytes than a whole copy
    assert faster.value == 1.0 and faster.clamped
    assert efficiency(10.0, math.inf).value == 0.0


@pytest.mark.parametrize("config", [
    SimConfig(nodes=12, chunks=40, seed=2),
    SimConfig(nodes=12, chunks=40, switch_rate=200e6 / 8, seed=3),
    SimConfig(nodes=12, chunks=40, sites=3, wan_rates=(12.5e6, 5e6), seed=4),
])
def test_simulated_runs_never_beat_the_ideal(config: SimConfig) -> None:
    r = Simulation(config).run()
    assert r.complete and r.makespan >= r.ideal > 0 and 0 < r.efficiency <= 1
