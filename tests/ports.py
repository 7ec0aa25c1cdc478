"""Ports chosen ahead for tests and benchmarks: ports a site tree names before any role listens.

Such a port is taken from below the kernel's ephemeral range, so no outgoing connection on this
machine is ever given it as a source port between the choice and the listen (a port the kernel
handed out for binding port 0 is one it may hand to the next `connect` as well). A random start
keeps two runs on one machine apart; each candidate is checked free on every address given."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOW = 10_000                                   # above the registered services most machines run


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768                           # the Linux default


def _free(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def free_ports(count: int, addresses: tuple[str, ...] = ("127.0.0.1",)) -> list[int]:
    """`count` consecutive ports, each free on every one of `addresses` and outside the ephemeral range."""
    high = _ephemeral_start() - count
    if high <= _LOW:
        raise RuntimeError(f"no room below the ephemeral port range ({high + count}) for {count} ports")
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(_LOW, high)
        ports = list(range(base, base + count))
        if all(_free(a, p) for a in addresses for p in ports):
            return ports
    raise RuntimeError(f"no {count} free consecutive ports on {', '.join(addresses)} after 200 tries")


def free_port(*addresses: str) -> int:
    """One port free on every address given (127.0.0.1 when none), outside the ephemeral range."""
    return free_ports(1, addresses or ("127.0.0.1",))[0]
