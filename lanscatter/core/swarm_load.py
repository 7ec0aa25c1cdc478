"""How large chunks must be for a master to keep up with its site (pure, no I/O).

A master decides every copy inside its site: each transfer is a Download out, a Receiving, an
Ending and a Report in (sealed frames), a planning round, and the fair rates re-shared and sent to
the sources. A site receives at most the sum of its hosts' download ports (or its switch, where
it names one), so its master starts that many bytes / chunk size transfers a second. At the size
rule's chunks a fast site asks more than one core can give: 1 MiB chunks on 40 hosts with 1 Gbit/s
ports are some 4,600 transfers a second, and `benchmarks/master_cpu.py` put the master's need
at 2.2 cores; 4 MiB chunks of 10 GiB on 200 hosts with 10 Gbit/s ports would be 60,000 a second.
The master, not the network, would set the pace, by a multiple, where a larger chunk costs a few
per cent of the tail. The budget is three quarters of what a master gives at 300 µs a transfer
(`benchmarks/master_cpu.py` at 200 hosts); simulated with that cost (`simulate --master-us`), the
chunks it picks do about as well as the best size from 150 to 480 µs (docs/benchmarks.md).
`chunk_floor` is the chunk size that keeps the busiest site of a tree at `MASTER_TRANSFERS_S`;
`auto_chunk_size` (chunking.py) picks no smaller one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from lanscatter.core.linkmap import LinkMap

MASTER_TRANSFERS_S = 2_500      # three quarters of what one core gives at 300 µs a transfer


@dataclass(frozen=True, slots=True)
class SiteLoad:
    site: str
    bytes_per_s: float          # what the site's hosts can receive at once

    def transfers_s(self, chunk_size: int) -> float:
        return self.bytes_per_s / chunk_size


def busiest_site(link_map: LinkMap | None) -> SiteLoad | None:
    """The site whose hosts can receive the most at once: the sum of their download ports
    (`down:<host>`), no more than its `switch:<site>`. None when no port has a known speed."""
    if link_map is None:
        return None
    ports: dict[str, float] = defaultdict(float)
    for node, site in link_map.node_site.items():
        link = link_map.links.get(f"down:{node}")
        if link is not None and math.isfinite(link.bytes_per_s):
            ports[site] += link.bytes_per_s
    loads = []
    for site, total in ports.items():
        switch = link_map.links.get(f"switch:{site}")
        loads.append(SiteLoad(site, min(total, switch.bytes_per_s) if switch is not None else total))
    return max(loads, key=lambda s: s.bytes_per_s, default=None)


def chunk_floor(link_map: LinkMap | None) -> int:
    """Bytes: the smallest chunk size at which the busiest site's master starts no more than
    MASTER_TRANSFERS_S transfers a second (0: no site with known port speeds)."""
    busiest = busiest_site(link_map)
    return math.ceil(busiest.bytes_per_s / MASTER_TRANSFERS_S) if busiest is not None else 0
