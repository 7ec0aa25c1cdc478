"""Measure what the network emulator delivers: WAN throughput, round trips, forwarder CPU.

Builds a hub and two branches (VPN-like links: 40 Mbit/s 20 ms and 20 Mbit/s 40 ms), pushes one TCP
flow down each WAN link at once, pings across one and two WAN hops, and reads the WAN interface
counters. With --capacity it then builds one unshaped-but-delayed link per rate given and pushes a
TCP flow through it, to show how fast the userspace forwarder can go on this machine.

    sudo .venv/bin/python benchmarks/emulator_check.py [--seconds 5] [--capacity 50,200,400]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lanscatter.emulator import probe
from lanscatter.emulator.netns import Emulation, support_problem
from lanscatter.emulator.spec import Host, NetSpec, Site, WanLink

MBIT = 1e6 / 8
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def hub_and_branches(tag: str) -> NetSpec:
    return NetSpec(
        sites=(
            Site("hq", 1000 * MBIT, (Host("origin"), Host("h1"))),
            Site("b1", 1000 * MBIT, (Host("b1-gw"), Host("b1-pc")), parent="hq"),
            Site("b2", 1000 * MBIT, (Host("b2-gw"), Host("b2-pc")), parent="hq"),
        ),
        wan_links=(
            WanLink("hq", "b1", 40 * MBIT, 40 * MBIT, delay_s=0.020),
            WanLink("hq", "b2", 20 * MBIT, 20 * MBIT, delay_s=0.040),
        ),
        tag=tag,
    )


def one_link(tag: str, mbit: float) -> NetSpec:
    return NetSpec(
        sites=(Site("a", 10_000 * MBIT, (Host("src"),)), Site("b", 10_000 * MBIT, (Host("dst"),), parent="a")),
        wan_links=(WanLink("a", "b", mbit * MBIT, mbit * MBIT, delay_s=0.010),),
        tag=tag,
    )


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS      # utime + stime


@contextmanager
def forwarder_cpu(emu: Emulation) -> Iterator[dict[str, float]]:
    """Yields a dict filled, on exit, with each forwarder's CPU share (1.0 = one core)."""
    pids = emu.forwarder_pids()
    shares: dict[str, float] = {}
    start, t0 = {n: cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
    yield shares
    elapsed = time.monotonic() - t0
    shares.update({n: (cpu_seconds(p) - start[n]) / elapsed for n, p in pids.items()})


def push(emu: Emulation, flows: dict[str, tuple[str, str]], seconds: float) -> dict[str, dict]:
    """Run TCP flows (name -> (src, dst)) at once; each sink's result by flow name."""
    sinks = {k: probe.start(emu, dst, "tcp-sink", "--bind", emu.address(dst), "--seconds", str(seconds + 10))
             for k, (_s, dst) in flows.items()}
    ports = {k: probe.wait_ready(p) for k, p in sinks.items()}
    senders = [probe.start(emu, src, "tcp-send", "--to", f"{emu.address(dst)}:{ports[k]}",
                           "--seconds", str(seconds)) for k, (src, dst) in flows.items()]
    for s in senders:
        probe.finish(s, timeout=seconds + 15)
    return {k: probe.finish(p, timeout=15) for k, p in sinks.items()}


def rtt(emu: Emulation, src: str, dst: str, count: int = 100) -> list[float]:
    echo = probe.start(emu, dst, "udp-echo", "--bind", emu.address(dst), "--seconds", "30")
    port = probe.wait_ready(echo)
    ping = probe.start(emu, src, "udp-ping", "--to", f"{emu.address(dst)}:{port}",
                       "--count", str(count), "--interval", "0.01")
    return probe.finish(ping, timeout=30)["rtt_ms"]


def check_tree(seconds: float, mechanism: str) -> None:
    with Emulation(hub_and_branches("bench"), delay_mechanism=mechanism) as emu:  # type: ignore[arg-type]
        print(f"WAN delay/loss mechanism: {emu.delay_mechanism}")
        before = emu.wan_counters()
        with forwarder_cpu(emu) as cpu:
            got = push(emu, {"hq<->b1": ("origin", "b1-gw"), "hq<->b2": ("h1", "b2-gw")}, seconds)
        after = emu.wan_counters()
        print(f"\none TCP flow down each WAN link at once, {seconds:.0f} s")
        print(f"{'link':10} {'cap':>9} {'goodput':>9} {'counted/delivered':>18} {'forwarder CPU':>14}")
        for link in emu.spec.wan_links:
            good = probe.throughput_bytes_per_s(got[link.name]["series"], skip_s=1.0)
            # bytes the parent's WAN interface counted per payload byte the sink received
            counted = (after[link.name].tx_bytes - before[link.name].tx_bytes) / got[link.name]["bytes"]
            share = cpu.get(link.name)
            print(f"{link.name:10} {link.down_bytes_per_s * 8 / 1e6:7.1f}Mb {good * 8 / 1e6:7.1f}Mb "
                  f"{counted:18.4f} {'' if share is None else f'{share:13.1%}'}")
        print("\nround trips (UDP, 100 pings, ms)      min   median     max   expected")
        for src, dst, expect in (("b1-pc", "origin", 40), ("b2-pc", "origin", 80), ("b1-pc", "b2-pc", 120),
                                 ("b1-pc", "b1-gw", 0)):
            r = rtt(emu, src, dst)
            print(f"  {src:>6} -> {dst:<7} ({len(r):3d} replies)  {min(r):7.1f} {statistics.median(r):8.1f}"
                  f" {max(r):7.1f} {expect:10d}")


def check_capacity(rates: list[float], seconds: float, mechanism: str) -> None:
    print("\nforwarder capacity: one TCP flow through one link (10 ms one way), capped at the rate")
    print(f"{'cap':>9} {'goodput':>9} {'forwarder CPU':>14}")
    for mbit in rates:
        with Emulation(one_link("cap", mbit), delay_mechanism=mechanism) as emu:  # type: ignore[arg-type]
            with forwarder_cpu(emu) as cpu:
                got = push(emu, {"a<->b": ("src", "dst")}, seconds)
            good = probe.throughput_bytes_per_s(got["a<->b"]["series"], skip_s=1.0)
            share = cpu.get("a<->b")
            print(f"{mbit:7.0f}Mb {good * 8 / 1e6:7.1f}Mb {'' if share is None else f'{share:13.1%}'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--capacity", default="", help="comma-separated link rates in Mbit/s to try")
    parser.add_argument("--mechanism", default="auto", choices=("auto", "netem", "forwarder"))
    args = parser.parse_args()
    problem = support_problem()
    if problem:
        print(f"cannot emulate here: {problem}", file=sys.stderr)
        return 1
    check_tree(args.seconds, args.mechanism)
    if args.capacity:
        check_capacity([float(r) for r in args.capacity.split(",")], args.seconds, args.mechanism)
    return 0


if __name__ == "__main__":
    sys.exit(main())
