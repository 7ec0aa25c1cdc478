"""What TLS costs a chunk transfer on loopback: one source (a real master's chunk server), one
downloader (the real chunk client), the same chunks fetched in the clear and over TLS.

Usage: python benchmarks/tls_cost.py [--size 512M] [--chunk-size 16M] [--parallel 2] [--repeat 5]

The data is random (LZ4 never applies), written once into a temporary folder; each run fetches
every chunk into one output file with `--parallel` downloads at a time (a peer's default slots),
hashing and writing as a peer does. The figure is the data's size over the wall time of a run;
the median of `--repeat` runs per case is printed, runs alternating between the cases so that a
change in what else runs on the machine touches both. CPU seconds (this process: both ends) per
GiB are printed beside. Figures go to docs/benchmarks.md ("TLS cost").
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from lanscatter.core.sizes import parse_size
from lanscatter.net.chunk_fetch import Fetcher
from lanscatter.net.chunk_http import TrafficCounters
from lanscatter.net.tls import client_context, new_identity, server_tls
from lanscatter.roles.master import MasterNode, MasterOptions

HOST = "127.0.0.1"


async def _one_run(master: MasterNode, fetcher: Fetcher, out: Path, parallel: int) -> tuple[float, float]:
    """(seconds, CPU seconds) to fetch every chunk of the master's manifest once."""
    assert master.manifest is not None
    table = master.manifest.chunk_table()
    url = f"http://{HOST}:{master.port}"
    fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    slots = asyncio.Semaphore(parallel)
    offsets, pos = [], 0
    for _h, size in table:
        offsets.append(pos)
        pos += size

    async def one(i: int) -> None:
        h, size = table[i]
        async with slots:
            r = await fetcher.fetch(url, h, size, token="", fd=fd, offset=offsets[i], timeout_s=120,
                                    buckets=[])
        if not r.ok:
            raise RuntimeError(f"chunk {i}: {r.error}")

    cpu, start = time.process_time(), time.perf_counter()
    try:
        await asyncio.gather(*(one(i) for i in range(len(table))))
    finally:
        os.close(fd)
    return time.perf_counter() - start, time.process_time() - cpu


def _random_file(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        while size:
            n = min(size, 16 << 20)
            fh.write(os.urandom(n))
            size -= n


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="lanscatter-tls-cost-") as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        _random_file(root / "src" / "data.bin", args.size)
        fp = new_identity(root / "tls", "bench")
        tls = server_tls(root / "tls" / "cert.pem", root / "tls" / "key.pem")
        master = MasterNode(MasterOptions(folder=root / "src", state_dir=root / "state", host=HOST, port=0,
                                          chunk_size=args.chunk_size, watch=False, compress=False, tls=tls))
        await master.start()
        fetchers = {"plain": Fetcher(TrafficCounters(), local_addr=HOST, threads=args.parallel),
                    "tls": Fetcher(TrafficCounters(), local_addr=HOST, threads=args.parallel,
                                   tls=client_context([fp]))}
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in fetchers}
        try:
            for case, fetcher in fetchers.items():        # warm up: connections, page cache
                await _one_run(master, fetcher, root / "out", args.parallel)
            for _ in range(args.repeat):
                for case, fetcher in fetchers.items():
                    results[case].append(await _one_run(master, fetcher, root / "out", args.parallel))
        finally:
            for f in fetchers.values():
                f.close()
            await master.stop()
    gib = args.size / 2**30
    print(f"{args.size / 2**20:.0f} MiB in {args.chunk_size / 2**20:g} MiB chunks, {args.parallel} at a time, "
          f"{args.repeat} runs per case (median; min-max), loopback, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    for case, runs in results.items():
        rates = [args.size * 8 / s / 1e6 for s, _cpu in runs]
        cpu = statistics.median(c for _s, c in runs) / gib
        print(f"  {case:5}  {statistics.median(rates):7.0f} Mbit/s ({min(rates):.0f}-{max(rates):.0f})"
              f"  CPU {cpu:.2f} s/GiB (both ends)")


if __name__ == "__main__":
    logging.getLogger("lanscatter").setLevel(logging.ERROR)     # the master's notes on its own key
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=parse_size, default=512 * 2**20, help="data size (default 512MiB)")
    ap.add_argument("--chunk-size", type=parse_size, default=16 * 2**20, help="chunk size (default 16MiB)")
    ap.add_argument("--parallel", type=int, default=2, help="downloads at a time (default 2)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per case (default 5)")
    asyncio.run(main(ap.parse_args()))
