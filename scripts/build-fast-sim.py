#!/usr/bin/env python3
"""Build a copy of lanscatter whose planner and simulator are compiled with mypyc (C extensions).

    .venv/bin/python scripts/build-fast-sim.py [--out .fast]
    PYTHONPATH=.fast .venv/bin/python -m lanscatter simulate --nodes 1000 --chunks 5000 --quiet
    PYTHONPATH=.fast .venv/bin/python benchmarks/planner_bench.py --only sim

The planner's policy is Python work per transfer; compiled, a large simulation runs about 1.6x
faster with the same results (tests/integration/test_fast_sim.py compares the two). The copy lives
apart from the source tree, so an edited planner is never shadowed by a stale compiled module:
the build is redone when any source file changed (a hash of the sources is kept with it). Needs a C
compiler and mypy (a test extra), nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The modules a simulation spends its time in; the rest of the package is copied as it is.
COMPILED = ("core/linkmap", "core/planner/__init__", "core/planner/books", "core/planner/links",
            "core/planner/state", "core/planner/types", "sim/simulator")


def sources_hash(package: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(package.rglob("*.py")):
        h.update(str(f.relative_to(package)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def build(out: Path, *, quiet: bool = False) -> Path:
    """Build (or keep, when up to date) the compiled copy under `out`; returns `out`."""
    package = ROOT / "lanscatter"
    stamp = out / "SOURCES.sha256"
    want = sources_hash(package)
    if stamp.exists() and stamp.read_text().strip() == want:
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copytree(package, out / "lanscatter", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    targets = [f"lanscatter/{m}.py" for m in COMPILED]
    done = subprocess.run([sys.executable, "-m", "mypyc", *targets], cwd=out, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        shutil.rmtree(out, ignore_errors=True)
        raise SystemExit(f"mypyc failed (a C compiler and mypy are needed):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    shutil.rmtree(out / "build", ignore_errors=True)
    stamp.write_text(want + "\n")
    if not quiet:
        print(f"compiled {', '.join(COMPILED)} into {out}/lanscatter", file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / ".fast", help="where to build (default .fast)")
    args = ap.parse_args()
    build(args.out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
