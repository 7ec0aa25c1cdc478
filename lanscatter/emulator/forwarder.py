"""The WAN forwarder: one process per delayed or lossy WAN link, for kernels without netem.

The link is two tun devices, one in each router's namespace (`up0` in the child's, `dn<k>` in the
parent's). Whatever a router routes into its tun device this process reads, passes through a
`DelayLine` (delay, loss) and writes into the other tun device, where it arrives as if received
from a cable. Rate shaping stays with tc on the tun devices (before the forwarder), so this
process only has to keep up with the shaped rate.

It runs inside the child router's namespace (so `ip netns pids` finds it when cleaning up) and
enters the parent's namespace only to attach the other tun device. It stops on SIGTERM or when the
process that started it dies, and prints its counters as one JSON line on stdout before it exits.

    python -m lanscatter.emulator.forwarder --local up0 --remote dn0 \
        --remote-netns /run/netns/lsc0-r.hq --delay 0.04 --loss 0.01
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import json
import os
import random
import select
import signal
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict

from lanscatter.emulator.delay_line import DelayLine

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_CLONE_NEWNET = 0x40000000
_READ_BATCH = 256          # packets read from one device before the other gets a turn
_MAX_PACKET = 65536
_IDLE_WAIT_S = 0.5         # poll wake-up when nothing is queued, to notice a stop or an orphaning


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):            # Python >= 3.12
        os.setns(fd, _CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _attach_here(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def attach_tun(name: str, netns_path: str | None = None) -> int:
    """A non-blocking fd on the existing tun device `name`, in this namespace or in `netns_path`.

    A tun fd belongs to the namespace it was opened in, so it keeps working after we switch back.
    """
    if netns_path is None:
        return _attach_here(name)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns_path, os.O_RDONLY)
    try:
        _setns(target)
        try:
            return _attach_here(name)
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


def _drain(src: int, line: DelayLine, now: float) -> None:
    for _ in range(_READ_BATCH):
        try:
            packet = os.read(src, _MAX_PACKET)
        except BlockingIOError:
            return
        line.offer(packet, now)


def _flush(dst: int, line: DelayLine, now: float) -> int:
    """Write the due packets; returns how many the device refused (link down, no buffer)."""
    refused = 0
    for packet in line.due(now):
        try:
            os.write(dst, packet)
        except OSError as exc:
            if exc.errno not in (errno.EIO, errno.EAGAIN, errno.ENOBUFS):
                raise
            refused += 1
    return refused


def forward(local: int, remote: int, outbound: DelayLine, inbound: DelayLine) -> dict[str, object]:
    """Move packets local->remote through `outbound` and back through `inbound` until SIGTERM."""
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    poller = select.epoll()
    poller.register(local, select.EPOLLIN)
    poller.register(remote, select.EPOLLIN)
    refused = 0
    parent = os.getppid()
    while not stopping and os.getppid() == parent:   # a dead builder leaves us to init: stop too
        deadlines = [d for d in (outbound.next_deadline(), inbound.next_deadline()) if d is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else _IDLE_WAIT_S
        events = poller.poll(timeout)   # retried by Python after a signal (PEP 475)
        now = time.monotonic()
        for fd, _mask in events:
            _drain(fd, outbound if fd == local else inbound, now)
        now = time.monotonic()
        refused += _flush(remote, outbound, now) + _flush(local, inbound, now)
    poller.close()
    return {"outbound": asdict(outbound.stats), "inbound": asdict(inbound.stats), "refused": refused}


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lanscatter.emulator.forwarder", description=__doc__)
    p.add_argument("--local", required=True, help="tun device in this namespace")
    p.add_argument("--remote", required=True, help="tun device in --remote-netns")
    p.add_argument("--remote-netns", required=True, help="path of the other namespace (/run/netns/NAME)")
    p.add_argument("--delay", type=float, default=0.0, help="one-way delay, seconds")
    p.add_argument("--loss", type=float, default=0.0, help="share of packets dropped, each direction")
    p.add_argument("--limit", type=int, default=10000, help="packets queued per direction at most")
    p.add_argument("--seed", type=int, default=0, help="seed of the loss decisions")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    local = attach_tun(args.local)
    remote = attach_tun(args.remote, args.remote_netns)
    outbound = DelayLine(args.delay, args.loss, args.limit, random.Random(args.seed))
    inbound = DelayLine(args.delay, args.loss, args.limit, random.Random(args.seed + 1))
    print("ready", flush=True)
    stats = forward(local, remote, outbound, inbound)
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
