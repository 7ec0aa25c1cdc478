"""A host on a slow port among fast ones, with no site tree to say so: how long it takes, and
whether its sources are charged as slow for it.

    .venv/bin/python benchmarks/slow_port.py                       # 100 Mbit/s, 32 MiB chunks
    .venv/bin/python benchmarks/slow_port.py --slow-mbit 10 --size-mib 96 --chunk-mib 16

The defaults are a 100 Mbit/s host on a gigabit LAN taking a build of 64 GiB or more, whose chunks
the engine makes 32 MiB (`chunk_size: auto`), here 8 of them: 32 MiB beside another download
take 5.4 s at 100 Mbit/s, and a transfer at loopback speed is given 5 s.

Real processes on 127.0.0.1 (the engine's `lanscatter master` and `lanscatter peer`): a master
with one file of random data cut into fixed chunks, --fast peers with no limit, and one peer whose
downloads are limited to --slow-mbit (its own token bucket, as `--dl-rate` does). No site tree, so
the master knows no port speeds. Prints when the fast peers and the slow one were in sync (from
the slow peer's start), the slow one's ideal (the data over its limit), and the master's events
that charged a source as slow or gave a download more time at the slow host's own port.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.nodes import Cluster, synced, wait_for


def _events(node) -> list[str]:  # type: ignore[no-untyped-def]
    st = node.status()
    return [e["message"] for e in st["events"]] if st else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow-mbit", type=float, default=100.0, help="the slow host's download limit (Mbit/s)")
    parser.add_argument("--size-mib", type=int, default=256, help="the data set (MiB of random data)")
    parser.add_argument("--chunk-mib", type=int, default=32, help="fixed chunk size (MiB)")
    parser.add_argument("--fast", type=int, default=3, help="peers with no limit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lanscatter-slow-port-") as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "origin"
        source.mkdir()
        (source / "data.bin").write_bytes(os.urandom(args.size_mib << 20))
        cluster = Cluster(tmp, source, chunk_size=f"{args.chunk_mib}MiB")
        try:
            master = cluster.start_master("--chunking", "fixed")
            fast = [cluster.start_peer(f"fast{i}") for i in range(args.fast)]
            slow = cluster.start_peer("slow", "--dl-rate", f"{args.slow_mbit:g}")
            t0 = time.monotonic()
            ideal = (args.size_mib << 20) / (args.slow_mbit * 1e6 / 8)
            wait_for(lambda: all(synced(n) for n in fast), 300, "the fast peers in sync", master, *fast)
            fast_s = time.monotonic() - t0
            wait_for(lambda: synced(slow), 20 * ideal, "the slow peer in sync", master, slow)
            slow_s = time.monotonic() - t0
            events = _events(master)
        finally:
            cluster.close()
    charged = sum("slow source" in e for e in events)
    at_port = sum("own port speed" in e for e in events)
    print(f"{args.fast} fast peers and one at {args.slow_mbit:g} Mbit/s, {args.size_mib} MiB in "
          f"{args.chunk_mib} MiB chunks: fast peers in sync after {fast_s:.1f} s, the slow one after "
          f"{slow_s:.1f} s (its ideal {ideal:.1f} s: {ideal / slow_s:.3f}); sources charged as slow: "
          f"{charged}; downloads given more time at the slow host's own port: {at_port}")


if __name__ == "__main__":
    main()
