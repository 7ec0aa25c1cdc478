"""`lanscatter simulate`: run the real planner on a simulated swarm and print how close to ideal it gets.

The thin shell around `lanscatter.sim.simulator`: parse options into a SimConfig, run (drawing the
chunk matrix live on a terminal, or once at the end), print the summary or one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from lanscatter.core.chunking import auto_chunk_size
from lanscatter.core.errors import ConfigError
from lanscatter.core.sizes import parse_size
from lanscatter.core.swarm_load import chunk_floor
from lanscatter.sim.model import MIB, SimConfig, SimHost, SimTopology, star_topology
from lanscatter.sim.report import matrix, summary
from lanscatter.sim.simulator import Simulation, physical_map

DESCRIPTION = """\
Simulate a swarm on a virtual clock with the real planner: one LAN, a hub site (with the origin)
and branch sites behind WAN links (--sites), or the tree of a site-tree file (--topology); every
site behind a WAN is fed through its relay with cut-through. Deterministic for a given --seed.

Figures printed at the end:
  makespan    virtual seconds until the last host holds every chunk
  ideal       dataset bytes / the narrowest link capacity on the slowest origin->host path
              (ideal multicast: the origin sends each byte once, every host receives at its
              path's bottleneck rate)
  efficiency  ideal / makespan
  per site    p50 / p99 / last completion time of its hosts
  per WAN     bytes carried / dataset bytes (1.00 = each chunk crossed once)
"""


@dataclass(frozen=True, slots=True)
class SimulateOptions:
    config: SimConfig
    topology: Path | None
    chunk_size_given: bool                # else a site tree's chunk size wins over the default
    size: int | None                      # --size: the dataset's bytes (chunks follow from it)
    draw: bool
    live: bool
    as_json: bool
    rows: int
    speed: float | None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("simulate", help="simulate a swarm with the real swarm session and planner",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=30, help="peers, spread over the sites (default 30)")
    p.add_argument("--chunks", type=int, default=200, help="chunks in the dataset (default 200)")
    p.add_argument("--size", type=parse_size, metavar="SIZE", default=None,
                   help="the dataset's size instead of --chunks (e.g. 6.25GiB): cut at the chunk size "
                        "the engine picks for it by default (`chunk_size: auto`), unless --chunk-mib "
                        "or the site tree's chunk_size sets one")
    p.add_argument("--chunk-mib", type=float, default=None,
                   help="chunk size in MiB (default 16, or the site tree's chunk_size; with --size the "
                        "engine's choice for that size)")
    p.add_argument("--sites", type=int, default=1, help="1 = one LAN; N = hub + N-1 branch sites (default 1)")
    p.add_argument("--topology", metavar="FILE", type=Path, default=None,
                   help="simulate this site tree (site-tree.yaml) instead of --nodes/--sites/--wan-mbps; "
                        "each host's port is its site's `lan` speed narrowed by its own limits")
    p.add_argument("--host-mbps", type=float, default=1000.0,
                   help="each host's port, up and down (default 1000; not with --topology)")
    p.add_argument("--wan-mbps", default="100",
                   help="WAN link speed per branch, comma-separated and cycled (default 100)")
    p.add_argument("--switch-mbps", type=float, default=None,
                   help="a capacity each site's transfers share (its switch fabric; default none: "
                        "only the ports limit)")
    p.add_argument("--slow-fraction", type=float, default=0.0, help="share of peers with a slow uplink")
    p.add_argument("--slowdown", type=float, default=20.0,
                   help="how many times slower they upload (default 20)")
    p.add_argument("--fail-rate", type=float, default=0.0, help="share of transfers that break midway")
    p.add_argument("--churn", type=float, default=0.0, help="share of peers that leave once and rejoin")
    p.add_argument("--dl-slots", type=int, default=2, help="download slots per peer (default 2)")
    p.add_argument("--ul-slots", type=int, default=2, help="upload slots per node (default 2)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--no-release", action="store_true",
                   help="peers never say Ending, so a slot is held to its transfer's end (the engine's "
                        "peers, and the simulated ones by default, release it 0.1 s before inside a site, "
                        "0.3 s over a WAN link)")
    p.add_argument("--arrange-ms", type=float, default=3.0,
                   help="milliseconds the hosts take to arrange a transfer (plan, messages, request) "
                        "on top of the WAN delays it crosses: what release hides (default 3)")
    p.add_argument("--master-us", type=float, default=0.0,
                   help="microseconds of its master's CPU each transfer costs (messages, planning, "
                        "sharing), served one after another, so a site asking more transfers a second "
                        "than its master gives waits for it (default 0: a free master; "
                        "benchmarks/master_cpu.py measures it, about 300 at 200 hosts on 10 Gbit/s ports)")
    p.add_argument("--no-draw", action="store_true", help="draw the chunk matrix once at the end only")
    p.add_argument("--quiet", action="store_true", help="no chunk matrix at all")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object, nothing else")
    p.add_argument("--rows", type=int, default=40, help="rows drawn per site (default 40)")
    p.add_argument("--speed", type=float, default=None,
                   help="live drawing pace: virtual seconds per wall second "
                        "(default: the ideal time in ~8 s)")
    p.set_defaults(func=run)


def _mbps(value: float) -> float:
    return value * 1e6 / 8


def options(args: argparse.Namespace) -> SimulateOptions:
    try:
        wan = tuple(_mbps(float(x)) for x in str(args.wan_mbps).split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--wan-mbps {args.wan_mbps!r} is not a list of numbers",
                          "give Mbit/s per branch, e.g. --wan-mbps 100,50") from None
    checks = [
        (args.nodes >= 1, "--nodes must be at least 1"),
        (args.chunks >= 0, "--chunks must not be negative"),
        (args.chunk_mib is None or args.chunk_mib > 0, "--chunk-mib must be positive"),
        (args.sites >= 1, "--sites must be at least 1"),
        (args.host_mbps > 0 and all(w > 0 for w in wan) and wan, "link speeds must be positive"),
        (args.switch_mbps is None or args.switch_mbps > 0, "--switch-mbps must be positive"),
        (0.0 <= args.slow_fraction <= 1.0, "--slow-fraction must be between 0 and 1"),
        (args.slowdown >= 1.0, "--slowdown must be at least 1"),
        (0.0 <= args.fail_rate < 1.0, "--fail-rate must be at least 0 and below 1"),
        (0.0 <= args.churn <= 1.0, "--churn must be between 0 and 1"),
        (args.dl_slots >= 1 and args.ul_slots >= 1, "slots must be at least 1"),
        (0.0 <= args.master_us < 1e6, "--master-us must be at least 0 and below a second"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message, "see `lanscatter simulate --help`")
    config = SimConfig(
        nodes=args.nodes, chunks=args.chunks, chunk_size=max(1, round((args.chunk_mib or 16.0) * MIB)),
        sites=args.sites,
        host_rate=_mbps(args.host_mbps), wan_rates=wan,
        switch_rate=_mbps(args.switch_mbps) if args.switch_mbps else None,
        slow_fraction=args.slow_fraction, slowdown=args.slowdown, fail_rate=args.fail_rate, churn=args.churn,
        seed=args.seed, dl_slots=args.dl_slots, ul_slots=args.ul_slots, release=not args.no_release,
        arrange_s=args.arrange_ms / 1000, master_transfer_s=args.master_us / 1e6,
    )
    draw = not args.quiet and not args.json
    return SimulateOptions(config=config, topology=args.topology, chunk_size_given=args.chunk_mib is not None,
                           size=args.size,
                           draw=draw, live=draw and not args.no_draw and sys.stdout.isatty(),
                           as_json=args.json, rows=args.rows, speed=args.speed)


def run(args: argparse.Namespace) -> int:
    opts = options(args)
    config, topology = opts.config, None
    chosen = opts.chunk_size_given
    if opts.topology is not None:
        topology, chunk_size = site_tree(opts.topology, config.host_rate)
        if not opts.chunk_size_given and chunk_size:     # a tree's `auto` keeps the default
            config = replace(config, chunk_size=chunk_size)
            chosen = True
    if opts.size is not None:
        # As the engine's master picks it: from the size, and large enough for the busiest site.
        floor = chunk_floor(physical_map(topology if topology is not None else star_topology(config)))
        size = config.chunk_size if chosen else auto_chunk_size(opts.size, floor=floor)
        config = replace(config, chunk_size=size, chunks=-(-opts.size // size))
    try:
        sim = Simulation(config, topology)
    except ValueError as exc:
        raise ConfigError(f"{opts.topology}: {exc}", "every site but the origin's needs a gateway") from None
    width = max(16, min(120, shutil.get_terminal_size((100, 40)).columns - 50))
    started = time.monotonic()
    if opts.live:
        _run_live(sim, opts, width)
        result = sim.result()
    else:
        result = sim.run()
    wall = time.monotonic() - started
    if opts.as_json:
        print(json.dumps(result.to_dict()))
    else:
        if opts.draw and not opts.live:          # live: the last frame is on screen already
            print(matrix(sim, width=width, max_rows=opts.rows))
            print()
        if opts.live:
            print()
        print(summary(result))
        simulated = result.makespan if math.isfinite(result.makespan) else sim.now
        print(f"  simulated {simulated:.1f} s in {wall:.2f} s wall")
    return 0 if result.complete else 1


def site_tree(path: Path, host_rate: float) -> tuple[SimTopology, int]:
    """The simulated tree of a site-tree file, and its data set's chunk size."""
    try:
        from lanscatter.topology import derive_plan, load_topology
        from lanscatter.topology.validate import warnings_of
    except ImportError:
        raise ConfigError("this build cannot read site-tree files",
                          "use --nodes/--sites/--wan-mbps instead") from None
    if not path.is_file():
        raise ConfigError(f"{path}: no such file", "give the path of a site-tree.yaml")
    topo = load_topology(path)
    for warning in warnings_of(topo):
        print(warning, file=sys.stderr)
    plan = derive_plan(topo)
    ports = plan.link_map.links

    def port(name: str) -> float:
        link = ports.get(name)
        return link.bytes_per_s if link is not None else host_rate

    # A standby gateway is a peer of its site until its site's first gateway fails.
    hosts = tuple(SimHost(h.name, h.site, "peer" if h.standby else h.role, port(f"up:{h.name}"),
                          port(f"down:{h.name}"), h.slots)
                  for h in plan.hosts)
    links = {name: link for name, link in plan.link_map.links.items()
             if name.startswith(("switch:", "wan:")) and math.isfinite(link.bytes_per_s)}
    return SimTopology(tuple((s.name, s.parent) for s in plan.sites), hosts, links), plan.dataset.chunk_size


def _run_live(sim: Simulation, opts: SimulateOptions, width: int) -> None:
    """Redraw the matrix every frame of virtual time, paced so a run can be watched."""
    ideal = sim.ideal() or 1.0
    speed = opts.speed or ideal / 8
    frame = ideal / 100
    limit = ideal * opts.config.max_ideal_multiple
    wall0 = time.monotonic()
    t = 0.0
    while True:
        finished = sim.run_until(t)
        sys.stdout.write("\x1b[H\x1b[2J" + f"t = {sim.now:8.2f} s (ideal {ideal:.2f} s)\n"
                         + matrix(sim, width=width, max_rows=opts.rows) + "\n")
        sys.stdout.flush()
        if finished or t >= limit:
            return
        t += frame
        delay = t / speed - (time.monotonic() - wall0)
        if delay > 0:
            time.sleep(delay)
