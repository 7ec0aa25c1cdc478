"""Records tests/tui/feeds/rehearsal.jsonl: the status feeds of a real local rehearsal.

Run by hand from the repository root, after an intended change of the status documents or the
feed protocol (then update the snapshots: pytest tests/tui --snapshot-update):

    .venv/bin/python tests/tui/record_rehearsal.py [-o OUT] [--seconds 24] [--keep]

What it does, all on 127.0.0.x:
- writes a two-site tree into a fresh work directory: site `hq` (the origin + hq-1..hq-3) and site
  `branch` (the relay gw-b + br-1..br-3) behind a slow WAN link, with LAN and WAN speeds chosen so
  the distribution is still running for most of the recording, and a generated data set of 96
  chunks (seeded random bytes: the same data on every run);
- runs `lanscatter up TREE --local --headless --workdir W` and, once both sites' masters serve the
  first generation, records their `/status/ws` feeds with `lanscatter_tui.recorder` for `--seconds`;
- meanwhile makes real things happen: at SLOW_AT hq-2 is frozen (SIGSTOP) for SLOW_FOR seconds,
  so the transfers to and from it time out and the origin logs failures and slow sources; at
  CRASH_AT br-2 is killed (SIGKILL), and killed again as soon as the supervisor restarts it,
  CRASHES times in all, so its restart delay grows (0.5 s, 1 s, 2 s) and it is gone for about
  four seconds before it comes back. The PIDs come from `W/pids.json`, which `up` keeps current;
- at the end, while every role still runs, takes each site master's `/status`, `/metrics` and
  `/` (the HTML page) into `feeds/rehearsal.end.json`;
- stops `up` by its PID with SIGTERM (SIGKILL if it has not exited within STOP_WAIT_S) and keeps
  what it wrote: its report (`feeds/rehearsal.report.json`) and its headless output, the progress
  lines and the end summary (`feeds/rehearsal.up.txt`), the work directory's path replaced by
  `WORKDIR` and the times of day by `HH:MM:SS`.

tests/tui/test_surfaces.py checks every surface against these files and the feed's last moment.

The times are real, so they differ a little between recordings; the tests find the moments they
need (a node down, back, the end) in the file rather than assuming them.

Feed file format (one JSON object a line, in arrival order):
    {"t": seconds since the recording started, "site": "hq", "message": <a /status/ws message>}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import aiohttp
from feed_server import Recording  # beside this script, which is run as a file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))    # the repository, for tests.ports

from lanscatter.deploy import process_stop
from lanscatter_tui.cli import topology_sources
from lanscatter_tui.recorder import record
from tests import ports

OUT = Path(__file__).with_name("feeds") / "rehearsal.jsonl"   # beside it: rehearsal.end.json, .report.json, .up.txt
HOSTS = 8                           # 127.0.0.2 .. 127.0.0.9, in tree order
CHUNK = 256 << 10
FILES = (("bin/engine.pak", 28), ("assets/textures.pak", 20), ("assets/audio.pak", 12),
         ("levels/level-01.bin", 8), ("levels/level-02.bin", 0))   # (path, chunks); 0: an empty file
TEXT_CHUNKS = 28
SLOW_AT, SLOW_FOR = 4.0, 7.0
CRASH_AT, CRASHES = 7.0, 3
READY_WAIT_S = 60.0
STOP_WAIT_S = 20.0

TREE = """\
# Written by tests/tui/record_rehearsal.py: the rehearsal behind tests/tui/feeds/rehearsal.jsonl.
dataset:
  name: feed
  source: source
  origin: origin
  chunk_size: {chunk}
  secret: {{value: rehearsal-only-secret}}
defaults:
  master_port: {master_port}
  peer_port: {peer_port}
sites:
  hq:
    lan: 60Mbit
    hosts: [origin, hq-1, hq-2, hq-3]
  branch:
    lan: 60Mbit
    gateway: gw-b
    hosts: [gw-b, br-1, br-2, br-3]
wan:
  - between: [hq, branch]
    bandwidth: 16Mbit
    latency: 20ms
