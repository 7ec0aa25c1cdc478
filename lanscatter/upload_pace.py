"""Pacing a node's uploads: the kernel paces each upload's socket, and rates that several uploads
share are re-shared whenever one of them starts or ends.

An upload may have a cap of its own (the planner's share of a finite site LAN) and may belong to a
group: a WAN link whose transfers all come from this node (the planner lets one source at a time
use a WAN link), to be kept at the link's rate in all. The node's own upload limit covers all its
uploads. Each upload runs at min(its cap, node limit / uploads, group rate / uploads of its group),
so when one ends the others take its share at once: a link is not left idle while the next
transfer is being arranged, and the last transfer of a sync gets the whole link.

Kernel pacing (SO_MAX_PACING_RATE) spaces packets evenly, with no idle gaps that would send TCP
back to slow start; where it is missing (not Linux) the caller falls back to token buckets.
Limits are rates on the wire, where every segment also carries IP and link headers that socket
pacing does not count: sockets are paced at WIRE_SHARE of the limit, so the link's queue does
not grow until it drops packets (measured on an emulated 40 Mbit/s link paced at exactly its
rate: 889 drops in 25 s, and TCP's window never recovered to the link's rate).
"""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

_SO_MAX_PACING_RATE = getattr(socket, "SO_MAX_PACING_RATE", 47)   # Linux
_UNLIMITED = 0xFFFFFFFFFFFFFFFF
_TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)     # Linux
_UNSENT_S, _MIN_UNSENT, _MAX_UNSENT = 0.05, 64 * 1024, 4 * 2**20
WIRE_SHARE = 0.95   # pacing counts about the payload: 1448 B of a 1500 B IP packet, 1514 B frame


@dataclass(frozen=True, slots=True)
class Pace:
    """What the planner asks the source of one transfer to keep (bytes/s; None: no such limit)."""

    rate: float | None = None
    group: str | None = None
    group_rate: float | None = None

    def query(self) -> str:
        """As the chunk request's query string ("" when there is nothing to keep)."""
        q: dict[str, str] = {}
        if self.rate:
            q["rate"] = f"{self.rate:.0f}"
        if self.group and self.group_rate:
            q["group"] = self.group
            q["group_rate"] = f"{self.group_rate:.0f}"
        return "?" + urlencode(q) if q else ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Pace:
        group_rate = _positive(query.get("group_rate"))
        group = query.get("group") if group_rate else None
        return cls(_positive(query.get("rate")), group or None, group_rate if group else None)


@dataclass(slots=True)
class _Upload:
    sock: Any
    pace: Pace


class UploadPacer:
    """The uploads under way on one chunk server and the limits they share."""

    def __init__(self, limit: float | None = None) -> None:
        self.limit = limit if limit and limit > 0 else None
        self._uploads: dict[int, _Upload] = {}       # by socket id

    def add(self, sock: Any, pace: Pace) -> bool:
        """Pace a new upload and re-share its groups' rates; False when the kernel cannot pace it."""
        up = _Upload(sock, pace)
        self._uploads[id(sock)] = up
        # Always set: a kept-alive socket still carries its previous upload's pace.
        if not set_pacing(sock, self._rate(up)):
            del self._uploads[id(sock)]
            return False
        self._reshare(pace.group, skip=up)
        return True

    def remove(self, sock: Any) -> None:
        """The upload on `sock` was handed to the kernel: re-share its rates among the others.

        The socket keeps its pace (its last bytes are still queued in it; unpaced, they would
        burst into the link's queue) until its next upload, if any, sets a new one."""
        up = self._uploads.pop(id(sock), None)
        if up is not None:
            self._reshare(up.pace.group, skip=None)

    def rate_of(self, sock: Any) -> float | None:
        """The rate this upload is paced at now (None: unpaced); for tests and status."""
        up = self._uploads.get(id(sock))
        return None if up is None else self._rate(up)

    def _rate(self, up: _Upload) -> float | None:
        rate = up.pace.rate or float("inf")
        if self.limit is not None:
            rate = min(rate, self.limit / len(self._uploads))
        if up.pace.group is not None and up.pace.group_rate:
            members = sum(1 for u in self._uploads.values() if u.pace.group == up.pace.group)
            rate = min(rate, up.pace.group_rate / max(1, members))
        return None if rate == float("inf") else rate * WIRE_SHARE

    def _reshare(self, group: str | None, skip: _Upload | None) -> None:
        # The node limit concerns every upload; a group rate only the group's members.
        for up in list(self._uploads.values()):
            if up is skip or not (self.limit is not None or (group is not None and up.pace.group == group)):
                continue
            set_pacing(up.sock, self._rate(up))


def set_pacing(sock: Any, rate: float | None) -> bool:
    """Ask the kernel to pace this socket at `rate` bytes/s (None: unlimited again).

    A paced socket also keeps little unsent data (TCP_NOTSENT_LOWAT, about 50 ms of its rate):
    an upload counts as done once its data is in the socket, and what it leaves queued there
    keeps going at the old pace while the others speed up, so that tail must stay short."""
    if sys.platform != "linux":
        return False
    value = max(1, int(rate)) if rate else _UNLIMITED
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_MAX_PACING_RATE, struct.pack("=Q", value))
    except OSError:
        try:       # kernels before 64-bit pacing rates
            sock.setsockopt(socket.SOL_SOCKET, _SO_MAX_PACING_RATE, struct.pack("=I", min(value, 0xFFFFFFFF)))
        except OSError:
            return False
    lowat = 0 if not rate else min(_MAX_UNSENT, max(_MIN_UNSENT, int(rate * _UNSENT_S)))
    try:    # 0: the system default again
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, lowat)
    except OSError:
        pass
    return True


def _positive(value: str | None) -> float | None:
    try:
        rate = float(value) if value else None
    except ValueError:
        return None
    return rate if rate and rate > 0 and rate != float("inf") else None
