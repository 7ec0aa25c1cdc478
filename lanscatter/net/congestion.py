"""Which TCP congestion control a node's uploads run under (Linux; elsewhere nothing changes).

Uploads inside a site are paced at the planner's fair shares (upload_pace.py): the pace, not the
congestion control, keeps a port's queue short, and it changes whenever a transfer starts or ends
on the ports an upload crosses. So an upload needs a congestion control that sends at whatever
pace it is given, at once. Reno does while it is in slow start, and with the pace keeping the
queues short and nothing dropped it never leaves slow start: its window stays at twice what is in
flight. Under BBR (the default where this was measured) such uploads carried about 90 % of their
pace on the emulated one-LAN tree; under CUBIC, the usual default, a sync took about 1 % longer
than under Reno in one pair of runs (docs/benchmarks.md). Reno is set on the listening socket, so
every connection it accepts has it from its first byte: one setting per node, and no connection
carries data under BBR first (BBR leaves a slow-start threshold of a few dozen packets, as `ss`
shows, which Reno would keep and start below).

Uploads the planner does not pace at a fair share go back to the system's default before their
first byte: a WAN link's (pipelined, paced as a group: long, lossy links are what BBR is for), and
those of a swarm that knows no link speeds, whose links may be anything.
"""

from __future__ import annotations

import functools
import socket
import sys
from pathlib import Path
from typing import Any

_TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)          # Linux
PACED = b"reno"        # always built into Linux, and always allowed to unprivileged processes
_NAME_MAX = 16         # TCP_CA_NAME_MAX
_DEFAULT_PATH = Path("/proc/sys/net/ipv4/tcp_congestion_control")


def congestion_of(sock: Any) -> bytes | None:
    """The socket's congestion control (None: not Linux, or not a TCP socket)."""
    if sys.platform != "linux":
        return None
    try:
        return bytes(sock.getsockopt(socket.IPPROTO_TCP, _TCP_CONGESTION, _NAME_MAX)).rstrip(b"\0")
    except OSError:
        return None


def set_congestion(sock: Any, name: bytes) -> bool:
    """Run the socket under `name`; False where that cannot be done (not Linux, not allowed)."""
    if sys.platform != "linux":
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_CONGESTION, name)
    except OSError:
        return False
    return True


def pace_from_birth(listener: Any) -> bool:
    """Give every connection `listener` accepts from now on the congestion control of paced
    uploads (Reno), from its first byte."""
    return set_congestion(listener, PACED)


@functools.cache
def system_default() -> bytes | None:
    """This network namespace's default congestion control (None: not known)."""
    try:
        return _DEFAULT_PATH.read_bytes().strip() or None
    except OSError:
        return None


def unpaced_default(sock: Any) -> bool:
    """Put an upload that is not paced at a fair share back under the system's default."""
    default = system_default()
    if default is None or congestion_of(sock) in (None, default):
        return False
    return set_congestion(sock, default)
