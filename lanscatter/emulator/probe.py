"""Small measuring tools run inside emulated hosts: TCP throughput, UDP round trips and loss.

Each tool is a subcommand of `python -m lanscatter.emulator.probe`; servers print `ready <port>`
once bound (port 0, so never a fixed port), results are one JSON line on stdout. `start` and
`finish` run them through an `Emulation` with bounded waits. Tests and benchmarks use them; they
only talk to the address they are given, which is always inside the emulation.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lanscatter.emulator.netns import Emulation

_BLOCK = 64 * 1024
_SAMPLE_S = 0.1
_PING = struct.Struct("!Id")       # sequence number, send time


def tcp_sink(bind: str, seconds: float) -> dict[str, Any]:
    """Accept one connection; read until EOF or `seconds`; cumulative bytes every 0.1 s."""
    with socket.create_server((bind, 0)) as server:
        print(f"ready {server.getsockname()[1]}", flush=True)
        server.settimeout(seconds)
        conn, _ = server.accept()
    with conn:
        start = time.monotonic()
        conn.settimeout(max(0.1, seconds))
        total, series, next_sample = 0, [[0.0, 0]], start + _SAMPLE_S
        while (now := time.monotonic()) - start < seconds:
            data = conn.recv(_BLOCK)
            if not data:
                break
            total += len(data)
            if now >= next_sample:
                series.append([round(now - start, 4), total])
                next_sample = now + _SAMPLE_S
        series.append([round(time.monotonic() - start, 4), total])
    return {"bytes": total, "series": series}


def tcp_send(host: str, port: int, seconds: float) -> dict[str, Any]:
    """Send zeros to host:port for `seconds`."""
    block = bytes(_BLOCK)
    sent = 0
    with socket.create_connection((host, port), timeout=5) as conn:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sent += conn.send(block)
    return {"bytes": sent}


def udp_echo(bind: str, seconds: float) -> dict[str, Any]:
    """Send every datagram back to its sender, for `seconds`."""
    echoed = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((bind, 0))
        print(f"ready {sock.getsockname()[1]}", flush=True)
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, peer = sock.recvfrom(2048)
            except TimeoutError:
                break
            sock.sendto(data, peer)
            echoed += 1
    return {"echoed": echoed}


def udp_ping(host: str, port: int, count: int, interval: float, size: int) -> dict[str, Any]:
    """Send `count` numbered datagrams; report replies and their round-trip times (ms)."""
    rtts: dict[int, float] = {}
    pad = bytes(max(0, size - _PING.size))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, selectors.DefaultSelector() as sel:
        sock.connect((host, port))
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        start = time.monotonic()
        sent = 0
        end = start + count * interval + 1.0       # one extra second for the last replies
        while (now := time.monotonic()) < end:
            next_send = start + sent * interval if sent < count else end
            if now >= next_send:
                sock.send(_PING.pack(sent, now) + pad)
                sent += 1
                continue
            if sel.select(next_send - now):
                data = sock.recv(2048)
                seq, t_sent = _PING.unpack_from(data)
                rtts[seq] = (time.monotonic() - t_sent) * 1000
    return {"sent": sent, "received": len(rtts), "rtt_ms": sorted(rtts.values())}


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lanscatter.emulator.probe")
    sub = p.add_subparsers(dest="tool", required=True)
    for name in ("tcp-sink", "udp-echo"):
        s = sub.add_parser(name)
        s.add_argument("--bind", required=True)
        s.add_argument("--seconds", type=float, default=10.0)
    s = sub.add_parser("tcp-send")
    s.add_argument("--to", required=True, help="HOST:PORT")
    s.add_argument("--seconds", type=float, default=3.0)
    s = sub.add_parser("udp-ping")
    s.add_argument("--to", required=True, help="HOST:PORT")
    s.add_argument("--count", type=int, default=20)
    s.add_argument("--interval", type=float, default=0.01)
    s.add_argument("--size", type=int, default=64)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.tool == "tcp-sink":
        result = tcp_sink(args.bind, args.seconds)
    elif args.tool == "udp-echo":
        result = udp_echo(args.bind, args.seconds)
    else:
        host, port = args.to.rsplit(":", 1)
        if args.tool == "tcp-send":
            result = tcp_send(host, int(port), args.seconds)
        else:
            result = udp_ping(host, int(port), args.count, args.interval, args.size)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


# -- driving the tools from outside the namespaces -------------------------------------------------


def start(emu: Emulation, host: str, *args: str) -> subprocess.Popen[str]:
    """Run a probe tool in `host`'s namespace, its stdout piped."""
    argv = [sys.executable, "-m", "lanscatter.emulator.probe", *args]
    return emu.exec(host, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(proc: subprocess.Popen[str], timeout: float = 10.0) -> int:
    """The port a server tool announced; raises RuntimeError if it did not within `timeout`."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if sel.select(timeout):
            words = proc.stdout.readline().split()
            if len(words) == 2 and words[0] == "ready":
                return int(words[1])
    raise RuntimeError(f"probe did not get ready: {proc.args!r}")


def finish(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The JSON result of a tool, waiting at most `timeout` seconds."""
    out, err = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"probe failed ({proc.returncode}): {err.strip()[-500:]}")
    return json.loads(lines[-1])


def throughput_bytes_per_s(series: Sequence[Sequence[float]], skip_s: float) -> float:
    """Rate over a sink's series after its first `skip_s` seconds (slow start left out)."""
    t0, b0 = next(((t, b) for t, b in series if t >= skip_s), series[-1])
    t1, b1 = series[-1]
    return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
