"""Scan throughput with content-defined chunk boundaries, against b2sum on the same files.

Writes a data set (8 files, 2 GiB by default, random bytes, so nothing compresses or dedups), warms
the page cache, then times: b2sum over every file (one core), boundary finding alone (pyfastcdc,
one core), blake3 alone (one core), and a full scan (`scan_folder`, content-defined, every core),
best of two; then a rescan with the hash cache as after a restart.

    .venv/bin/python benchmarks/cdc_scan.py [--size 2GiB] [--target 1MiB] [--work /tmp/cdc-scan]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import blake3
from pyfastcdc import FastCDC

from lanscatter.core.chunking import CDC, Chunking
from lanscatter.core.sizes import parse_size
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.scanner import scan_folder

MIB = 1 << 20
FILES = 8


def _best(fn: Callable[[], object], runs: int = 2) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=parse_size, default=parse_size("2GiB"))
    ap.add_argument("--target", type=parse_size, default=parse_size("1MiB"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/cdc-scan"))
    args = ap.parse_args()
    src: Path = args.work / "src"
    shutil.rmtree(args.work, ignore_errors=True)
    src.mkdir(parents=True)
    per = args.size // FILES
    for k in range(FILES):
        with open(src / f"f{k}.bin", "wb") as fh:
            subprocess.run(["head", "-c", str(per), "/dev/urandom"], stdout=fh, check=True)
    files = sorted(str(p) for p in src.iterdir())
    total = per * FILES
    subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)      # page cache warm
    b2 = _best(lambda: subprocess.run(["b2sum", *files], stdout=subprocess.DEVNULL, check=True))
    sample = (src / "f0.bin").read_bytes()
    cdc = FastCDC(min(args.target, 4 * MIB), normalized_chunking=1)
    cut = _best(lambda: sum(1 for _ in cdc.cut_buf(sample)))
    hashed = _best(lambda: blake3.blake3(sample).digest())
    scan = _best(lambda: scan_folder(src, Chunking(CDC, args.target), HashCache(None)))
    cache_path = args.work / "cache.jsonl"
    cache = HashCache(cache_path)
    scan_folder(src, Chunking(CDC, args.target), cache)
    cache.close()
    t = time.perf_counter()
    scan_folder(src, Chunking(CDC, args.target), HashCache(cache_path))
    rescan = time.perf_counter() - t
    out = {
        "bytes": total, "target": args.target,
        "b2sum_MiB_s": round(total / b2 / MIB), "scan_MiB_s": round(total / scan / MIB),
        "ratio_to_b2sum": round(b2 / scan, 2),
        "boundaries_1core_MiB_s": round(len(sample) / cut / MIB), "blake3_1core_MiB_s": round(len(sample) / hashed / MIB),
        "rescan_with_cache_s": round(rescan, 3),
    }
    print(json.dumps(out))
    shutil.rmtree(args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
