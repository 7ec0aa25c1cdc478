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

A WAN link's uploads (pipelined, paced as a group at the link's rate) run under CUBIC while their
connection loses nothing, and under the system's default once it does. Under a pace cap, BBR's
gain cycle is cut above the cap but not below it, and its round-trip probes shrink the window
every ten seconds: on emulated 20-50 Mbit/s WAN links with BBR as the default, such uploads
carried 90-92.5 % of the link while busy, against 94-94.7 % under CUBIC (docs/benchmarks.md). A
loss-based control is what a lossy link punishes, though (a few lost packets in ten thousand hold
CUBIC well below 20 Mbit/s at an 80 ms round trip), and there the default (often BBR, chosen for
such links) is kept: the connection's retransmitted share is read at each of its uploads.

Uploads of a swarm that knows no link speeds (not paced at all) go back to the system's default
before their first byte: their links may be anything.
"""

from __future__ import annotations

import functools
import socket
import struct
import sys
from pathlib import Path
from typing import Any

_TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)          # Linux
PACED = b"reno"        # always built into Linux, and always allowed to unprivileged processes
WAN_CLEAN = b"cubic"   # a WAN link's uploads while their connection loses nothing
LOSSY_SHARE = 1e-4     # retransmitted segments per segment sent above which a connection is lossy
_TCP_INFO = getattr(socket, "TCP_INFO", 11)                      # Linux
_INFO_LEN = 140        # struct tcp_info up to tcpi_segs_out (Linux 4.2 on)
_TOTAL_RETRANS, _SEGS_OUT = 100, 136                             # their offsets in struct tcp_info
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


def retransmitted(sock: Any) -> tuple[int, int] | None:
    """(segments retransmitted, segments sent) over the connection's life (None: not known)."""
    if sys.platform != "linux":
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _INFO_LEN)
    except OSError:
        return None
    if len(info) < _INFO_LEN:
        return None
    (retrans,) = struct.unpack_from("I", info, _TOTAL_RETRANS)
    (sent,) = struct.unpack_from("I", info, _SEGS_OUT)
    return retrans, sent


def is_lossy(retrans: int, sent: int) -> bool:
    """More than one segment in ten thousand retransmitted (and more than one in all)."""
    return retrans > 1 and retrans > LOSSY_SHARE * sent


def wan_congestion(sock: Any) -> bool:
    """Put a WAN link's upload under CUBIC while its connection has lost nothing, else under the
    system's default (see the module's header); True when the setting changed."""
    counts = retransmitted(sock)
    if counts is not None and is_lossy(*counts):
        return unpaced_default(sock)
    if congestion_of(sock) in (None, WAN_CLEAN):
        return False
    return set_congestion(sock, WAN_CLEAN) or unpaced_default(sock)    # CUBIC not allowed here
