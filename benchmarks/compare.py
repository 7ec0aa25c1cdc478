"""Lanscatter against what users would pick instead, on emulated networks (root, Linux).

    sudo .venv/bin/python benchmarks/compare.py benchmarks/topologies/one-lan.yaml --size 128MiB
    sudo .venv/bin/python benchmarks/compare.py benchmarks/topologies/hub-two-branches.yaml --size 64MiB
    sudo .venv/bin/python benchmarks/compare.py benchmarks/topologies/one-lan.yaml --size 128MiB --runs 5 --only lanscatter

For one site tree, on the network `lanscatter emulate` builds from it (same rates, delays, loss), with
one data set of random (incompressible) files, runs:
  ideal       the ideal time of the tree (lanscatter/core/ideal.py: a copy over each host's narrowest
              path link, a site's copies over its switch and its own upload ports; no schedule can
              beat it);
  http        every host downloads every file from the origin's HTTP server, all at once;
  bittorrent  aria2c on every host, the origin seeding, opentracker, DHT/LPD/PEX off;
  lanscatter  `lanscatter emulate FILE --exit-when-synced --report`.
Prints per system the time until the last host of each site was done, the efficiency (ideal / time
of the last host) and each WAN link's TCP payload (parent -> child, interface counters) per data set.
Baseline times run from the start of the downloads; Lanscatter's from the moment the origin serves
the scanned data set (docs/orchestrator.md), so the origin's scan is left out of every system.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))     # the baselines live beside this script

from baseline_check import make_dataset
from baselines import bittorrent, http_fanout

from lanscatter.core.sizes import parse_size
from lanscatter.deploy.tracker import bottleneck_bytes_per_s
from lanscatter.emulator.from_topology import emulated_plan, net_spec, wan_link_names
from lanscatter.emulator.netns import Emulation, support_problem
from lanscatter.topology.validate import load_topology

SYSTEMS = ("http", "bittorrent", "lanscatter")


def prepare(topology: Path, tmp: Path, dataset: Path) -> Path:
    """A copy of the topology whose data set is `dataset`."""
    doc: dict[str, Any] = yaml.safe_load(topology.read_text())
    doc["dataset"].update(source=str(dataset), secret={"value": "benchmark-only-secret"})
    out = tmp / topology.name
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def run_baseline(name: str, tree: Path, dataset: Path, work: Path) -> dict[str, Any]:
    topo = load_topology(tree)
    spec = net_spec(topo, "cmp")
    origin = topo.dataset.origin
    hosts = [h.name for h in spec.hosts if h.name != origin]
    runner = {"http": http_fanout.run_baseline, "bittorrent": bittorrent.run_baseline}[name]
    with Emulation(spec) as emu:
        before = emu.wan_counters()
        done = runner(emu, origin, hosts, dataset, work)
        after = emu.wan_counters()
        mechanism = emu.delay_mechanism
    sites = {s.name: max((done[h.name] for h in s.hosts if h.name in done), default=0.0) for s in spec.sites}
    wan = {key: after[name].tx_tcp_payload - before[name].tx_tcp_payload
           for name, key in wan_link_names(spec).items()}
    return {"sites": sites, "wan": wan, "mechanism": mechanism}


def run_lanscatter(tree: Path, work: Path, timeout: float) -> dict[str, Any]:
    report_path = work / "report.json"
    argv = [sys.executable, "-m", "lanscatter", "emulate", str(tree), "--workdir", str(work / "run"),
            "--exit-when-synced", "--report", str(report_path), "--timeout", str(timeout), "--tag", "cmp"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    (work / "emulate.log").write_text(done.stderr)
    if done.returncode != 0 or not report_path.exists():
        raise RuntimeError(f"lanscatter emulate exited with {done.returncode}:\n{done.stderr[-3000:]}")
    r = json.loads(report_path.read_text())
    return {"sites": {n: s["last_s"] for n, s in r["sites"].items()},
            "wan": {n: link["bytes"] for n, link in r["wan_links"].items()},
            "mechanism": r["delay_mechanism"], "report": r}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("topology", type=Path)
    ap.add_argument("--size", default="64MiB", help="data set size (default 64MiB)")
    ap.add_argument("--only", choices=SYSTEMS, action="append", help="run only these systems")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--keep", type=Path, default=None, help="keep logs and reports in this folder")
    ap.add_argument("--runs", type=int, default=1,
                    help="run each system this many times, interleaved, and print the median and range "
                         "(runs of one system spread by ±0.5 s or more on a busy machine)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    problem = support_problem() or bittorrent.tools_problem()
    if problem:
        print(f"cannot run here: {problem}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="lsc-compare-") as d:
        tmp = Path(d)
        dataset = tmp / "dataset"
        total = make_dataset(dataset, parse_size(args.size) >> 20)
        tree = prepare(args.topology, tmp, dataset)
        topo = load_topology(tree)
        spec = net_spec(topo, "cmp")
        plan = emulated_plan(topo, spec, tmp)
        bottleneck = bottleneck_bytes_per_s(plan)
        ideal = total / bottleneck
        print(f"{args.topology.name}: {len(spec.sites)} sites, {len(spec.hosts)} hosts; data set "
              f"{total / 2**20:.1f} MiB in {sum(1 for p in dataset.rglob('*') if p.is_file())} random files")
        print(f"ideal: {total / 1e6:.1f} MB / {bottleneck * 8 / 1e6:.0f} Mbit/s (the tree's binding "
              f"limit, lanscatter/core/ideal.py) = {ideal:.2f} s")
        systems = args.only or SYSTEMS
        lasts: dict[str, list[float]] = {name: [] for name in systems}
        for k in range(args.runs):
            for name in systems:
                work = tmp / f"{name}-{k + 1}"
                work.mkdir()
                r = run_lanscatter(tree, work, args.timeout) if name == "lanscatter" else \
                    run_baseline(name, tree, dataset, work)
                if args.keep:
                    keep = args.keep / f"{args.topology.stem}-{name}" / (f"run-{k + 1}" if args.runs > 1 else "")
                    keep.mkdir(parents=True, exist_ok=True)
                    for f in [work / "report.json", work / "emulate.log", *(work / "run" / "logs").glob("*.log")]:
                        if f.exists():
                            (keep / f.name).write_text(f.read_text(errors="replace"))
                shutil.rmtree(work)             # every host's copy of the data set: gigabytes a run
                lasts[name].append(max(r["sites"].values()))
                print_row(name if args.runs == 1 else f"{name} {k + 1}", r, spec.sites, ideal, total)
        if args.runs > 1:
            for name, times in lasts.items():
                mid = statistics.median(times)
                print(f"{name:11} median {mid:7.2f} s  efficiency {ideal / mid:5.3f}  |  range "
                      f"{min(times):.2f}-{max(times):.2f} s over {len(times)} runs", flush=True)
    return 0


def print_row(name: str, r: dict[str, Any], sites: Any, ideal: float, total: int) -> None:
    last = max(r["sites"].values())
    per_site = "  ".join(f"{s.name} {r['sites'][s.name]:6.2f}s" for s in sites)
    wan = "  ".join(f"{k} {v / total:.3f}x" for k, v in r["wan"].items())
    print(f"{name:13} last host {last:7.2f} s  efficiency {ideal / last:5.3f}  |  {per_site}"
          + (f"  |  WAN/dataset: {wan}" if wan else "")
          + (f"  (WAN delay: {r['mechanism']})" if r["mechanism"] else ""), flush=True)
    busy = {k: link for k, link in (r.get("report") or {}).get("wan_links", {}).items() if "busy_use" in link}
    if busy:
        print(" " * 14 + "WAN use while busy (payload / link rate): " + "  ".join(
            f"{k} {link['busy_use'] * 100:.1f} % over {link['busy_s']:.1f} s" for k, link in busy.items()), flush=True)


if __name__ == "__main__":
    sys.exit(main())
