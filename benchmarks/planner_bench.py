"""Planner and simulator figures: LAN efficiency, WAN ratio, planning-round time, fair-rate time,
simulation wall time.

Usage: python benchmarks/planner_bench.py [--quick] [--only lan|wan|round|rates|sim|master]
Figures go to docs/benchmarks.md ("Planner and simulator", "Switched LANs"). Wall/CPU times depend
on the machine and on what else runs on it; efficiency and WAN figures are simulated, deterministic
per seed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from lanscatter.cli.simulate import site_tree
from lanscatter.core.linkmap import Link, LinkMap
from lanscatter.core.planner import Planner
from lanscatter.sim.model import MIB, SimConfig
from lanscatter.sim.simulator import Simulation

TOPOLOGIES = Path(__file__).with_name("topologies")

SEEDS = (1, 2, 3, 4, 5)


def lan(quick: bool) -> None:
    seeds = SEEDS[:2] if quick else SEEDS
    faulty = {"slow_fraction": 1 / 16, "fail_rate": 0.02}
    for label, kw in (("fault-free", {}), ("1/16 slow (20x) + 2% failing", faulty)):
        effs = [Simulation(SimConfig(nodes=30, chunks=200, seed=s, **kw)).run().efficiency for s in seeds]
        print(f"LAN 30 nodes x 200 chunks, {label}: efficiency min {min(effs):.3f} "
              f"median {statistics.median(effs):.3f} max {max(effs):.3f} (seeds {seeds[0]}..{seeds[-1]})")


def wan(quick: bool) -> None:
    for label, kw in (("fault-free", {}), ("2% failing", {"fail_rate": 0.02}),
                      ("2% failing + 1/16 slow", {"fail_rate": 0.02, "slow_fraction": 1 / 16})):
        config = SimConfig(nodes=30, chunks=200, sites=3, wan_rates=(12.5e6, 6.25e6), seed=1, **kw)
        r = Simulation(config).run()
        ratios = " ".join(f"{w}={r.wan_ratio(w):.3f}" for w in r.wan_bytes if w.startswith("wan:hub>"))
        retried = r.failures + r.expired
        print(f"hub + 2 branches (100/50 Mbit/s WAN), {label}: {ratios}; efficiency {r.efficiency:.3f}; "
              f"failed+expired transfers {retried}")


def planning_round(quick: bool) -> None:
    nodes, chunks = (300, 10_000) if quick else (1000, 50_000)
    rng = random.Random(7)
    p = Planner(rng=random.Random(1))
    hashes = [f"{i:016x}" for i in range(chunks)]
    p.set_chunks([(h, 4 << 20) for h in hashes])
    p.add_node("seed", dl_slots=0, ul_slots=4, seed=True)
    p.set_have("seed", hashes)
    t0 = time.perf_counter()
    for i in range(nodes - 1):
        name = f"n{i:04d}"
        p.add_node(name, dl_slots=2, ul_slots=2)
        share = rng.random()
        p.set_have(name, [h for h in hashes if rng.random() < share])
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = p.plan(0.0)
    cold = time.perf_counter() - t0
    rounds = []
    now = 0.0
    for _ in range(300):
        inflight = p.inflight()
        done = inflight[rng.randrange(len(inflight))]
        now += 0.01
        p.finish(done.id, now, ok=True)
        t0 = time.perf_counter()
        p.plan(now)
        rounds.append(time.perf_counter() - t0)
    rounds.sort()
    print(f"planning round, {nodes} nodes x {chunks} chunks (holdings random, 0-100% per node): "
          f"after one finish median {statistics.median(rounds) * 1e3:.2f} ms, "
          f"p99 {rounds[int(len(rounds) * 0.99)] * 1e3:.2f} ms; "
          f"cold round (every slot free, {len(first)} transfers) {cold * 1e3:.0f} ms; setup {setup:.1f} s")


def fair_rates(quick: bool) -> None:
    """What the master spends re-sharing ports: one LAN whose hosts have 100 or 200 Mbit/s ports,
    every slot busy, one transfer ending before each call (as after a report)."""
    nodes, chunks = (300, 2_000) if quick else (1000, 5_000)
    names = [f"n{i:04d}" for i in range(nodes - 1)]
    links = {"up:seed": Link("up:seed", 1.25e9)}
    for i, name in enumerate(names):
        rate = 12.5e6 if i % 2 else 25e6
        links[f"up:{name}"] = Link(f"up:{name}", rate)
        links[f"down:{name}"] = Link(f"down:{name}", rate)
    rng = random.Random(7)
    p = Planner(links=LinkMap(links=links), rng=random.Random(1))
    hashes = [f"{i:016x}" for i in range(chunks)]
    p.set_chunks([(h, 4 << 20) for h in hashes])
    p.add_node("seed", dl_slots=0, ul_slots=8, seed=True)
    p.set_have("seed", hashes)
    for name in names:
        p.add_node(name, dl_slots=2, ul_slots=2)
        share = rng.random()
        p.set_have(name, [h for h in hashes if rng.random() < share])
    p.plan(0.0)
    times = []
    now = 0.0
    for _ in range(100):
        inflight = p.inflight()
        now += 0.01
        p.finish(inflight[rng.randrange(len(inflight))].id, now, ok=True)
        t0 = time.perf_counter()
        p.fair_rates()
        times.append(time.perf_counter() - t0)
        p.plan(now)
    times.sort()
    print(f"fair rates, {nodes} nodes, {len(p.inflight())} transfers in flight over host ports: "
          f"median {statistics.median(times) * 1e3:.2f} ms, p99 {times[int(len(times) * 0.99)] * 1e3:.2f} ms a call")


def sim_scale(quick: bool) -> None:
    nodes, chunks = (300, 1000) if quick else (1000, 5000)
    t0, c0 = time.perf_counter(), time.process_time()
    r = Simulation(SimConfig(nodes=nodes, chunks=chunks, seed=1)).run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    import lanscatter.core.planner
    build = "compiled (mypyc)" if not lanscatter.core.planner.__file__.endswith(".py") else "pure Python"
    print(f"simulation {nodes} nodes x {chunks} chunks, planner {build}: {wall:.1f} s wall, {cpu:.1f} s CPU, "
          f"{r.transfers} transfers ({cpu / r.transfers * 1e6:.1f} us CPU each), "
          f"efficiency {r.efficiency:.3f}")


def master_cpu(quick: bool) -> None:
    """The master's CPU for a big switched site, planning and fair shares only (not messages).

    A whole simulated sync gives its length and its number of transfers. The master plans on every
    report (a transfer ended: one round each) and re-shares the ports after it (max-min fair rates
    over every transfer in flight; the engine shares at most a quarter of its time, SHARE_DUTY, so
    this is what sharing after every report would cost). The cost of one such round is measured
    mid-sync (every slot busy): one transfer finished, a plan, the fair rates; 200 times."""
    chunks = 160 if quick else 640                      # 2.5 GiB / 10 GiB of 16 MiB chunks
    for name in ("floor-500", "cluster-200"):
        topology, _ = site_tree(TOPOLOGIES / f"{name}.yaml", 125e6)
        config = SimConfig(chunks=chunks, chunk_size=16 * MIB)
        full = Simulation(config, topology).run()
        sim = Simulation(config, topology)
        sim.run_until(full.makespan / 2)
        planner, rng, now = sim.swarms[0].planner, random.Random(7), sim.now
        plans, rates = [], []
        for _ in range(200):
            inflight = planner.inflight()
            now += 0.001
            planner.finish(inflight[rng.randrange(len(inflight))].id, now, ok=True)
            t0 = time.process_time()
            planner.plan(now)
            t1 = time.process_time()
            planner.fair_rates()
            plans.append(t1 - t0)
            rates.append(time.process_time() - t1)
        per_s = full.transfers / full.makespan
        plan_ms, rates_ms = statistics.median(plans) * 1e3, statistics.median(rates) * 1e3
        print(f"master CPU, {name} ({len(topology.hosts)} hosts, {chunks} x 16 MiB): sync {full.makespan:.1f} s, "
              f"efficiency {full.efficiency:.3f}, {per_s:.0f} transfers/s; a round after one report "
              f"{plan_ms:.3f} ms, fair rates over {len(planner.inflight())} transfers {rates_ms:.2f} ms: "
              f"planning {per_s * plan_ms / 1e3:.2f} of a core, sharing after every report "
              f"{per_s * rates_ms / 1e3:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a quick look")
    parser.add_argument("--only", choices=("lan", "wan", "round", "rates", "sim", "master"))
    args = parser.parse_args()
    for name, fn in (("lan", lan), ("wan", wan), ("round", planning_round), ("rates", fair_rates),
                     ("sim", sim_scale), ("master", master_cpu)):
        if args.only in (None, name):
            fn(args.quick)


if __name__ == "__main__":
    main()
