"""Pacing a node's uploads: the kernel paces each upload's socket, and rates that several uploads
share are re-shared whenever one of them starts or ends or the planner changes a rate.

An upload may have a rate of its own: the planner's fair share of the ports its transfer crosses,
given in the request and changed later by transfer id (`set_rates`, from the master's Rates
messages), or from older masters the share of a finite site LAN. It may belong to a group: a WAN
link whose transfers all come from this node (the planner lets one source at a time use a WAN
link), to be kept at the link's rate in all. The node's own upload limit covers all its uploads,
shared max-min fair: an upload held below its share by its own rate leaves the rest to the others.
So when one upload ends the others take its share at once, and the last transfer of a sync gets the
whole link.

Kernel pacing (SO_MAX_PACING_RATE) spaces packets evenly, with no idle gaps that would send TCP
back to slow start; where it is missing (not Linux) the caller falls back to token buckets.
Limits are rates on the wire, where every segment also carries IP and link headers that socket
pacing does not count: sockets are paced at WIRE_SHARE of the limit, so the link's queue does
not grow until it drops packets (measured on an emulated 40 Mbit/s link paced at exactly its
rate: 889 drops in 25 s, and TCP's window never recovered to the link's rate).
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from lanscatter.core.fair_share import fair_rates
from lanscatter.core.protocol import MAX_RATE
from lanscatter.net.congestion import unpaced_default, wan_congestion

_SO_MAX_PACING_RATE = getattr(socket, "SO_MAX_PACING_RATE", 47)   # Linux
_UNLIMITED = 0xFFFFFFFFFFFFFFFF
_GROUP_MAX = 255
_TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)     # Linux
_UNSENT_S, _MIN_UNSENT, _MAX_UNSENT = 0.05, 64 * 1024, 4 * 2**20
WIRE_SHARE = 0.95   # pacing counts about the payload: 1448 B of a 1500 B IP packet, 1514 B frame


@dataclass(frozen=True, slots=True)
class Pace:
    """What the planner asks the source of one transfer to keep (bytes/s; None: no such limit)."""

    rate: float | None = None
    group: str | None = None
    group_rate: float | None = None
    transfer: int | None = None     # the planner's id: later rates for this upload name it

    def query(self) -> str:
        """As the chunk request's query string ("" when there is nothing to keep)."""
        q: dict[str, str] = {}
        if self.rate:
            q["rate"] = f"{self.rate:.0f}"
        if self.group and self.group_rate:
            q["group"] = self.group
            q["group_rate"] = f"{self.group_rate:.0f}"
        if self.transfer is not None:
            q["t"] = str(self.transfer)
        return "?" + urlencode(q) if q else ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Pace:
        """The pace a chunk request asks for; ValueError when a value is malformed or out of
        range (the request is refused, never half obeyed)."""
        rate, group_rate = _rate(query.get("rate")), _rate(query.get("group_rate"))
        group = query.get("group") or None
        if group is not None and len(group) > _GROUP_MAX:
            raise ValueError(f"group name longer than {_GROUP_MAX} characters")
        t = query.get("t")
        if t is not None and not (t.isascii() and t.isdecimal() and len(t) <= 16):
            raise ValueError("transfer id is not a number")
        return cls(rate, group if group_rate else None, group_rate if group else None,
                   int(t) if t is not None else None)


@dataclass(slots=True)
class _Upload:
    sock: Any
    pace: Pace
    rate: float | None              # the planner's latest rate for it (the request's, then Rates messages)
    paced: float | None = None      # what the socket is paced at now (None: unpaced)


_EARLY_RATES = 256      # rates for transfers whose request has not come yet (the message was faster)
_WITHDRAWN = 1024       # transfers cut, remembered so that a request still to come is refused


