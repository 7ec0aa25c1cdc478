"""Baseline: every host downloads the whole dataset from the origin over plain HTTP, all at once.

The origin serves the folder with Python's threaded `http.server`; each host runs one `curl` that
fetches the files one after the other, as a deployment script would. Nothing is shared between
hosts, so every WAN link carries the dataset once per host behind it.
"""

from __future__ import annotations

import re
import selectors
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from baselines.completion import BaselineFailed, check_same_files, exited_ok, stop, wait_until_done
from lanscatter.emulator.netns import Emulation

_SERVING = re.compile(r"port (\d+)")


def _server_port(proc: subprocess.Popen[str], timeout_s: float = 10.0) -> int:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if sel.select(timeout_s) and (m := _SERVING.search(proc.stdout.readline())):
            return int(m.group(1))
    raise BaselineFailed("the origin's HTTP server did not start")


def run_baseline(
    emu: Emulation, origin: str, hosts: Sequence[str], dataset: Path, work_dir: Path, timeout_s: float = 600
) -> dict[str, float]:
    """Seconds until each host in `hosts` has the whole of `dataset` (under work_dir/<host>)."""
    server = emu.exec(
        origin,
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", emu.address(origin),
         "--directory", str(dataset)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        base = f"http://{emu.address(origin)}:{_server_port(server)}/"
        files = sorted(p.relative_to(dataset) for p in dataset.rglob("*") if p.is_file())
        start = time.monotonic()
        checks = {}
        for host in hosts:
            argv = ["curl", "--silent", "--show-error", "--fail", "--create-dirs"]
            for rel in files:
                argv += ["-o", str(work_dir / host / rel), base + quote(rel.as_posix())]
            proc = emu.exec(host, argv, stderr=subprocess.PIPE)
            procs.append(proc)
            checks[host] = exited_ok(proc)
        done = wait_until_done(checks, start, timeout_s)
    finally:
        stop([*procs, server])
    for host in hosts:
        check_same_files(dataset, work_dir / host)
    return done
