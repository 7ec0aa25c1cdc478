"""Run the baselines (plain HTTP fan-out, BitTorrent) on an emulated network and print their times.

    sudo .venv/bin/python benchmarks/baseline_check.py --topology lan --mb 100
    sudo .venv/bin/python benchmarks/baseline_check.py --topology branches --mb 50

`lan`: one LAN, origin + 8 hosts, host links 100-200 Mbit/s. `branches`: a hub (origin + 2 hosts)
and two branches of 3 hosts each behind 20 and 40 Mbit/s VPN-like links (30 and 20 ms one way).
Prints, per baseline, when the last host of each site was done and the TCP payload each WAN link
carried per dataset (from the interface counters).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

# the baselines live beside this script, not in the installed package
sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines import bittorrent, http_fanout

from lanscatter.emulator.netns import Emulation, support_problem
from lanscatter.emulator.spec import Host, NetSpec, Site, WanLink

MBIT = 1e6 / 8


def one_lan() -> NetSpec:
    hosts = tuple(Host(f"h{i}", up_bytes_per_s=(100 + 100 * (i % 2)) * MBIT,
                       down_bytes_per_s=(100 + 100 * (i % 2)) * MBIT) for i in range(1, 9))
    return NetSpec(sites=(Site("lan", 200 * MBIT, (Host("origin"), *hosts)),), tag="bl")


def branches() -> NetSpec:
    return NetSpec(
        sites=(
            Site("hq", 1000 * MBIT, (Host("origin"), Host("hq1"), Host("hq2"))),
            Site("b1", 1000 * MBIT, (Host("b1a"), Host("b1b"), Host("b1c")), parent="hq"),
            Site("b2", 1000 * MBIT, (Host("b2a"), Host("b2b"), Host("b2c")), parent="hq"),
        ),
        wan_links=(
            WanLink("hq", "b1", 40 * MBIT, 40 * MBIT, delay_s=0.020),
            WanLink("hq", "b2", 20 * MBIT, 20 * MBIT, delay_s=0.030),
        ),
        tag="bb",
    )


def make_dataset(folder: Path, megabytes: int) -> int:
    """Random (incompressible) files: a few big ones and some small ones; returns the total bytes."""
    folder.mkdir(parents=True)
    sizes = [megabytes * (1 << 20) * share // 100 for share in (40, 25, 15, 10)]
    sizes += [(megabytes * (1 << 20) - sum(sizes)) // 20] * 20
    for i, size in enumerate(sizes):
        sub = folder / ("big" if i < 4 else "small")
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:02d}.bin").write_bytes(os.urandom(size))
    return sum(sizes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", choices=("lan", "branches"), default="lan")
    parser.add_argument("--mb", type=int, default=100, help="dataset size, MiB")
    parser.add_argument("--only", choices=("http", "bittorrent"), default=None)
    args = parser.parse_args()
    problem = support_problem() or bittorrent.tools_problem()
    if problem:
        print(f"cannot run here: {problem}", file=sys.stderr)
        return 1
    spec = one_lan() if args.topology == "lan" else branches()
    runners = {"http": http_fanout.run_baseline, "bittorrent": bittorrent.run_baseline}
    with tempfile.TemporaryDirectory(prefix="lsc-baseline-") as tmp:
        dataset = Path(tmp, "dataset")
        total = make_dataset(dataset, args.mb)
        print(f"dataset {total / 1e6:.1f} MB, {args.topology}")
        for name, run in runners.items():
            if args.only and name != args.only:
                continue
            with Emulation(spec) as emu:
                hosts = [h.name for h in spec.hosts if h.name != "origin"]
                before = emu.wan_counters()
                done = run(emu, "origin", hosts, dataset, Path(tmp, name))
                after = emu.wan_counters()
            print(f"\n{name} (WAN delay/loss: {emu.delay_mechanism or 'none'})")
            for site in spec.sites:
                times = [done[h.name] for h in site.hosts if h.name in done]
                if times:
                    print(f"  site {site.name:4}: last host done after {max(times):7.2f} s "
                          f"(first {min(times):.2f} s)")
            for link, c in after.items():
                payload = c.tx_tcp_payload - before[link].tx_tcp_payload
                print(f"  WAN {link}: {payload / total:.2f} x dataset (TCP payload, parent -> child)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
