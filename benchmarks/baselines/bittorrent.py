"""Baseline: a BitTorrent swarm, the origin seeding, every host downloading at once.

aria2c (Debian package `aria2`) on every host, opentracker (package `opentracker`) on the origin as
the only way to find peers: DHT, local peer discovery and peer exchange are off. Debian builds
opentracker with a whitelist, so the torrent's info hash is written into one. Each host marks the
moment its download is verified complete (aria2c's --on-bt-download-complete hook) and keeps
seeding until every host is done.

Install the tools with: apt-get install -y aria2 opentracker
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from baselines.completion import BaselineFailed, check_same_files, stop, wait_until_done
from baselines.torrent import make_torrent
from lanscatter.emulator.netns import Emulation

TRACKER_PORT = 6969      # inside the origin's own namespace: nothing else can hold it
PEER_PORT = 6881
_COMMON = [
    "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
    "--enable-peer-exchange=false", "--disable-ipv6=true", "--seed-ratio=0.0",
    "--file-allocation=none", "--summary-interval=0", "--console-log-level=warn",
    f"--listen-port={PEER_PORT}",
]


def tools_problem() -> str | None:
    missing = [t for t in ("aria2c", "opentracker") if shutil.which(t) is None]
    return f"missing {', '.join(missing)} (apt-get install -y aria2 opentracker)" if missing else None


def _marker_check(marker: Path) -> Callable[[], bool]:
    return marker.exists


def run_baseline(
    emu: Emulation, origin: str, hosts: Sequence[str], dataset: Path, work_dir: Path,
    timeout_s: float = 600, piece_length: int = 1 << 20,
) -> dict[str, float]:
    """Seconds until each host in `hosts` has the whole of `dataset` (under work_dir/<host>)."""
    problem = tools_problem()
    if problem:
        raise BaselineFailed(problem)
    origin_addr = emu.address(origin)
    torrent, info_hash = make_torrent(dataset, f"http://{origin_addr}:{TRACKER_PORT}/announce", piece_length)
    tracker_dir = work_dir / "tracker"
    tracker_dir.mkdir(parents=True)
    (tracker_dir / "whitelist.txt").write_text(info_hash + "\n")
    # opentracker chroots into tracker_dir (-d) and drops to nobody before reading the whitelist
    # (and refuses to go on as root), so the path is relative to the chroot.
    (tracker_dir / "opentracker.conf").write_text("access.whitelist whitelist.txt\n")
    torrent_file = work_dir / "dataset.torrent"
    torrent_file.write_bytes(torrent)

    procs: list[subprocess.Popen[bytes]] = []

    def start(host: str, argv: list[str], log_name: str) -> None:
        with open(work_dir / log_name, "wb") as log:
            procs.append(emu.exec(host, argv, stdout=log, stderr=subprocess.STDOUT))

    try:
        start(origin, ["opentracker", "-i", origin_addr, "-p", str(TRACKER_PORT), "-P", str(TRACKER_PORT),
                       "-f", str(tracker_dir / "opentracker.conf"), "-d", str(tracker_dir), "-u", "nobody"],
              "tracker.log")
        start(origin, ["aria2c", *_COMMON, "--check-integrity=false", "--bt-seed-unverified=true",
                       f"--dir={dataset.parent}", str(torrent_file)], "seed.log")
        checks = {}
        start_time = time.monotonic()
        for host in hosts:
            marker = work_dir / f"{host}.done"
            hook = work_dir / f"{host}.done.sh"
            hook.write_text(f"#!/bin/sh\ntouch '{marker}'\n")
            hook.chmod(0o755)
            start(host, ["aria2c", *_COMMON, f"--dir={work_dir / host}",
                         f"--on-bt-download-complete={hook}", str(torrent_file)], f"{host}.log")
            checks[host] = _marker_check(marker)
        done = wait_until_done(checks, start_time, timeout_s)
    finally:
        stop(procs)
    for host in hosts:
        check_same_files(dataset, work_dir / host / dataset.name)
    return done
