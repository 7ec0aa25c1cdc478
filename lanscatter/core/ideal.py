"""The ideal time of a sync: a lower bound no schedule can beat, from the link map alone. Pure.

`simulate`, `up`'s report and `emulate`'s report all measure efficiency = ideal / makespan with
this one function. The ideal is the largest of these times, each the bytes that must cross some
capacity divided by that capacity (`copy` is the bytes of one whole copy of the data set):

- every host but the origin receives a copy over every link of its path from the origin (the
  origin's port, switches and WAN hops on the way, its own port): copy / the path's narrowest link;
- a site's `switch:<site>` (where one is written) carries every byte its hosts receive (all of them
  but the origin; its relay's too, coming in from the parent site) and every byte its child sites'
  relays fetch from it: copy x those copies / capacity;
- a site's swarm is served by its own hosts' uploads only (a relay uploads nothing upstream): the
  copies its swarm's receivers take, over the sum of its hosts' upload ports. The receivers of a
  site's swarm are its hosts but the one fed from above (the origin, or the relay, which receives
  in its parent's swarm), plus the relay of each child site. Without compression no run can
be faster, so efficiency <= 1. Compression (LZ4 on chunks that shrink) carries fewer bytes than a
copy: where the bytes a copy takes on the wire are known, pass those as `copy`; where they are not,
`efficiency` clamps at 1 and says that it did, so a report never shows more than 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lanscatter.core.linkmap import LinkMap


@dataclass(frozen=True, slots=True)
class Ideal:
    seconds: float          # 0.0 when nothing limits (no finite link, or nothing to send)
    bytes_per_s: float      # the rate the binding limit delivers a copy at (inf when none)
    limit: str              # what binds: a link name, "uploads:<site>", or "" when nothing does


@dataclass(frozen=True, slots=True)
class Efficiency:
    value: float            # ideal / makespan, at most 1.0
    clamped: bool           # the run was faster than the ideal (compressed chunks): value is 1.0


def _cap(links: LinkMap, name: str) -> float:
    link = links.links.get(name)
    return link.bytes_per_s if link is not None else math.inf


def ideal_time(links: LinkMap, origin: str, copy: float) -> Ideal:
    """The ideal time for every host of `links.node_site` to hold `copy` bytes sent by `origin`."""
    # Each bound is copy / (a capacity / the copies that cross it): the smallest such rate binds.
    best = (math.inf, "")

    def need(rate: float, limit: str) -> None:
        nonlocal best
        if rate < best[0]:
            best = (rate, limit)

    hosts_of: dict[str, list[str]] = {}
    for host, site in links.node_site.items():
        hosts_of.setdefault(site, []).append(host)
    children: dict[str, int] = {}
    for site, parent in links.site_parent.items():
        if parent is not None and site in hosts_of:
            children[parent] = children.get(parent, 0) + 1
    for host in links.node_site:
        if host != origin:
            path = links.path(origin, host)
            narrowest = min(path, key=lambda n: _cap(links, n), default="")
            if narrowest:
                need(_cap(links, narrowest), narrowest)
    for site, hosts in hosts_of.items():
        below = children.get(site, 0)
        through = len(hosts) - (origin in hosts) + below       # copies crossing the site's switch
        if through > 0:
            need(_cap(links, f"switch:{site}") / through, f"switch:{site}")
        receivers = len(hosts) - 1 + below                     # copies the site's swarm serves
        if receivers > 0:
            need(math.fsum(_cap(links, f"up:{h}") for h in hosts) / receivers, f"uploads:{site}")
    rate, limit = best
    if copy <= 0 or not math.isfinite(rate):
        return Ideal(0.0, rate, limit if math.isfinite(rate) else "")
    return Ideal(copy / rate, rate, limit)


def efficiency(ideal_s: float, makespan_s: float) -> Efficiency:
    """ideal / makespan, clamped at 1 (and flagged) when the run beat the ideal."""
    if not (makespan_s > 0 and math.isfinite(makespan_s)):
        return Efficiency(0.0, False)
    raw = ideal_s / makespan_s
    return Efficiency(min(1.0, raw), raw > 1.0)
