"""Lanscatter against what users would pick instead, on emulated networks (root, Linux).

    sudo .venv/bin/python benchmarks/compare.py benchmarks/topologies/one-lan.yaml --size 128MiB
    sudo .venv/bin/python benchmarks/compare.py benchmarks/topologies/hub-two-branches.yaml --size 64MiB
    sudo .venv/bin/python benchmarks/compare.py benchmarks/topologies/one-lan.yaml --size 128MiB --runs 5 --only lanscatter
    sudo .venv/bin/python benchmarks/compare.py benchmarks/topologies/hub-three-branches.yaml --size 300MB --start warm

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

`--start` says how Lanscatter starts: `cold` (the default) starts every host's roles at once with
the data set already in the origin's source, as after a reboot; `warm` has every host joined and
in sync on a first version of one small file before the data set is published (`publish: manual`,
then `lanscatter publish` on the origin), as a standing deployment meets a new build; `both` runs
the two in turn. The baselines have no such difference: they always start with the data in place.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))     # the baselines live beside this script

from baseline_check import make_dataset
from baselines import bittorrent, http_fanout

from lanscatter.core.sizes import parse_size
from lanscatter.deploy.tracker import bottleneck_bytes_per_s
from lanscatter.emulator.from_topology import emulated_plan, net_spec, wan_link_names
from lanscatter.emulator.layout import plan as emulator_layout
from lanscatter.emulator.netns import Emulation, support_problem
from lanscatter.topology.validate import load_topology

SYSTEMS = ("http", "bittorrent", "lanscatter")
SECRET = "benchmark-only-secret"
SYNCED = "every host holds generation "      # what `up` logs each time the tree holds a generation


def prepare(topology: Path, tmp: Path, dataset: Path) -> Path:
    """A copy of the topology whose data set is `dataset`."""
    doc: dict[str, Any] = yaml.safe_load(topology.read_text())
    doc["dataset"].update(source=str(dataset), secret={"value": SECRET})
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


def _emulate_argv(tree: Path, work: Path, timeout: float, *extra: str) -> list[str]:
    return [sys.executable, "-m", "lanscatter", "emulate", str(tree), "--workdir", str(work / "run"),
            "--report", str(work / "report.json"), "--timeout", str(timeout), "--tag", "cmp", *extra]


def _result(work: Path, returncode: int, log: str) -> dict[str, Any]:
    (work / "emulate.log").write_text(log)
    report_path = work / "report.json"
    if returncode != 0 or not report_path.exists():
        raise RuntimeError(f"lanscatter emulate exited with {returncode}:\n{log[-3000:]}")
    r = json.loads(report_path.read_text())
    return {"sites": {n: s["last_s"] for n, s in r["sites"].items()},
            "wan": {n: link["bytes"] for n, link in r["wan_links"].items()},
            "mechanism": r["delay_mechanism"], "report": r}


def run_lanscatter(tree: Path, work: Path, timeout: float) -> dict[str, Any]:
    """Cold: every host's roles start at once, the data set already in the origin's source."""
    done = subprocess.run(_emulate_argv(tree, work, timeout, "--exit-when-synced"),
                          capture_output=True, text=True, check=False)
    return _result(work, done.returncode, done.stderr)


def run_lanscatter_warm(tree: Path, dataset: Path, work: Path, timeout: float) -> dict[str, Any]:
    """Warm: the hosts join and sync a first version of one small file; then the data set is
    linked into the origin's source and published by hand. The report's times are the second
    version's, from its publication (the tracker follows the newest generation)."""
    source = work / "source"
    source.mkdir()
    (source / "warm-up.txt").write_text("the hosts are joined before the data set is published\n")
    doc: dict[str, Any] = yaml.safe_load(tree.read_text())
    doc["dataset"].update(source=str(source), publish="manual")
    warm_tree = work / tree.name
    warm_tree.write_text(yaml.safe_dump(doc, sort_keys=False))
    topo = load_topology(warm_tree)
    origin = emulated_plan(topo, net_spec(topo, "cmp"), work / "run").host(topo.dataset.origin)
    namespace = emulator_layout(net_spec(topo, "cmp")).hosts[origin.name].namespace

    proc = subprocess.Popen(_emulate_argv(warm_tree, work, timeout), stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    synced: list[str] = []
    seen = threading.Condition()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with seen:
                lines.append(line)
                if SYNCED in line:
                    synced.append(line.split(SYNCED, 1)[1].strip())
                seen.notify_all()
        with seen:
            seen.notify_all()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout

    def wait_synced(count: int, what: str) -> None:
        with seen:
            while len(synced) < count:
                left = deadline - time.monotonic()
                if left <= 0 or proc.poll() is not None:
                    raise RuntimeError(f"no {what} ({'timed out' if left <= 0 else 'emulate exited'}):\n"
                                       + "".join(lines)[-3000:])
                seen.wait(min(left, 1.0))

    try:
        wait_synced(1, "first version everywhere")
        for path in dataset.rglob("*"):          # hard links: no copy of the data set
            target = source / path.relative_to(dataset)
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target)
        publish = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-m", "lanscatter", "publish",
             f"{origin.address}:{origin.master_port}", "--label", "bench", "--timeout", "120"],
            capture_output=True, text=True, check=False, env={**os.environ, "LANSCATTER_SECRET": SECRET})
        if publish.returncode != 0:
            raise RuntimeError(f"lanscatter publish exited with {publish.returncode}: {publish.stderr[-2000:]}")
        wait_synced(2, "data set everywhere")
        proc.send_signal(signal.SIGINT)             # once synced, a stopped run reports `synced`
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
    return _result(work, 0 if proc.returncode in (0, -signal.SIGINT, 130) else proc.returncode, "".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("topology", type=Path)
    ap.add_argument("--size", default="64MiB", help="data set size (default 64MiB)")
    ap.add_argument("--only", choices=SYSTEMS, action="append", help="run only these systems")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--start", choices=("cold", "warm", "both"), default="cold",
                    help="how Lanscatter starts: every role at once with the data in place (cold), "
                         "or the hosts joined before the data set is published (warm); default cold")
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
        systems: list[str] = []
        for name in args.only or SYSTEMS:
            if name != "lanscatter":
                systems.append(name)
            elif args.start == "both":
                systems += ["lanscatter-cold", "lanscatter-warm"]
            else:
                systems.append("lanscatter" if args.start == "cold" else "lanscatter-warm")
        lasts: dict[str, list[float]] = {name: [] for name in systems}
        for k in range(args.runs):
            for name in systems:
                work = tmp / f"{name}-{k + 1}"
                work.mkdir()
                if name == "lanscatter-warm":
                    r = run_lanscatter_warm(tree, dataset, work, args.timeout)
                elif name.startswith("lanscatter"):
                    r = run_lanscatter(tree, work, args.timeout)
                else:
                    r = run_baseline(name, tree, dataset, work)
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
                print(f"{name:15} median {mid:7.2f} s  efficiency {ideal / mid:5.3f}  |  range "
                      f"{min(times):.2f}-{max(times):.2f} s over {len(times)} runs", flush=True)
    return 0


def print_row(name: str, r: dict[str, Any], sites: Any, ideal: float, total: int) -> None:
    last = max(r["sites"].values())
    per_site = "  ".join(f"{s.name} {r['sites'][s.name]:6.2f}s" for s in sites)
    wan = "  ".join(f"{k} {v / total:.3f}x" for k, v in r["wan"].items())
    print(f"{name:17} last host {last:7.2f} s  efficiency {ideal / last:5.3f}  |  {per_site}"
          + (f"  |  WAN/dataset: {wan}" if wan else "")
          + (f"  (WAN delay: {r['mechanism']})" if r["mechanism"] else ""), flush=True)
    busy = {k: link for k, link in (r.get("report") or {}).get("wan_links", {}).items() if "busy_use" in link}
    if busy:
        print(" " * 18 + "WAN use while busy (payload / link rate): " + "  ".join(
            f"{k} {link['busy_use'] * 100:.1f} % over {link['busy_s']:.1f} s" for k, link in busy.items()), flush=True)


if __name__ == "__main__":
    sys.exit(main())
