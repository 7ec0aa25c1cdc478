#!/usr/bin/env python3
"""Cut-through relays against store-and-forward on a three-level chain (hq -> region -> branch),
as local rehearsals (`lanscatter up --local`, link speeds emulated by the program).

    .venv/bin/python benchmarks/relay_modes.py [--size 64MiB] [--wan 40Mbit,40Mbit]

Writes a copy of examples/topologies/three-level-chain.yaml with the WAN speeds given, generated
incompressible data and loopback addresses, runs it once with cut-through relays (the default) and
once with --store-and-forward, and prints each run's makespan against the ideal:

    ideal = the tree's ideal time (lanscatter/core/ideal.py; here the slowest WAN hop)

A store-and-forward chain needs about the sum of the hops (each relay waits for the whole data
set); cut-through needs about the slowest hop. Everything runs on 127.0.0.x.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "topologies" / "three-level-chain.yaml"


def _tree(tmp: Path, size: int, wan: list[str], chunk: str) -> Path:
    src = tmp / "source"
    src.mkdir()
    left, i = size, 0
    while left > 0:
        n = min(left, 16 * 2**20)
        (src / f"part-{i:03d}.bin").write_bytes(os.urandom(n))
        left -= n
        i += 1
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["dataset"].update(source=str(src), chunk_size=chunk)
    for link, speed in zip(doc["wan"], wan):
        link["bandwidth"] = speed
    for site in doc["sites"].values():
        site.pop("defaults", None)
    path = tmp / "chain.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _run(tree: Path, work: Path, store_and_forward: bool) -> dict:
    report = work / "report.json"
    argv = [sys.executable, "-m", "lanscatter", "up", str(tree), "--local", "--headless", "--exit-when-synced",
            "--timeout", "900", "--workdir", str(work), "--report", str(report)]
    if store_and_forward:
        argv.append("--store-and-forward")
    env = {**os.environ, "LANSCATTER_SECRET": "relay-modes-benchmark"}   # the example reads it from env
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=960, env=env)
    return json.loads(report.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="64MiB")
    ap.add_argument("--wan", default="40Mbit,40Mbit", help="hq-region and region-branch speeds")
    ap.add_argument("--chunk", default="4MiB")
    ap.add_argument("--only", choices=("cut-through", "store-and-forward"), default=None, help="run one mode")
    a = ap.parse_args()
    from lanscatter.core.sizes import parse_size

    tmp = Path(tempfile.mkdtemp(prefix="lanscatter-relay-modes-"))
    try:
        tree = _tree(tmp, parse_size(a.size), a.wan.split(","), a.chunk)
        rows = []
        for mode, sf in (("cut-through", False), ("store-and-forward", True)):
            if a.only not in (None, mode):
                continue
            r = _run(tree, tmp / mode, sf)
            last = {s: v["last_s"] for s, v in r["sites"].items()}
            rows.append((mode, r["makespan_s"], r["ideal_s"], last, {k: v["ratio"] for k, v in r["wan_links"].items()}))
        print(f"data set {a.size} incompressible, WAN {a.wan}, chunks {a.chunk}")
        for mode, makespan, ideal, last, wan in rows:
            print(f"{mode:18s} makespan {makespan:6.1f} s  ideal {ideal:5.1f} s  makespan/ideal {makespan / ideal:4.2f}"
                  f"  last per site {json.dumps(last)}  WAN bytes/dataset {json.dumps(wan)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
