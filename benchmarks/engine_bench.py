#!/usr/bin/env python3
"""Engine benchmarks on loopback: scan vs b2sum, one peer vs curl, master + 4 peers, memory.

    .venv/bin/python benchmarks/engine_bench.py scan  --size 2GiB
    .venv/bin/python benchmarks/engine_bench.py pull  --size 2GiB
    .venv/bin/python benchmarks/engine_bench.py swarm --size 1GiB --peers 4
    .venv/bin/python benchmarks/engine_bench.py memory

Data goes to a temporary folder (--tmp, default /tmp) and is deleted at the end. Everything talks
to 127.0.0.1 only. Prints the figures; docs/benchmarks.md keeps them with the command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lanscatter.core.chunking import FIXED, Chunking
from lanscatter.core.sizes import parse_size
from lanscatter.deploy.process_stop import stop
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.scanner import scan_folder
from tests.ports import free_port

PY = sys.executable
MiB = 2**20
# Every node refuses to run without the swarm's secret: the benchmark's processes share this one.
ENV = {**os.environ, "LANSCATTER_SECRET": "engine-benchmark-secret"}


def make_data(root: Path, total: int, file_size: int = 256 * MiB) -> None:
    root.mkdir(parents=True, exist_ok=True)
    i = 0
    left = total
    while left > 0:
        n = min(file_size, left)
        with open(root / f"data-{i:03d}.bin", "wb") as fh:
            done = 0
            while done < n:
                piece = os.urandom(min(16 * MiB, n - done))
                fh.write(piece)
                done += len(piece)
        left -= n
        i += 1


def files_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def warm(root: Path) -> None:
    for p in files_of(root):
        with open(p, "rb") as fh:
            while fh.read(16 * MiB):
                pass


def bench_scan(tmp: Path, size: int) -> dict[str, float]:
    src = tmp / "scan-src"
    make_data(src, size)
    warm(src)
    t = time.perf_counter()
    subprocess.run(["b2sum", *map(str, files_of(src))], check=True, stdout=subprocess.DEVNULL)
    b2 = time.perf_counter() - t
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        scan_folder(src, Chunking(FIXED, 16 * MiB), HashCache(None))
        best = min(best, time.perf_counter() - t)
    out = {"bytes": size, "b2sum_MiB_s": size / b2 / MiB, "scan_MiB_s": size / best / MiB,
           "ratio": b2 / best}
    t = time.perf_counter()
    cache = HashCache(tmp / "scan-cache.jsonl")
    scan_folder(src, Chunking(FIXED, 16 * MiB), cache)
    cache.close()
    t = time.perf_counter()
    scan_folder(src, Chunking(FIXED, 16 * MiB), HashCache(tmp / "scan-cache.jsonl"))
    out["rescan_with_cache_s"] = time.perf_counter() - t
    return out


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Proc:
    def __init__(self, argv: list[str], log: Path) -> None:
        self.fh = open(log, "wb")  # noqa: SIM115
        self.log = log
        self.p = subprocess.Popen(argv, stdout=self.fh, stderr=subprocess.STDOUT, env=ENV)
        self.peak = 0.0
        self.cpu = 0.0
        self._stop = False
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()

    def _watch(self) -> None:
        while not self._stop and self.p.poll() is None:
            self.peak = max(self.peak, peak_rss_mb(self.p.pid))
            self.cpu = max(self.cpu, cpu_seconds(self.p.pid))
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop = True
        stop([self.p], 10)
        self.fh.close()


def status(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return None


def start_master(tmp: Path, src: Path, chunk: str, extra: list[str] | None = None) -> tuple[Proc, int]:
    port = free_port()
    m = Proc([PY, "-m", "lanscatter", "master", str(src), "--listen", "127.0.0.1", "--port", str(port),
              "--chunk-size", chunk, "--state-dir", str(tmp / "st-master"), *(extra or [])], tmp / "master.log")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        st = status(port)
        if st and st["generation"]:
            return m, port
        if m.p.poll() is not None:
            raise SystemExit(f"the master exited with {m.p.returncode}: see {m.log}")
        time.sleep(0.1)
    raise SystemExit(f"master did not come up: see {m.log}")


def run_peers(tmp: Path, port: int, n: int) -> tuple[float, list[Proc]]:
    """Start n peers at once; the time until the master reports every one of them complete
    (process start-up included, process exit not)."""
    peers = []
    t0 = time.perf_counter()
    for i in range(n):
        peers.append(Proc([PY, "-m", "lanscatter", "peer", f"127.0.0.1:{port}", str(tmp / f"peer{i}"),
                           "--listen", "127.0.0.1", "--port", "0", "--name", f"p{i}", "--state-dir",
                           str(tmp / f"st-p{i}"), "--exit-when-synced"], tmp / f"peer{i}.log"))
    deadline = time.monotonic() + 900
    joined = None
    while time.monotonic() < deadline:
        st = status(port)
        if joined is None and st and len(st["nodes"]) == n + 1:
            joined = time.perf_counter() - t0
        if st and len(st["nodes"]) == n + 1 and all(x["have"] == st["chunks"] for x in st["nodes"]):
            break
        if failed := [p for p in peers if p.p.poll() not in (None, 0)]:
            raise SystemExit(f"a peer exited with {failed[0].p.returncode}: see {failed[0].log}")
        time.sleep(0.05)
    took = time.perf_counter() - t0
    print(f"all {n} peers joined after {joined:.2f} s, complete after {took:.2f} s", file=sys.stderr)
    for p in peers:
        p.p.wait(timeout=60)
    return took, peers


def bench_pull(tmp: Path, size: int) -> dict[str, float]:
    src = tmp / "pull-src"
    make_data(src, size)
    warm(src)
    # Baseline: a static file server with sendfile (aiohttp FileResponse) and curl -o per file.
    port = free_port()
    server = subprocess.Popen([PY, "-c", (
        "import sys; from aiohttp import web; app=web.Application(); "
        f"app.router.add_static('/', {str(src)!r}); web.run_app(app, host='127.0.0.1', port={port}, print=None)")])
    time.sleep(1.5)
    out_dir = tmp / "curl-out"
    out_dir.mkdir()
    t = time.perf_counter()
    for f in files_of(src):
        subprocess.run(["curl", "-s", "-o", str(out_dir / f.name), f"http://127.0.0.1:{port}/{f.name}"], check=True)
    curl = time.perf_counter() - t
    server.terminate()
    server.wait()
    shutil.rmtree(out_dir)
    m, mport = start_master(tmp, src, "16MiB")
    try:
        took, peers = run_peers(tmp, mport, 1)
        peak = peers[0].peak
        for p in peers:
            p.stop()
    finally:
        m.stop()
    return {"bytes": size, "curl_MiB_s": size / curl / MiB, "peer_MiB_s": size / took / MiB,
            "ratio": curl / took, "peer_peak_rss_MB": peak}


def bench_swarm(tmp: Path, size: int, n: int, chunk: str) -> dict[str, float]:
    src = tmp / "swarm-src"
    make_data(src, size, file_size=128 * MiB)
    warm(src)
    m, port = start_master(tmp, src, chunk)
    try:
        took, peers = run_peers(tmp, port, n)
        peaks = [p.peak for p in peers]
        cpu = sum(p.cpu for p in peers)
        for p in peers:
            p.stop()
        mpeak = m.peak
        mcpu = cpu_seconds(m.p.pid)
    finally:
        m.stop()
    return {"bytes": size, "peers": n, "chunk": chunk, "all_complete_s": took,
            "aggregate_MiB_s": size * n / took / MiB, "peer_peak_rss_MB": max(peaks), "master_peak_rss_MB": mpeak,
            "peers_cpu_s": cpu, "master_cpu_s": mcpu}


def bench_memory(tmp: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    # Peer RSS with 128 MiB chunks.
    src = tmp / "mem-src"
    make_data(src, 512 * MiB)
    m, port = start_master(tmp, src, "128MiB")
    try:
        _, peers = run_peers(tmp, port, 1)
        out["peer_peak_rss_MB_at_128MiB_chunks"] = peers[0].peak
        peers[0].stop()
    finally:
        m.stop()
    # Master RSS for 100,000 small files.
    many = tmp / "many"
    for d in range(100):
        (many / f"d{d:03d}").mkdir(parents=True)
        for f in range(1000):
            (many / f"d{d:03d}" / f"f{f:04d}.txt").write_bytes(f"{d}-{f}\n".encode() * 8)
    t = time.perf_counter()
    m, port = start_master(tmp, many, "16MiB")
    out["master_100k_files_first_scan_s"] = time.perf_counter() - t
    time.sleep(1)
    out["master_peak_rss_MB_100k_files"] = m.peak
    m.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["scan", "pull", "swarm", "memory"])
    ap.add_argument("--size", type=parse_size, default=None)
    ap.add_argument("--peers", type=int, default=4)
    ap.add_argument("--chunk", default="16MiB")
    ap.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lanscatter-bench-", dir=a.tmp))
    try:
        if a.what == "scan":
            r = bench_scan(tmp, a.size or 2 * 2**30)
        elif a.what == "pull":
            r = bench_pull(tmp, a.size or 2 * 2**30)
        elif a.what == "swarm":
            r = bench_swarm(tmp, a.size or 2**30, a.peers, a.chunk)
        else:
            r = bench_memory(tmp)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(asyncio.sleep(0))
    main()
