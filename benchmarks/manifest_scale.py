"""A folder of many small files through a master and one peer: peak RSS of each process, times,
and what a second version that changes ten files costs the control link (a manifest delta).

    .venv/bin/python benchmarks/manifest_scale.py [--files 1000000] [--distinct N] [--peer-has PERCENT]

Files hold a few bytes each, 1000 to a folder: file k holds `k`, so each file is a distinct chunk,
as in a real folder (the manifest's costs: its build, scan, encoding, sending, checking and
applying, and each node's costs per distinct chunk); `--distinct 100` gives file k `k % 100`, a
hundred distinct chunks, the manifest's costs alone. A peer fetches a chunk a request (about a
hundred small ones a second here), so `--peer-has 99` writes 99 files of every 100 into the peer's
folder before it starts, with the source's mtimes (as `cp -p` would: the peer adopts the folder as
a version and links those files into the master's; `--peer-own-mtimes` leaves them their own, and
the peer copies each locally instead), and the peer fetches the rest. Master and peer run as real
processes on 127.0.0.1; peak RSS is the kernel's high-water mark (VmHWM) of each, read until it
exits, and as it stands at the end of each phase (the master's first version made; the peer in
sync; the second version applied at the peer).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))    # the repository, for tests.ports
from benchmarks.engine_bench import peak_rss_mb
from tests.ports import free_port

PY = sys.executable
SECRET = "manifest-scale-benchmark"


class _Proc:
    """A node process whose peak RSS is read every 0.2 s until it ends."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = open(log, "wb")  # noqa: SIM115
        env = {**os.environ, "LANSCATTER_SECRET": SECRET}
        self.p = subprocess.Popen([PY, "-m", "lanscatter", *argv], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.peak = 0.0
        self._watch = threading.Thread(target=self._run, daemon=True)
        self._watch.start()

    def _run(self) -> None:
        while self.p.poll() is None:
            self.peak = max(self.peak, peak_rss_mb(self.p.pid))    # (nan once gone: max keeps the peak)
            time.sleep(0.2)

    def hwm(self) -> int:
        """The peak RSS so far, in MB (read now, not at the watcher's last look)."""
        return round(max(self.peak, peak_rss_mb(self.p.pid)))

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def _status(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=30) as r:
            return json.loads(r.read())    # type: ignore[no-any-return]
    except OSError:
        return None


def _wait(what: str, cond: Any, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(0.5)
    raise TimeoutError(what)


def _synced(port: int, generation: str | None = None) -> bool:
    st = _status(port)
    return bool(st and st.get("synced") and (generation is None or st.get("generation") == generation))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/manifest-scale"))
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--distinct", type=int, default=0,
                    help="file k holds k %% N: N distinct chunks (default 0: every file distinct)")
    ap.add_argument("--peer-has", type=int, default=0, metavar="PERCENT",
                    help="files of every 100 the peer's folder holds before it starts (default 0)")
    ap.add_argument("--peer-own-mtimes", action="store_true",
                    help="the files the peer holds keep their own mtimes (not the source's)")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    src = args.work / "src"
    distinct = args.distinct or args.files
    t = time.monotonic()
    for k in range(args.files):
        folder = src / f"d{k // 1000:04d}"
        if k % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"file-{k:07d}.txt").write_bytes(f"{k % distinct}\n".encode())
        if k % 100 < args.peer_has:
            held = args.work / "peer" / folder.name
            held.mkdir(parents=True, exist_ok=True)
            (held / f"file-{k:07d}.txt").write_bytes(f"{k % distinct}\n".encode())
            if not args.peer_own_mtimes:
                st = (folder / f"file-{k:07d}.txt").stat()
                os.utime(held / f"file-{k:07d}.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    made = time.monotonic() - t
    mport, pport = free_port(), free_port()
    master = _Proc(["master", str(src), "--listen", "127.0.0.1", "--port", str(mport), "--state-dir",
                    str(args.work / "state-master"), "--settle", "1", "--rescan-interval", "3600"],
                   args.work / "master.log")
    peer: _Proc | None = None
    try:
        scan_s = _wait("the master's first version", lambda: (st := _status(mport)) and st.get("generation"),
                       args.timeout)
        peer = _Proc(["peer", f"127.0.0.1:{mport}", str(args.work / "peer"), "--listen", "127.0.0.1", "--port",
                      str(pport), "--state-dir", str(args.work / "state-peer"), "--name", "p1"],
                     args.work / "peer.log")
        first_peaks = {"master": master.hwm()}
        sync_s = _wait("the peer in sync", lambda: _synced(pport), args.timeout)
        sync_peaks = {"master": master.hwm(), "peer": peer.hwm()}
        before = (_status(pport) or {}).get("control_rx_bytes", 0)
        first = (_status(mport) or {}).get("generation")
        step = min(1000, max(1, args.files // 10))     # ten files (fewer when there are fewer)
        for k in range(0, min(args.files, 10 * step), step):
            (src / f"d{k // 1000:04d}" / f"file-{k:07d}.txt").write_bytes(b"changed\n")
        second_s = _wait("the second version at the peer",
                         lambda: (g := (_status(mport) or {}).get("generation")) != first and _synced(pport, g),
                         args.timeout)
        after = (_status(pport) or {}).get("control_rx_bytes", 0)
        out = {"files": args.files, "distinct": distinct, "peer_has_percent": args.peer_has,
               "peer_own_mtimes": args.peer_own_mtimes,
               "make_files_s": round(made, 1), "master_first_version_s": round(scan_s, 1),
               "peer_sync_s": round(sync_s, 1), "second_version_s": round(second_s, 1),
               "second_version_control_bytes": after - before, "first_version_control_bytes": before,
               "master_peak_rss_MB": round(master.peak), "peer_peak_rss_MB": round(peer.peak),
               "peak_rss_MB_by_phase": {"first_version": first_peaks, "in_sync": sync_peaks,
                                        "second_version": {"master": master.hwm(), "peer": peer.hwm()}},
               "load_avg_1min": round(os.getloadavg()[0], 1)}
        print(json.dumps(out))
    finally:
        if peer is not None:
            peer.stop()
        master.stop()
    shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
