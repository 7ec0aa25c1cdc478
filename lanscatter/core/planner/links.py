"""Link booking for the planner: which finite links a transfer crosses and how much rate is left.

Pure. Every in-flight transfer books its rate cap on each finite-capacity link of its path; a new
transfer gets at most what is left, so no link is ever booked beyond its capacity. A WAN link is
held by one source at a time (every transfer on it comes from that source until it is idle), so
that source can pace the link's transfers together: one of them ending leaves its rate to the
others instead of idling the link while the next is arranged. How what is
left is split (among a host's free slots, among a round's new transfers on a shared link) is the
planner's policy. Links with infinite capacity, or absent from the map, are not tracked at all.
"""

from __future__ import annotations

import math

from lanscatter.core.linkmap import LinkMap


class LinkBook:
    __slots__ = ("_middle", "booked", "capacity", "holder", "map", "wan")

    def __init__(self, links: LinkMap | None) -> None:
        self.map = links if links is not None else LinkMap()
        self.capacity: dict[str, float] = {
            name: link.bytes_per_s for name, link in self.map.links.items() if math.isfinite(link.bytes_per_s)
        }
        self.booked: dict[str, float] = dict.fromkeys(self.capacity, 0.0)
        self.wan = frozenset(name for name in self.capacity if self.map.links[name].is_wan)
        self._middle: dict[tuple[str, str], tuple[str, ...]] = {}
        self.holder: dict[str, tuple[str, int]] = {}     # WAN link -> (its source, transfers)

    def host_links(self, node: str) -> tuple[str | None, str | None]:
        up, down = f"up:{node}", f"down:{node}"
        return (up if up in self.capacity else None, down if down in self.capacity else None)

    def middle(self, sa: str | None, sb: str | None) -> tuple[str, ...]:
        """Finite shared links between two sites (switches and WAN hops), as LinkMap.path orders them."""
        if sa is None or sb is None:
            return ()
        key = (sa, sb)
        cached = self._middle.get(key)
        if cached is None:
            names = [f"switch:{sa}"] + [f"wan:{x}>{y}" for x, y in self.map.site_route(sa, sb)]
            if sb != sa:
                names.append(f"switch:{sb}")
            cached = tuple(n for n in names if n in self.capacity)
            self._middle[key] = cached
        return cached

    def left(self, name: str) -> float:
        """Rate not yet booked on this link."""
        left = self.capacity[name] - self.booked[name]
        return left if left > 0.0 else 0.0    # noqa: FURB136 (no call: this runs per transfer)

    def held_by_other(self, name: str, source: str) -> bool:
        """Whether WAN link `name` carries transfers from a source other than `source`."""
        h = self.holder.get(name)
        return h is not None and h[0] != source

    def book(self, names: tuple[str, ...], rate: float, source: str) -> None:
        wan, holder = self.wan, self.holder
        for n in names:
            self.booked[n] += rate
            if n in wan:
                h = holder.get(n)
                holder[n] = (source, 1 if h is None else h[1] + 1)

    def release(self, names: tuple[str, ...], rate: float) -> None:
        wan, holder = self.wan, self.holder
        for n in names:
            left = self.booked[n] - rate
            # float drift must not leave a phantom booking on an idle link
            self.booked[n] = left if left > 1e-6 * self.capacity[n] else 0.0
            if n in wan:
                source, count = holder[n]
                if count > 1:
                    holder[n] = (source, count - 1)
                else:
                    del holder[n]