class UploadPacer:
    """The uploads under way on one chunk server and the limits they share."""

    def __init__(self, limit: float | None = None) -> None:
        self.limit = limit if limit and limit > 0 else None
        self._uploads: dict[int, _Upload] = {}       # by socket id
        self._early: dict[int, float] = {}           # transfer id -> rate, for requests still to come
        self._withdrawn: dict[int, None] = {}        # transfer ids cut (oldest first)

    def add(self, sock: Any, pace: Pace) -> bool:
        """Pace a new upload and re-share the rates; False when the kernel cannot pace it."""
        rate = self._early.pop(pace.transfer, pace.rate) if pace.transfer is not None else pace.rate
        up = self._uploads[id(sock)] = _Upload(sock, pace, rate)
        paced = self._rates()[id(sock)]
        # Always set: a kept-alive socket still carries its previous upload's pace.
        try:
            kernel_paces = set_pacing(sock, paced)
        except BaseException:
            del self._uploads[id(sock)]
            raise
        if not kernel_paces:
            del self._uploads[id(sock)]
            return False
        up.paced = paced
        if pace.group is not None:
            wan_congestion(sock)        # (congestion.py; a pipe's first request is a WAN upload)
        elif rate is None:
            unpaced_default(sock)
        self._reshare()
        return True

    def remove(self, sock: Any) -> None:
        """The upload on `sock` was handed to the kernel: re-share its rates among the others.

        The socket keeps its pace (its last bytes are still queued in it; unpaced, they would
        burst into the link's queue) until its next upload, if any, sets a new one."""
        if self._uploads.pop(id(sock), None) is not None:
            self._reshare()

    def cut(self, transfers: Collection[int]) -> int:
        """Stop the uploads of these transfers now (the planner withdrew them: their downloader
        left): each one's socket is shut, so its request ends in an error on both sides and what
        it would still send does not take the link. A request for one of them that has not come
        yet (a downloader frozen, not gone) is refused when it comes (`withdrawn`). Returns how
        many were under way."""
        for transfer in transfers:
            self._withdrawn[transfer] = None
            self._early.pop(transfer, None)
        while len(self._withdrawn) > _WITHDRAWN:
            del self._withdrawn[next(iter(self._withdrawn))]
        cut = [up for up in self._uploads.values() if up.pace.transfer in transfers]
        for up in cut:
            del self._uploads[id(up.sock)]
            with contextlib.suppress(OSError):      # the peer may have closed it already
                up.sock.shutdown(socket.SHUT_RDWR)
        if cut:
            self._reshare()
        return len(cut)

    def withdrawn(self, transfer: int | None) -> bool:
        """Whether the planner withdrew this transfer (its request is refused, not served)."""
        return transfer is not None and transfer in self._withdrawn

    def set_rates(self, rates: Mapping[int, float]) -> None:
        """New rates from the planner, by transfer id (its share of the ports it crosses changed)."""
        by_transfer = {up.pace.transfer: up for up in self._uploads.values() if up.pace.transfer is not None}
        for transfer, rate in rates.items():
            if not 0 < rate <= MAX_RATE:
                continue                # nonsense is ignored rather than obeyed
            up = by_transfer.get(transfer)
            if up is not None:
                up.rate = rate
            else:
                self._early[transfer] = rate
                if len(self._early) > _EARLY_RATES:
                    del self._early[next(iter(self._early))]
        self._reshare()

    def rate_of(self, sock: Any) -> float | None:
        """The rate this upload is paced at now (None: unpaced); for tests and status."""
        return self._rates().get(id(sock)) if id(sock) in self._uploads else None

    def _rates(self) -> dict[int, float | None]:
        """Each upload's pace: its rate and its group's share, and together no more than the
        node's limit (shared max-min fair: an upload held lower leaves the rest to the others)."""
        want: dict[int, float] = {}
        groups: dict[str, int] = {}
        for up in self._uploads.values():
            if up.pace.group is not None and up.pace.group_rate:
                groups[up.pace.group] = groups.get(up.pace.group, 0) + 1
        for key, up in self._uploads.items():
            rate = up.rate or math.inf
            if up.pace.group is not None and up.pace.group_rate:
                rate = min(rate, up.pace.group_rate / groups[up.pace.group])
            want[key] = rate
        if self.limit is not None:
            want = fair_rates(((k, ("up",), w) for k, w in want.items()), {"up": self.limit})
        return {k: None if w == math.inf else w * WIRE_SHARE for k, w in want.items()}

    def _reshare(self) -> None:
        rates = self._rates()
        for key, up in self._uploads.items():
            if rates[key] != up.paced:
                set_pacing(up.sock, rates[key])
                up.paced = rates[key]


def set_pacing(sock: Any, rate: float | None) -> bool:
    """Ask the kernel to pace this socket at `rate` bytes/s (None: unlimited again).

    A paced socket also keeps little unsent data (TCP_NOTSENT_LOWAT, about 50 ms of its rate):
    an upload counts as done once its data is in the socket, and what it leaves queued there
    keeps going at the old pace while the others speed up, so that tail must stay short."""
    if sys.platform != "linux":
        return False
    value = min(max(1, int(rate)), _UNLIMITED - 1) if rate else _UNLIMITED
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


def _rate(value: str | None) -> float | None:
    """A rate from a query string: None when absent, else a number in (0, MAX_RATE]."""
    if value is None:
        return None
    if len(value) > 32:
        raise ValueError("rate too long")
    rate = float(value)
    if not 0 < rate <= MAX_RATE:       # (NaN fails this too)
        raise ValueError(f"rate out of range: {value}")
    return rate
