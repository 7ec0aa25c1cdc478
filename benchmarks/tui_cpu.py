"""CPU use of the monitor showing 200 nodes x 10,000 chunks, updated 4 times a second.

The monitor runs as it would for an operator: a child process on a pseudo-terminal (real
rendering to a real terminal device), following a real websocket status feed on 127.0.0.1. This
process serves the feed: a synthetic site of 200 peers that each gain a few chunks, start and
finish downloads every tick, with a few log events. It drains the terminal output and measures
the child's CPU time (user + system, from /proc) over the measuring window.

    python benchmarks/tui_cpu.py [--seconds 20] [--nodes 200] [--chunks 10000] [--size 120x40]

Prints the child's CPU use as a percentage of one core and how many redraws it made a second.
Goal: under 15 % of one core at >= 2 redraws a second.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import fcntl
import json
import os
import pty
import random
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from lanscatter.core.status_feed import FeedEncoder

TICK_S = 0.25


class SyntheticSite:
    """A site of `nodes` peers downloading `chunks` chunks; `tick()` moves it on by 0.25 s."""

    def __init__(self, nodes: int, chunks: int) -> None:
        self.rng = random.Random(3)
        self.chunks = chunks
        self.names = [f"peer-{i:03d}" for i in range(nodes)]
        self.have = [self.rng.getrandbits(chunks) & self.rng.getrandbits(chunks) for _ in range(nodes)]
        self.inflight = [0] * nodes
        self.t = 1_764_072_000.0
        self.events: list[dict[str, Any]] = []
        self.status = self._status()

    def tick(self) -> None:
        self.t += TICK_S
        for i in range(len(self.names)):
            self.have[i] |= self.inflight[i]
            self.inflight[i] = 0
            for _ in range(self.rng.randint(1, 4)):
                self.inflight[i] |= 1 << self.rng.randrange(self.chunks)
        if self.rng.random() < 0.05:
            who = self.rng.choice(self.names)
            self.events = (
                self.events + [{"t": self.t, "level": "warning", "message": f"slow source {who}"}]
            )[-50:]
        self.status = self._status()

    def _bitmap(self, bits: int) -> str:
        return base64.b64encode(bits.to_bytes((self.chunks + 7) // 8, "little")).decode()

    def _status(self) -> dict[str, Any]:
        rng = self.rng
        nodes = [
            {
                "name": name,
                "site": "big",
                "role": "peer",
                "online": True,
                "have": self.have[i].bit_count(),
                "bitmap": self._bitmap(self.have[i]),
                "inflight": self._bitmap(self.inflight[i]),
                "downloads": self.inflight[i].bit_count(),
                "uploads": rng.randint(0, 4),
                "dl_slots": 4,
                "ul_slots": 4,
                "rx_bytes": 0,
                "tx_bytes": 0,
                "rx_rate": round(rng.uniform(1e6, 5e7)),
                "tx_rate": round(rng.uniform(1e6, 5e7)),
                "avg_upload_s": round(rng.uniform(0.1, 2.0), 2),
            }
            for i, name in enumerate(self.names)
        ]
        return {
            "version": 1,
            "role": "master",
            "name": "origin",
            "site": "big",
            "generation": "bench",
            "chunks": self.chunks,
            "bytes": self.chunks * (64 << 20),
            "synced": False,
            "time": self.t,
            "nodes": nodes,
            "links": [
                {
                    "name": "wan:big>small",
                    "bytes": int(self.t) % 10_000_000,
                    "bytes_per_s": 6.25e6,
                    "rate": 5e6,
                }
            ],
            "events": list(self.events),
        }


async def serve_feed(
    site: SyntheticSite, ready: threading.Event, port_box: list[int], stop: asyncio.Event
) -> None:
    async def status_ws(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        encoder = FeedEncoder()
        try:
            while not ws.closed and not stop.is_set():
                message = encoder.message(site.status)
                if message is not None:
                    await ws.send_str(json.dumps(message))
                await asyncio.sleep(TICK_S / 2)
        except ConnectionResetError:
            return ws  # the monitor quit first: the run is over
        return ws

    async def ticker() -> None:
        while not stop.is_set():
            await asyncio.sleep(TICK_S)
            site.tick()

    app = web.Application()
    app.router.add_get("/status/ws", status_ws)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port_box.append(runner.addresses[0][1])
    ready.set()
    tick_task = asyncio.create_task(ticker())
    await stop.wait()
    tick_task.cancel()
    await runner.cleanup()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child(url: str, redraws_file: str) -> None:
    from lanscatter_tui.app import build_app
    from lanscatter_tui.feed_client import Source

    app = build_app([Source("big", url)])
    started = time.monotonic()
    app.run()
    ran_s = time.monotonic() - started
    Path(redraws_file).write_text(json.dumps({"redraws": app.redraws, "ran_s": ran_s}))


def run_monitor(
    url: str, result_file: Path, args: argparse.Namespace, cols: int, rows: int
) -> tuple[float, float, int, dict[str, Any]]:
    """Run the monitor on a pty; its CPU seconds, wall seconds and terminal bytes while measured."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", url, str(result_file)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    drained = [0]

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the monitor closed its terminal
                return
            if not chunk:
                return
            drained[0] += len(chunk)

    threading.Thread(target=drain, daemon=True).start()
    try:
        time.sleep(args.warmup)
        cpu0, wall0, bytes0 = cpu_seconds(proc.pid), time.monotonic(), drained[0]
        time.sleep(args.seconds)
        cpu1, wall1, bytes1 = cpu_seconds(proc.pid), time.monotonic(), drained[0]
        os.write(master, b"q")
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        os.close(master)
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    return cpu1 - cpu0, wall1 - wall0, bytes1 - bytes0, result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--size", default="120x40", help="terminal COLSxROWS")
    parser.add_argument("--child", nargs=2, metavar=("URL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0

    cols, rows = (int(v) for v in args.size.split("x"))
    site = SyntheticSite(args.nodes, args.chunks)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    port_box: list[int] = []
    server = threading.Thread(
        target=loop.run_until_complete, args=(serve_feed(site, ready, port_box, stop),), daemon=True
    )
    server.start()
    if not ready.wait(10):
        raise SystemExit("feed server did not start")
    url = f"http://127.0.0.1:{port_box[0]}"

    try:
        with tempfile.TemporaryDirectory() as tmp:
            cpu_s, wall_s, out_bytes, result = run_monitor(url, Path(tmp) / "monitor.json", args, cols, rows)
    finally:
        loop.call_soon_threadsafe(stop.set)
        server.join(timeout=10)
    elapsed = wall_s
    cpu_pct = 100.0 * cpu_s / elapsed
    redraws, ran_s = result.get("redraws", 0), result.get("ran_s", 1.0)
    print(f"monitor: {args.nodes} nodes x {args.chunks} chunks, terminal {cols}x{rows}, feed every {TICK_S}s")
    print(f"measured over {elapsed:.1f} s after {args.warmup:.0f} s warm-up")
    print(f"CPU: {cpu_pct:.1f} % of one core  (goal < 15 %)")
    print(f"redraws: {redraws / ran_s:.2f} per second over the monitor's {ran_s:.0f} s run  (goal >= 2)")
    print(f"terminal output: {out_bytes / elapsed / 1024:.1f} KiB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
