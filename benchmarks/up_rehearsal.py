"""A local rehearsal of a site tree, measured: runs `lanscatter up --local --exit-when-synced --report`
on a generated demo data set and prints the report's figures (makespan, ideal time, efficiency, per
site and per WAN link).

    .venv/bin/python benchmarks/up_rehearsal.py                                  # rehearsal.yaml, 64MiB
    .venv/bin/python benchmarks/up_rehearsal.py examples/topologies/single-lan.yaml --size 256MiB

The topology is copied into a temporary folder with its data set source pointed at the demo data,
an inline secret and free ports, so any example runs as is; everything is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))    # the repository, for tests.ports
import yaml

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


def _prepare(topology: Path, tmp: Path, chunk_size: str | None) -> Path:
    doc: dict[str, Any] = yaml.safe_load(topology.read_text())
    doc["dataset"].update(source=str(tmp / "source"), secret={"value": "benchmark-only-secret"})
    doc["dataset"].setdefault("name", "bench")
    if chunk_size:
        doc["dataset"]["chunk_size"] = chunk_size
    for site in doc["sites"].values():                 # per-host ports would collide with the free ones
        hosts = site["hosts"]
        if isinstance(hosts, dict):
            for name, value in hosts.items():
                if isinstance(value, dict):
                    for key in ("master_port", "peer_port", "folder"):
                        value.pop(key, None)
                    hosts[name] = value or None
    doc.setdefault("defaults", {}).update(master_port=free_port(), peer_port=free_port())
    doc["defaults"].pop("folder", None)
    out = tmp / topology.name
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("topology", nargs="?", type=Path, default=ROOT / "examples/topologies/rehearsal.yaml")
    ap.add_argument("--size", default="64MiB", help="demo data set size (default 64MiB)")
    ap.add_argument("--chunk-size", default=None, help="override the topology's chunk size")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="lanscatter-bench-") as d:
        tmp = Path(d)
        tree = _prepare(args.topology, tmp, args.chunk_size)
        report = tmp / "report.json"
        cmd = [sys.executable, "-m", "lanscatter", "up", str(tree), "--local", "--headless", "--workdir",
               str(tmp / "work"), "--demo-data", args.size, "--exit-when-synced", "--report", str(report),
               "--timeout", str(args.timeout)]
        started = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        if done.returncode != 0 or not report.exists():
            print(done.stderr[-4000:], file=sys.stderr)
            print(f"lanscatter up exited with {done.returncode}", file=sys.stderr)
            return 1
        r = json.loads(report.read_text())

    mib = r["dataset_bytes"] / 2**20
    print(f"topology       {args.topology.name}: {len(r['sites'])} sites, {len(r['hosts'])} hosts")
    print(f"data set       {mib:.1f} MiB distinct ({args.size} demo data), {r['chunks']} chunks")
    print(f"wall time      {wall:.1f} s (start-up, demo data and scan included)")
    print(f"makespan       {r['makespan_s']:.2f} s (from the origin serving the data set to the last host)")
    print(f"ideal          {r['ideal_s']:.2f} s at the bottleneck {r['bottleneck_bytes_per_s'] * 8 / 1e6:.0f} Mbit/s")
    print(f"efficiency     {r['efficiency']:.3f}")
    for name, site in r["sites"].items():
        print(f"site {name:<14} p50 {site['p50_s']:6.2f} s   last {site['last_s']:6.2f} s   ({site['hosts']} hosts)")
    for name, link in r["wan_links"].items():
        print(f"{name:<24} {link['bytes'] / 2**20:8.1f} MiB   ratio {link['ratio']:.3f}   "
              f"({link['capacity_bytes_per_s'] * 8 / 1e6:.0f} Mbit/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
