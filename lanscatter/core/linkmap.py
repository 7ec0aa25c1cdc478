"""The link map: which network links a transfer between two nodes crosses, and their capacities.

Pure data, no I/O. Built by `lanscatter.topology.derive` from a site tree (or by hand in tests and
the simulator) and consumed by the planner, which never books a link beyond its capacity.

Link names are conventions, not parsed:
  "up:<node>" / "down:<node>"   a host's own port on its site's switch, each direction: the site's
                                `lan` speed, narrowed by the host's upload / download limit
  "switch:<site>"               a site's shared bottleneck (its `switch` fabric), booked as one
                                budget by every transfer that enters or leaves a host of the site;
                                absent on a plain switched LAN, where the ports are the limits
  "wan:<a>><b>"                 the WAN link from site a to site b (one per direction)
A node with no site (site None) is on a single implicit LAN; with no links at all every transfer
is unconstrained, which is what a plain single-LAN swarm gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    bytes_per_s: float          # capacity; float("inf") for an unshaped link
    latency_s: float = 0.0      # one-way delay, used to size the in-flight window on WANs

    @property
    def is_wan(self) -> bool:
        return self.name.startswith("wan:")


@dataclass(frozen=True, slots=True)
class LinkMap:
    """Capacities plus the site tree; `path(src, dst)` lists the links a transfer crosses."""

    links: Mapping[str, Link] = field(default_factory=dict)
    node_site: Mapping[str, str] = field(default_factory=dict)     # node name -> site name
    site_parent: Mapping[str, str | None] = field(default_factory=dict)  # site -> parent site

    def site_of(self, node: str) -> str | None:
        return self.node_site.get(node)

    def site_route(self, a: str, b: str) -> list[tuple[str, str]]:
        """Hops (from_site, to_site) along the tree from site a to site b."""
        if a == b:
            return []
        up_a = self._ancestors(a)
        up_b = self._ancestors(b)
        common = next(s for s in up_a if s in up_b)
        rise = up_a[: up_a.index(common) + 1]                 # a .. common
        fall = list(reversed(up_b[: up_b.index(common) + 1]))  # common .. b
        return list(pairwise(rise)) + list(pairwise(fall))

    def _ancestors(self, site: str) -> list[str]:
        chain = [site]
        seen = {site}
        while (parent := self.site_parent.get(chain[-1])) is not None:
            if parent in seen:
                raise ValueError(f"site tree has a cycle through {parent!r}")
            chain.append(parent)
            seen.add(parent)
        return chain

    def path(self, src: str, dst: str) -> tuple[str, ...]:
        """Names of the links (present in `links`) that a transfer src -> dst crosses."""
        names = [f"up:{src}"]
        sa, sb = self.site_of(src), self.site_of(dst)
        if sa is not None and sb is not None:
            names.append(f"switch:{sa}")
            for x, y in self.site_route(sa, sb):
                names.append(f"wan:{x}>{y}")
            if sb != sa:
                names.append(f"switch:{sb}")
        names.append(f"down:{dst}")
        return tuple(n for n in names if n in self.links)

    def crosses_wan(self, src: str, dst: str) -> bool:
        sa, sb = self.site_of(src), self.site_of(dst)
        return sa is not None and sb is not None and sa != sb
