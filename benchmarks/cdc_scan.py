"""Scan throughput with content-defined chunk boundaries, against b2sum on the same files.

Writes a data set (random bytes, so nothing compresses or dedups: `--files` files, 2 GiB in all by
default), warms the page cache, then, `--runs` times in turn, times b2sum over every file (one
core) and a full scan (`scan_folder`, content-defined, every core) and reports the best and the
median of each and of their ratio. The cost of each half of the scan is measured apart, as CPU
seconds per GiB on one core: finding boundaries (the cutter alone) and hashing (blake3 alone); the
scan's own CPU time says what stitching segments and reading cost on top. Last, a rescan with the
hash cache, as after a restart. The load average is printed: other jobs sharing the machine slow
b2sum (one core) less than the scan (every core).

    .venv/bin/python benchmarks/cdc_scan.py [--size 2GiB] [--files 8] [--target auto] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import blake3

from lanscatter.core.chunking import CDC, CdcCutter, Chunking, auto_chunk_size
from lanscatter.core.sizes import parse_size
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.scanner import scan_folder, segment_size

MIB = 1 << 20
GIB = 1 << 30


def _cpu_per_gib(fn: Callable[[], object], nbytes: int, runs: int = 3) -> float:
    """Least CPU seconds (this thread) per GiB over `runs` calls."""
    best = float("inf")
    for _ in range(runs):
        t = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t)
    return best * GIB / nbytes


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cut_all(data: memoryview, target: int) -> int:
    cutter = CdcCutter(target)
    return sum(1 for piece in cutter.cut(data, True) if not piece)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=parse_size, default=parse_size("2GiB"))
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--target", default="auto", help="target chunk size, or auto (what the scan picks)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("/tmp/cdc-scan"))
    args = ap.parse_args()
    target = auto_chunk_size(args.size) if args.target == "auto" else parse_size(args.target)
    chunking = Chunking(CDC, target)
    src: Path = args.work / "src"
    shutil.rmtree(args.work, ignore_errors=True)
    src.mkdir(parents=True)
    per = args.size // args.files
    for k in range(args.files):
        with open(src / f"f{k}.bin", "wb") as fh:
            subprocess.run(["head", "-c", str(per), "/dev/urandom"], stdout=fh, check=True)
    files = sorted(str(p) for p in src.iterdir())
    total = per * args.files
    subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)      # page cache warm
    load_before = os.getloadavg()[0]

    b2_rates, scan_rates, ratios, scan_cpu = [], [], [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        subprocess.run(["b2sum", *files], stdout=subprocess.DEVNULL, check=True)
        b2 = time.perf_counter() - t
        t, c = time.perf_counter(), _self_cpu()
        scan_folder(src, chunking, HashCache(None))
        scan = time.perf_counter() - t
        scan_cpu.append((_self_cpu() - c) * GIB / total)
        b2_rates.append(total / b2 / MIB)
        scan_rates.append(total / scan / MIB)
        ratios.append(b2 / scan)

    sample = memoryview((src / "f0.bin").read_bytes()[:256 * MIB])
    cut_cpu = _cpu_per_gib(lambda: _cut_all(sample, target), len(sample))
    hash_cpu = _cpu_per_gib(lambda: blake3.blake3(sample).digest(), len(sample))
    c = _child_cpu()
    subprocess.run(["b2sum", files[0]], stdout=subprocess.DEVNULL, check=True)
    b2_cpu = (_child_cpu() - c) * GIB / per

    cache_path = args.work / "cache.jsonl"
    cache = HashCache(cache_path)
    scan_folder(src, chunking, cache)
    cache.close()
    t = time.perf_counter()
    scan_folder(src, chunking, HashCache(cache_path))
    rescan = time.perf_counter() - t

    def best_median(values: list[float]) -> dict[str, float]:
        return {"best": round(max(values), 2), "median": round(statistics.median(values), 2)}

    out = {
        "bytes": total, "files": args.files, "target": target, "segment": segment_size(chunking),
        "cores": os.cpu_count(), "runs": args.runs,
        "load_avg_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "b2sum_MiB_s": best_median(b2_rates), "scan_MiB_s": best_median(scan_rates),
        "ratio_to_b2sum": best_median(ratios),
        "cpu_s_per_GiB": {"boundaries_1core": round(cut_cpu, 3), "blake3_1core": round(hash_cpu, 3),
                          "scan_all": round(min(scan_cpu), 3), "b2sum": round(b2_cpu, 3)},
        "rescan_with_cache_s": round(rescan, 3),
    }
    print(json.dumps(out))
    shutil.rmtree(args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