"""


def write_data(source: Path) -> None:
    """A few binaries of seeded random bytes and a text file: 96 chunks, the same on every run."""
    rng = random.Random(20251125)
    for path, chunks in FILES:
        target = source / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rng.randbytes(chunks * CHUNK))
    words = [w.encode() for w in ("chunk", "relay", "peer", "site", "link", "matrix", "origin", "swarm")]
    size = TEXT_CHUNKS * CHUNK
    text = b"\n".join(b" ".join(rng.choice(words) for _ in range(12)) for _ in range(size // 32))
    (source / "docs").mkdir()
    (source / "docs" / "notes.txt").write_bytes(text[:size])
    # A copy of a binary: identical chunks are moved once, so it adds files but no chunks.
    (source / "levels" / "level-03.bin").write_bytes((source / "levels" / "level-01.bin").read_bytes())


def free_ports() -> tuple[int, int]:
    """A port P with P and P+1 free on every rehearsal address (the file's master and peer ports)."""
    base, _ = ports.free_ports(2, tuple(f"127.0.0.{2 + i}" for i in range(HOSTS)))
    return base, base + 1


def role_pid(workdir: Path, host: str) -> int | None:
    try:
        return int(json.loads((workdir / "pids.json").read_text())["roles"][host])
    except (OSError, ValueError, KeyError):
        return None                      # not written yet, being replaced, or the role is down


async def wait_for_pid(workdir: Path, host: str, other_than: int | None, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = role_pid(workdir, host)
        if pid is not None and pid != other_than:
            return pid
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{host} did not (re)start within {timeout_s} s")


async def wait_serving(urls: list[str], timeout_s: float) -> None:
    """Until every site's master serves the origin's first generation (the scan and the publishing
    take a few seconds): the recording's events then fall in the middle of the distribution."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as session:
        for url in urls:
            while True:
                try:
                    async with session.get(f"{url}/status") as response:
                        if response.status == 200 and (await response.json()).get("generation"):
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} served no generation within {timeout_s} s")
                await asyncio.sleep(0.1)


def say(started: float, what: str) -> None:
    print(f"{time.monotonic() - started:5.1f} s  {what}")


async def slow_source(workdir: Path, host: str, started: float) -> None:
    await asyncio.sleep(SLOW_AT)
    pid = await wait_for_pid(workdir, host, None, 5.0)
    os.kill(pid, signal.SIGSTOP)
    say(started, f"froze {host} (pid {pid}) for {SLOW_FOR} s")
    try:
        await asyncio.sleep(SLOW_FOR)
    finally:
        os.kill(pid, signal.SIGCONT)


async def crash_loop(workdir: Path, host: str, started: float) -> None:
    await asyncio.sleep(CRASH_AT)
    pid = await wait_for_pid(workdir, host, None, 5.0)
    for n in range(CRASHES):
        os.kill(pid, signal.SIGKILL)
        say(started, f"killed {host} (pid {pid}), crash {n + 1} of {CRASHES}")
        pid = await wait_for_pid(workdir, host, pid, 10.0)
    say(started, f"{host} restarted for good (pid {pid})")


async def end_surfaces(sources: list[tuple[str, str]]) -> dict[str, dict[str, object]]:
    """Each site master's /status, /metrics and HTML page, one right after the other."""
    out: dict[str, dict[str, object]] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10.0)) as session:
        for site, url in sources:
            async with session.get(f"{url}/status") as status, session.get(f"{url}/metrics") as metrics, \
                    session.get(f"{url}/") as page:
                out[site] = {"status": await status.json(), "metrics": await metrics.text(), "page": await page.text()}
    return out


async def rehearse(tree: Path, workdir: Path, seconds: float, out: IO[str]) -> dict[str, dict[str, object]]:
    sources = topology_sources(tree, local=True, workdir=workdir)
    await wait_serving([url for _, url in sources], READY_WAIT_S)
    started = time.monotonic()
    print(f"recording {', '.join(f'{s}={u}' for s, u in sources)} for {seconds} s")
    await asyncio.gather(
        record(sources, seconds, out),
        slow_source(workdir, "hq-2", started),
        crash_loop(workdir, "br-2", started),
    )
    return await end_surfaces(sources)


def anonymous(text: str, workdir: Path) -> str:
    """The recording's text without this machine's paths and times of day."""
    return re.sub(r"^\d\d:\d\d:\d\d ", "HH:MM:SS ", text.replace(str(workdir), "WORKDIR"), flags=re.MULTILINE)


def stop(up: subprocess.Popen[bytes]) -> int:
    process_stop.stop([up], STOP_WAIT_S)
    return up.wait(timeout=STOP_WAIT_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    parser.add_argument("--seconds", type=float, default=24.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, folders)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="lanscatter-feed-"))
    print(f"work directory {workdir} (logs of every role in run/logs/)")
    master_port, peer_port = free_ports()
    part = workdir / "feed.jsonl"       # replaces the output only once it is complete
    tree = workdir / "site-tree.yaml"
    tree.write_text(TREE.format(chunk=f"{CHUNK >> 10}KiB", master_port=master_port, peer_port=peer_port))
    write_data(workdir / "source")
    with (workdir / "up.log").open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "lanscatter", "up", str(tree), "--local", "--headless",
             "--workdir", str(workdir / "run")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            with part.open("w") as out:
                end = asyncio.run(rehearse(tree, workdir / "run", args.seconds, out))
        finally:
            code = stop(up)
    recording = Recording(part)   # what the tests need is there, or this fails before replacing OUT
    report = json.loads(anonymous((workdir / "run" / "report.json").read_text(), workdir))
    assert report["synced"], "the rehearsal did not end in sync: record for longer (--seconds)"
    last_up, went_down, back = recording.outage("branch", "br-2")
    print(f"up exited {code}; br-2 last seen online at {last_up} s, down at {went_down} s, back at {back} s; "
          f"70% of the copies held at {recording.when_progress(0.7)} s, "
          f"{recording.progress(recording.end):.0%} at the end ({recording.end} s)")
    os.replace(part, args.output)
    base = args.output.with_suffix("")
    Path(f"{base}.end.json").write_text(json.dumps(end, indent=1) + "\n")
    Path(f"{base}.report.json").write_text(json.dumps(report, indent=2) + "\n")
    Path(f"{base}.up.txt").write_text(anonymous((workdir / "up.log").read_text(), workdir))
    lines = len(args.output.read_text().splitlines())
    print(f"{lines} messages, {args.output.stat().st_size} bytes -> {args.output}")
    if not args.keep:
        shutil.rmtree(workdir)   # kept when anything failed: its logs say why
    return 0


if __name__ == "__main__":
    sys.exit(main())
