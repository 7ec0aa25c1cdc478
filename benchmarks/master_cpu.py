"""The master's whole CPU for a 200-host site on 10 Gbit/s ports: planning, fair shares, status
and every control message, measured on a real master driven by simulated peers.

Usage: python benchmarks/master_cpu.py [--speed 0.1] [--chunk-mib 16] [--seconds 20] [--drivers 2]
                                       [--no-feed] [--profile FILE] [--topology TREE]

With --topology, the origin's site of another tree (its origin host named `origin`), the full
site's transfer rate taken as its ports' at the efficiency of the default tree's figure.

The master is the engine's swarm (roles/swarm.py: its websocket server on 127.0.0.1, the swarm
session, the planner with the site's link map from benchmarks/topologies/cluster-200.yaml) in a
process of its own, with a synthetic 10 GiB generation (640 chunks of 16 MiB) held whole by its
seed, and, unless --no-feed, a monitor's status feed (a status document and its diff every 0.25 s,
as /status/ws does). It has no chunk server: nobody fetches a byte.

The peers are simulated in --drivers processes of their own: each joins over the real protocol
(the secret's handshake, sealed frames), sends its whole (empty) Have, and answers every Download
as the engine's downloader would, without the bytes: Receiving after a set-up time (none for a
transfer too short to measure at full speed), Ending when half of a short transfer came, then a
Report at its end (which is its Have too); Stats every second. A transfer takes its size over the rate it was started at (its fair share, else its port).

Two Python processes cannot drive the message rate of a whole 10 Gbit/s site, so the site runs
slowed down: every port at `--speed` times 10 Gbit/s (the master's link map too), the chunk size
unchanged. Over the window the master's CPU time (user + system, /proc) is split: sharing (fair
rates) and the rest of the planning rounds, timed inside it (thread time); the status feed; and
the rest, the messages, as a cost per frame. The full site's figure (14,465 transfers/s at 16 MiB,
planner_bench.py --only master; a quarter of that at 64 MiB) counts the frames that come with each
transfer at that rate, the Rates and Stats frames at the rate seen here (Rates follow the shares,
which sharing's duty bounds: as many transfers are in flight as at full speed), planning per
transfer as here (rounds take more transfers each on a busier master: this errs high), sharing at
its bound, and the feed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import WSMsgType, web

from lanscatter import __version__
from lanscatter.cli.simulate import site_tree
from lanscatter.core import protocol as p
from lanscatter.core.auth import Auth
from lanscatter.core.ending_lead import judged_at_told_rate
from lanscatter.core.handshake import PeerHandshake
from lanscatter.core.linkmap import Link, LinkMap
from lanscatter.core.session_rounds import SHARE_DUTY
from lanscatter.core.status import to_json
from lanscatter.core.status_feed import FeedEncoder
from lanscatter.core.swarm_load import busiest_site
from lanscatter.roles.swarm import Swarm
from lanscatter.sim.model import MIB, SimConfig
from lanscatter.sim.simulator import Simulation
from lanscatter.topology import derive_plan, load_topology

T = TypeVar("T")
TOPOLOGY = Path(__file__).with_name("topologies") / "cluster-200.yaml"
SECRET = "benchmark-only-secret"
DATA = 10 * 1024 * MIB       # the generation: 10 GiB
SITE_RATE = 14_465          # transfers/s of the whole site at 16 MiB chunks (planner_bench.py --only master)
SETUP_S = 0.001             # from a Download to its first bytes, at full speed
FEED_TICK_S = 0.25          # as net/node_http.py
SPENT_EVERY_S = 0.05        # how often the master writes where its CPU went
SHARE_CAP = round(1 / (1 + SHARE_DUTY), 2)   # the share of its time the master spends sharing at most
STATS_S = 1.0               # as roles/master_link.py
MASTER_SLOTS = 3            # `lanscatter master --slots` default
SATURATED = 0.9             # of a core: a master this busy has no idle time left to show


def _site(speed: float, tree: Path = TOPOLOGY) -> tuple[LinkMap, list[str]]:
    """The site's link map with every capacity times `speed`, and its peers' names."""
    plan = derive_plan(load_topology(tree))
    lm = plan.link_map
    links = {n: Link(n, link.bytes_per_s * speed, link.latency_s) for n, link in lm.links.items()}
    peers = [h.name for h in plan.hosts if h.role == "peer"]
    return LinkMap(links=links, node_site=lm.node_site, site_parent=lm.site_parent), peers


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the master ---------------------------------------------------------------------------------
async def serve(speed: float, chunk_mib: int, feed: bool, spent_file: Path, tree: Path) -> None:
    link_map, _ = _site(speed, tree)
    topology, _ = site_tree(tree, 125e6)
    config = SimConfig(chunks=DATA // (chunk_mib * MIB), chunk_size=chunk_mib * MIB)
    manifest = Simulation(config, topology).manifest
    swarm = Swarm(name="origin", auth=Auth(SECRET), seed_slots=MASTER_SLOTS, link_map=link_map,
                  site=link_map.site_of("origin"), role="master")
    # Where the CPU goes (thread time, as running totals in a file the measurement reads at its
    # window's ends): sharing, the rest of a tick (planning), and the status feed, which costs per
    # second rather than per transfer; the rest is the messages. (Timing each message would cost
    # a good part of what it measures.)
    spent = dict.fromkeys(("share", "tick", "feed", "share calls", "tick calls"), 0.0)
    session, planner = swarm.session, swarm.session.planner
    session.tick = _timed(session.tick, spent, "tick")                      # type: ignore[method-assign]
    planner.fair_rates = _timed(planner.fair_rates, spent, "share")         # type: ignore[method-assign]
    app = web.Application()
    app.router.add_get("/ws", swarm.handle_ws)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    swarm.start()
    swarm.set_manifest(manifest)
    print(port, flush=True)
    encoder = FeedEncoder()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    fed = time.monotonic()
    while not stop.is_set():
        try:
            async with asyncio.timeout(SPENT_EVERY_S):
                await stop.wait()
        except TimeoutError:
            if feed and time.monotonic() - fed >= FEED_TICK_S:
                fed = time.monotonic()
                began = time.thread_time()
                message = encoder.message(to_json(swarm.status()))
                if message is not None:
                    json.dumps(message)
                spent["feed"] += time.thread_time() - began
            spent_file.with_suffix(".new").write_text(json.dumps(spent))
            spent_file.with_suffix(".new").replace(spent_file)     # (read whole or not at all)
    await swarm.stop()
    await runner.cleanup()


def _timed(fn: Callable[..., T], spent: dict[str, float], key: str) -> Callable[..., T]:
    def timed(*args: Any, **kwargs: Any) -> T:
        began = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] += time.thread_time() - began
            spent[f"{key} calls"] += 1
    return timed


# ---- the simulated peers ------------------------------------------------------------------------
class FakePeer:
    """One peer: joins, answers Downloads with the messages a real download sends, holds nothing."""

    def __init__(self, name: str, port_rate: float, speed: float, counts: dict[str, int]) -> None:
        self.name = name
        self.port_rate = port_rate
        self.speed = speed
        self.counts = counts
        self.generation = ""
        self.out: asyncio.Queue[p.Message] = asyncio.Queue()

    async def run(self, session: aiohttp.ClientSession, url: str, auth: Auth) -> None:
        loop = asyncio.get_running_loop()
        async with session.ws_connect(url, max_msg_size=p.MAX_MANIFEST_FRAME) as ws:
            hello = p.Hello(name=self.name, protocol=p.PROTOCOL_VERSION, min_protocol=p.MIN_PROTOCOL_VERSION,
                            software=__version__, nonce=secrets.token_hex(16), addr="127.0.0.1",
                            port=10565, dl_slots=2, ul_slots=2)
            hs = PeerHandshake(auth, hello)
            await ws.send_bytes(hs.receive_challenge((await ws.receive()).data))
            hs.receive_welcome((await ws.receive()).data)
            channel = hs.channel
            assert channel is not None
            writer = asyncio.create_task(self._write(ws, channel))
            stats = asyncio.create_task(self._stats())
            try:
                async for msg in ws:
                    if msg.type != WSMsgType.BINARY:
                        break
                    m = p.decode(channel.open(msg.data, "master"), "master", p.MAX_MANIFEST_FRAME)
                    self.counts["in"] += 1
                    if isinstance(m, p.Rates):
                        self.counts["rates"] += 1
                    elif isinstance(m, p.ManifestMsg):
                        self.generation = m.manifest["generation"]
                        self.out.put_nowait(p.Have(self.generation, [], replace=True))
                    elif isinstance(m, p.Download):
                        self._download(loop, m)
            finally:
                writer.cancel()
                stats.cancel()

    def _download(self, loop: asyncio.AbstractEventLoop, d: p.Download) -> None:
        """Receiving after the set-up, Ending once half came (a transfer too short to measure
        its rate at full speed, as the engine's downloader: it says no Receiving then,
        protocol.ENDING_RECEIVES), the Report at the end."""
        rate = min(d.rate_cap or self.port_rate, self.port_rate)
        setup = SETUP_S / self.speed
        took = d.size / rate
        if not judged_at_told_rate(d.size, rate / self.speed):
            loop.call_later(setup, self.out.put_nowait, p.Receiving(d.transfer))
        loop.call_later(setup + took / 2, self.out.put_nowait, p.Ending(d.transfer, round(took / 2, 3)))
        loop.call_later(setup + took, self._done, d, setup + took)

    def _done(self, d: p.Download, seconds: float) -> None:
        self.out.put_nowait(p.Report(d.transfer, True, round(seconds, 3)))   # (its Have too: REPORT_HOLDS)
        self.counts["reports"] += 1

    async def _stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_S)
            self.out.put_nowait(p.Stats(0, 0, 0, False))
            self.counts["stats"] += 1

    async def _write(self, ws: aiohttp.ClientWebSocketResponse, channel: object) -> None:
        seal = channel.seal  # type: ignore[attr-defined]
        while True:
            msg = await self.out.get()
            await ws.send_bytes(seal(p.encode(msg).encode()))
            self.counts["out"] += 1


async def drive(port: int, names: list[str], speed: float, start: float, seconds: float, tree: Path) -> None:
    """Join `names`, then count reports from `start` (monotonic) for `seconds`; print the counts."""
    link_map, _ = _site(speed, tree)
    auth = Auth(SECRET)
    counts = dict.fromkeys(("in", "out", "rates", "stats", "reports"), 0)
    peers = [FakePeer(n, link_map.links[f"down:{n}"].bytes_per_s, speed, counts) for n in names]
    url = f"http://127.0.0.1:{port}/ws"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [asyncio.create_task(peer.run(session, url, auth)) for peer in peers]
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        first, cpu0 = dict(counts), time.process_time()
        await asyncio.sleep(seconds)
        last, cpu1 = dict(counts), time.process_time()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({k: last[k] - first[k] for k in last} | {"cpu": cpu1 - cpu0}), flush=True)


# ---- the measurement ----------------------------------------------------------------------------
def measure(args: argparse.Namespace) -> None:
    me = [sys.executable, __file__]
    spent_file = Path(tempfile.mkdtemp(prefix="master-cpu-")) / "spent"
    tree = ["--topology", str(args.topology)]
    serve_cmd = [*me, "--serve", *tree, "--speed", str(args.speed), "--chunk-mib", str(args.chunk_mib),
                 "--spent-file", str(spent_file)] \
        + ([] if args.feed else ["--no-feed"])
    if args.profile:
        serve_cmd += ["--profile", args.profile]
    master = subprocess.Popen(serve_cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert master.stdout is not None
        port = int(master.stdout.readline())
        _, peers = _site(args.speed, args.topology)
        start = time.monotonic() + args.warmup
        groups = [peers[k::args.drivers] for k in range(args.drivers)]
        drivers = [subprocess.Popen([*me, "--drive", str(port), *tree, "--speed", str(args.speed), "--start", str(start),
                                     "--seconds", str(args.seconds), ",".join(g)], stdout=subprocess.PIPE, text=True)
                   for g in groups]
        time.sleep(max(0.0, start - time.monotonic()))
        cpu0, spent0 = _cpu_s(master.pid), json.loads(spent_file.read_text())
        time.sleep(args.seconds)
        cpu1, spent1 = _cpu_s(master.pid), json.loads(spent_file.read_text())
        results = [json.loads(d.communicate(timeout=60)[0]) for d in drivers]
    finally:
        master.send_signal(signal.SIGTERM)
        master.wait(timeout=30)
        shutil.rmtree(spent_file.parent)
    n, s = sum(r["reports"] for r in results), args.seconds
    frames = {k: sum(r[k] for r in results) for k in ("in", "out", "rates", "stats")}
    cpu = cpu1 - cpu0
    part = {k: spent1[k] - spent0[k] for k in spent1}
    share, plan, feed = part["share"], part["tick"] - part["share"], part["feed"]
    messages = cpu - part["tick"] - feed
    per_frame = messages / (frames["in"] + frames["out"])
    # Frames that come with each transfer (Download; Receiving unless short, Ending, Report), and those that come
    # so many a second whatever the rate: Stats, and Rates, sent after each share, as many as
    # here a share, at most as many shares a second as sharing's duty allows (as many transfers
    # in flight as at full speed: a share takes as long).
    each = (frames["in"] + frames["out"] - frames["rates"] - frames["stats"]) / n
    shares_s = SHARE_CAP / (share / part["share calls"])
    per_s = frames["stats"] / s + frames["rates"] / part["share calls"] * shares_s
    # The tree's ports at the share of theirs that the default tree's site reaches (SITE_RATE).
    ports, default = busiest_site(_site(1.0, args.topology)[0]), busiest_site(_site(1.0)[0])
    assert ports is not None and default is not None, "the trees give their ports' speeds"
    site_rate = ports.transfers_s(args.chunk_mib * MIB) * SITE_RATE / default.transfers_s(16 * MIB)
    full = per_frame * (each * site_rate + per_s) + plan / n * site_rate + SHARE_CAP + feed / s
    print(f"master CPU, {args.topology.stem} slowed to {args.speed:g} ({args.chunk_mib} MiB chunks): "
          f"{n / s:.0f} transfers/s, master {cpu / s:.2f} of a core. Messages: {each:.2f} frames a transfer, "
          f"{frames['stats'] / s:.0f} Stats and {frames['rates'] / s:.0f} Rates a second "
          f"({frames['rates'] / part['share calls']:.0f} a fair-rate computation; at most {per_s:.0f} frames a second so), "
          f"{per_frame * 1e6:.1f} us each (websocket, sealing, JSON, the session); planning {plan / n * 1e6:.0f} us "
          f"a transfer ({part['tick calls'] / n:.2f} rounds a transfer); sharing {share / s:.3f} of a core "
          f"({part['share calls'] / s:.0f} fair-rate computations a second, {share / part['share calls'] * 1e3:.2f} "
          f"ms each); status feed {feed / s:.3f} of a core. At the full site's {site_rate:,.0f} transfers/s: "
          f"messages {per_frame * (each * site_rate + per_s):.2f} + planning {plan / n * site_rate:.2f} "
          f"+ sharing at most {SHARE_CAP} + feed {feed / s:.2f} = {full:.2f} cores "
          f"(drivers {sum(r['cpu'] for r in results) / s:.2f} cores)")
    if cpu / s >= SATURATED:
        # A master with no idle time plans in fewer, larger rounds and shares as often as its duty
        # lets it, whatever the speed: per transfer it then costs what a busy master costs, and the
        # projection above depends on the speed it was measured at (docs/benchmarks.md).
        print(f"the master was saturated ({cpu / s:.2f} of a core): it handled {n / s:.0f} transfers a second "
              f"on one core, {site_rate / (n / s):.1f} times fewer than the full site asks; the projection "
              "above depends on --speed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", type=Path, default=TOPOLOGY,
                        help="the site tree whose origin site is driven (default: cluster-200.yaml)")
    parser.add_argument("--speed", type=float, default=0.1, help="ports at this share of their speed")
    parser.add_argument("--chunk-mib", type=int, default=16, help="chunk size (MiB) of the 10 GiB generation")
    parser.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    parser.add_argument("--warmup", type=float, default=5.0, help="joins and the first transfers")
    parser.add_argument("--drivers", type=int, default=2, help="processes of simulated peers")
    parser.add_argument("--no-feed", dest="feed", action="store_false", help="no status feed")
    parser.add_argument("--profile", help="write the master's cProfile statistics here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--drive", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--spent-file", help=argparse.SUPPRESS)
    parser.add_argument("names", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        profile = cProfile.Profile() if args.profile else None
        if profile:
            profile.enable()
        asyncio.run(serve(args.speed, args.chunk_mib, args.feed, Path(args.spent_file), args.topology))
        if profile:
            profile.disable()
            profile.dump_stats(args.profile)
    elif args.drive:
        asyncio.run(drive(args.drive, args.names.split(","), args.speed, args.start, args.seconds, args.topology))
    else:
        measure(args)


if __name__ == "__main__":
    main()
