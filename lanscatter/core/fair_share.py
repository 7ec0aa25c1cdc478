"""Max-min fair rates for transfers that share links (pure).

Every transfer crosses some finite links (its source's upload port, a site LAN, WAN hops, its
destination's download port) and may have a cap of its own. Progressive filling: all rates rise
together; a link that runs full freezes the transfers crossing it at their current rate, a cap
freezes its transfer, and the rest rise on. No link ends up above its capacity, and no transfer
could go faster without slowing one that is no faster than it.

The planner uses this to tell each source how fast to send each upload, so that the transfers into
one port never add up to more than the port carries: a port fed beyond its rate keeps a standing
queue, and every packet through it (among them the acknowledgements of the host's own uploads)
waits in that queue.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from heapq import heapify, heappop, heappush
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def fair_rates(flows: Iterable[tuple[K, tuple[str, ...], float | None]],
               capacity: Mapping[str, float]) -> dict[K, float]:
    """Rates for `flows` (key, links crossed, own cap or None), in capacity's units.

    Links absent from `capacity` (or infinite) do not limit; a flow limited by nothing gets inf."""
    users: dict[str, list[K]] = {}
    links_of: dict[K, tuple[str, ...]] = {}
    caps: list[tuple[float, int, K]] = []
    for n, (key, links, cap) in enumerate(flows):
        finite = tuple(name for name in links if math.isfinite(capacity.get(name, math.inf)))
        links_of[key] = finite
        for name in finite:
            users.setdefault(name, []).append(key)
        if cap is not None and math.isfinite(cap):
            caps.append((max(0.0, cap), n, key))
    left = {name: float(capacity[name]) for name in users}
    count = {name: len(keys) for name, keys in users.items()}
    # (share a link would give each of its unfrozen flows, link): shares only grow as flows freeze
    # (a frozen flow took at most the link's share), so stale entries are skipped when popped
    heap = [(left[name] / count[name], name) for name in users]
    heapify(heap)
    heapify(caps)
    rates: dict[K, float] = {}

    def freeze(key: K, rate: float) -> None:
        rates[key] = rate
        for name in links_of[key]:
            left[name] = max(0.0, left[name] - rate)
            count[name] -= 1
            if count[name]:
                heappush(heap, (left[name] / count[name], name))

    while heap or caps:
        while heap and (not count[heap[0][1]] or heap[0][0] != left[heap[0][1]] / count[heap[0][1]]):
            heappop(heap)                      # stale: the link's share changed since
        while caps and caps[0][2] in rates:
            heappop(caps)                      # frozen by a link already
        if caps and (not heap or caps[0][0] <= heap[0][0]):
            cap, _, key = heappop(caps)
            freeze(key, cap)
            continue
        if not heap:
            break
        share, name = heappop(heap)
        for key in users[name]:
            if key not in rates:
                freeze(key, share)
    for key in links_of:
        rates.setdefault(key, math.inf)
    return rates
