#!/usr/bin/env python3
"""Tree activation on the rehearsal tree: the spread of the hosts' own switch times.

    .venv/bin/python benchmarks/tree_switch.py [--rounds 3] [--size 16MiB] [--changed 4]

Runs `lanscatter up --local` on examples/topologies/rehearsal.yaml with every host in tree
activation and the source a `current` symlink to a release folder (the build pipeline of
docs/versions.md). For each round it copies the release into a new folder with CHANGED of its
files rewritten, switches the link, and waits until `lanscatter status` shows every host on the
new version. The spread is the last host's switch minus the first's, each host's switch time as
its own versions index records it (the time written with the new active version).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from lanscatter.core.sizes import format_bytes, parse_size
from lanscatter.core.status import StatusDoc, StatusError
from lanscatter.core.version_plan import version_name
from lanscatter.deploy.version_report import build_report
from lanscatter.disk.versions_dir import VersionsDir
from lanscatter.net.status_client import parse_status
from lanscatter.topology.derive import DeploymentPlan, derive_plan
from lanscatter.topology.roles import status_url
from lanscatter.topology.validate import load_topology

REHEARSAL = Path(__file__).parents[1] / "examples" / "topologies" / "rehearsal.yaml"
FILES = 32


def _tree_file(work: Path, source: Path) -> Path:
    text = REHEARSAL.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^  source: .*$", f"  source: {source}", text)
    text = text.replace("\nsites:\n", "\ndefaults:\n  activate: tree\n\nsites:\n", 1)
    path = work / "tree.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _release(root: Path, number: int, size: int, changed: int, previous: Path | None) -> Path:
    folder = root / "releases" / str(number)
    if previous is None:
        folder.mkdir(parents=True)
        for i in range(FILES):
            (folder / f"part{i:02d}.bin").write_bytes(os.urandom(size // FILES))
    else:
        shutil.copytree(previous, folder)
        for i in range(changed):
            (folder / f"part{(number * changed + i) % FILES:02d}.bin").write_bytes(os.urandom(size // FILES))
    return folder


def _switch(link: Path, target: Path) -> None:
    tmp = link.with_name(link.name + ".new")
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)


def _report(plan: DeploymentPlan) -> dict[str, Any]:
    answers: dict[str, StatusDoc | None] = {}
    for site, addr in plan.site_masters().items():
        try:
            with urllib.request.urlopen(status_url(*addr), timeout=2) as r:
                answers[site] = parse_status(r.read())
        except (OSError, StatusError):
            answers[site] = None
    return build_report(plan, answers)


def _wait_all_on(plan: DeploymentPlan, label: str, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        r = _report(plan)
        hosts = [h for s in r["sites"] for h in s["hosts"] if h["role"] != "master"]
        if (r["current"] and r["current"]["label"] == label and not r["behind"]
                and all(h["active"] and h["active"]["label"] == label for h in hosts)):
            return
        time.sleep(0.2)
    raise SystemExit(f"not every host showed release {label} within {limit_s:.0f} s")


def _switch_times(plan: DeploymentPlan, generation: str) -> dict[str, float]:
    out = {}
    for h in plan.hosts:
        if h.role == "master":
            continue
        record = VersionsDir(h.folder).read_index().record(version_name(generation))
        if record is not None:
            out[h.name] = record.activated
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=parse_size, default=parse_size("16MiB"))
    ap.add_argument("--changed", type=int, default=4, help="files rewritten in each new release")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lsc-tree-switch-"))
    builds = work / "builds"
    link = builds / "current"
    release = _release(builds, 1, args.size, args.changed, None)
    _switch(link, release)
    tree = _tree_file(work, link)
    run = work / "run"
    plan = derive_plan(load_topology(tree), local=True, workdir=run)
    log = open(work / "up.log", "wb")  # noqa: SIM115 (closed below)
    up = subprocess.Popen([sys.executable, "-m", "lanscatter", "up", str(tree), "--local", "--workdir", str(run),
                           "--headless"], stdout=log, stderr=subprocess.STDOUT)
    spreads = []
    try:
        _wait_all_on(plan, "1", 180)
        for n in range(2, args.rounds + 2):
            release = _release(builds, n, args.size, args.changed, release)
            _switch(link, release)
            _wait_all_on(plan, str(n), 180)
            generation = _report(plan)["current"]["generation"]
            times = _switch_times(plan, generation)
            spread = max(times.values()) - min(times.values())
            spreads.append(spread)
            first = min(times, key=times.__getitem__)
            last = max(times, key=times.__getitem__)
            print(f"release {n}: {len(times)} hosts switched within {spread * 1000:.0f} ms "
                  f"(first {first}, last {last})", flush=True)
    finally:
        up.terminate()
        up.wait(timeout=60)
        log.close()
    print(f"tree switch spread over {len(spreads)} releases of {format_bytes(args.size)} ({args.changed} of "
          f"{FILES} files changed each): median {statistics.median(spreads) * 1000:.0f} ms, "
          f"max {max(spreads) * 1000:.0f} ms")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
