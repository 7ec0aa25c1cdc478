"""What a master's status document costs it: the document of a site of N nodes made into JSON
values (`status.to_json`), as the master does four times a second while a monitor follows its
feed, and the feed's diff of two consecutive ones (`status_feed.diff`).

    python benchmarks/status_doc.py [--nodes 200] [--chunks 10000] [--rounds 15] [--against DIR]

The site is the synthetic one of benchmarks/tui_cpu.py (every node gains chunks and starts new
downloads each tick), read into a StatusDoc. Prints the median and best of `--rounds` rounds of
three calls each, in ms a call, and what four calls a second take of one core. Each diff is of
two consecutive documents of the site ticking along, as a feed's are. `--against DIR`
(another checkout of the engine, say a git worktree of an older commit) times its `to_json` and
`diff` too, round by round alternating with this tree's, so that both see the same machine, and
checks that both give the same output.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tui_cpu import TICK_S, SyntheticSite

from lanscatter.core import status, status_feed


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=15, help="rounds of three calls each")
    ap.add_argument("--against", type=Path, help="another checkout of the engine to time alongside")
    args = ap.parse_args()
    site = SyntheticSite(args.nodes, args.chunks)
    docs = []                   # one document a tick: each diff is of two consecutive ones, as a feed's
    for _ in range(3 * args.rounds + 1):
        docs.append(status.to_json(status.read_status(site.status)))
        site.tick()
    after = status.read_status(site.status)
    a, b = docs[0], docs[1]

    def diffs(diff: Callable[[Any, Any], Any]) -> Callable[[int], None]:
        return lambda k: diff(docs[k], docs[k + 1]) and None

    trees: list[tuple[str, Callable[[int], None], Callable[[int], None]]] = [
        ("this tree", lambda _k: status.to_json(after) and None, diffs(status_feed.diff))]
    if args.against is not None:
        core = args.against / "lanscatter" / "core"
        old_status = _load(core / "status.py", "against_status")
        old_feed = _load(core / "status_feed.py", "against_status_feed")
        if json.dumps(old_status.to_json(after)) != json.dumps(status.to_json(after)):
            raise SystemExit("the two trees' to_json differ")
        if old_feed.diff(a, b) != status_feed.diff(a, b):
            raise SystemExit("the two trees' diff differ")
        trees.append((str(args.against), lambda _k: old_status.to_json(after) and None, diffs(old_feed.diff)))
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        for tree, to_json, diff in trees:
            for what, call in (("to_json", to_json), ("diff", diff)):
                began = time.perf_counter()
                for k in range(3 * r, 3 * r + 3):
                    call(k)
                times.setdefault((tree, what), []).append((time.perf_counter() - began) / 3 * 1000)
    per_s = 1 / TICK_S
    print(f"{args.nodes} nodes x {args.chunks} chunks, {args.rounds} rounds")
    for (tree, what), ms in times.items():
        median = statistics.median(ms)
        print(f"  {tree}: {what} median {median:.2f} ms (best {min(ms):.2f}), "
              f"{median * per_s / 10:.1f} % of a core at {per_s:.0f} a second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
