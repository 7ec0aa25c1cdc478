"""The simulator's inputs and outputs as plain values: options in, figures out.

Efficiency = ideal / makespan (makespan = when the last host holds every chunk); the ideal is
`lanscatter.core.ideal.ideal_time` on the whole tree's links (the bound `up` and `emulate` report too).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lanscatter.core.linkmap import Link

HUB = "hub"
MIB = 1 << 20


def site_names(sites: int) -> list[str]:
    """The hub (holding the origin) first, then one branch per further site."""
    return [HUB, *(f"b{i}" for i in range(1, sites))]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class SimConfig:
    nodes: int = 30                       # peers, spread evenly over the sites (origin and relays extra)
    chunks: int = 200
    chunk_size: int = 16 * MIB
    sites: int = 1                        # 1 = one LAN; more = a hub plus branches behind WAN links
    host_rate: float = 125e6              # bytes/s each host's up- and downlink (1 Gbit/s)
    wan_rates: tuple[float, ...] = (12.5e6,)   # bytes/s per branch WAN link and direction, cycled
    switch_rate: float | None = None      # bytes/s each site's transfers share; None = ports only
    slow_fraction: float = 0.0            # share of peers whose upload is `slowdown` times slower
    slowdown: float = 20.0
    fail_rate: float = 0.0                # share of transfers that break midway
    churn: float = 0.0                    # share of peers that leave once and rejoin later
    seed: int = 1
    dl_slots: int = 2
    ul_slots: int = 2
    relay_dl_slots: int = 4               # parallel WAN downloads of a relay
    min_timeout_s: float = 1.0
    plan_interval_s: float = 0.5          # the engine plans at least this often
    # what arranging a transfer costs the hosts beyond the WAN delays it crosses (the master's plan,
    # each end's handling of the messages, the request): the time a released slot has to hide
    arrange_s: float = 0.003
    # what each transfer costs its site's master (messages, planning, sharing), served one after
    # another: a site asking more than 1 / master_transfer_s transfers a second waits for its master
    # (0: the master is free and instant, as the sessions alone are)
    master_transfer_s: float = 0.0
    release: bool = True                  # peers say Ending before a download's last bytes, as the
                                          # engine's do (False: a slot is held to the transfer's end)
    max_ideal_multiple: float = 50.0      # give up (incomplete) after this many ideal times

    def wan_rate(self, branch: int) -> float:
        return self.wan_rates[(branch - 1) % len(self.wan_rates)]


@dataclass(frozen=True, slots=True)
class SimHost:
    name: str
    site: str
    role: str                             # "master" (the origin), "relay" (a site's gateway) or "peer"
    up_rate: float                        # bytes/s, as the link map states it
    down_rate: float
    slots: int | None = None              # transfers at once each way (None: the config's)


@dataclass(frozen=True, slots=True)
class SimTopology:
    """The simulated tree: sites (root first), hosts (their ports), the shared links (switches, WANs)."""

    sites: tuple[tuple[str, str | None], ...]     # (site, parent site)
    hosts: tuple[SimHost, ...]
    links: Mapping[str, Link]                     # "switch:<site>", "wan:<a>><b>", bytes/s

    def parent(self, site: str) -> str | None:
        return dict(self.sites)[site]


def star_topology(cfg: SimConfig) -> SimTopology:
    """A hub site with the origin and its share of the peers, plus one branch per further site,
    each behind its own WAN link and fed by its relay."""
    names = site_names(cfg.sites)
    rate = cfg.host_rate
    hosts = [SimHost("origin", HUB, "master", rate, rate)]
    hosts += [SimHost(f"relay-{s}", s, "relay", rate, rate) for s in names[1:]]
    hosts += [SimHost(f"{names[i % len(names)]}-{i:04d}", names[i % len(names)], "peer", rate, rate)
              for i in range(cfg.nodes)]
    links = {}
    for k, site in enumerate(names[1:], start=1):
        for a, b in ((HUB, site), (site, HUB)):
            links[f"wan:{a}>{b}"] = Link(f"wan:{a}>{b}", cfg.wan_rate(k))
    if cfg.switch_rate:
        links.update({f"switch:{s}": Link(f"switch:{s}", cfg.switch_rate) for s in names})
    sites = tuple((s, None if s == HUB else HUB) for s in names)
    return SimTopology(sites=sites, hosts=tuple(hosts), links=links)


@dataclass(frozen=True, slots=True)
class SiteFigures:
    p50: float
    p99: float
    last: float


@dataclass(frozen=True, slots=True)
class SimResult:
    makespan: float                       # inf when the run did not complete
    ideal: float
    efficiency: float
    ideal_limit: str                      # what binds the ideal (a link, or "uploads:<site>")
    complete: bool
    sites: Mapping[str, SiteFigures]
    wan_bytes: Mapping[str, float]        # bytes sent over each WAN link (failed attempts included)
    wan_wasted: Mapping[str, float]       # of which sent by attempts that failed, timed out or were dropped
    dataset_bytes: int
    transfers: int
    failures: int
    expired: int

    def wan_ratio(self, link: str) -> float:
        return self.wan_bytes[link] / self.dataset_bytes if self.dataset_bytes else 0.0

    def to_dict(self) -> dict[str, object]:
        def num(x: float) -> float | None:
            return round(x, 6) if math.isfinite(x) else None

        return {
            "makespan": num(self.makespan),
            "ideal": num(self.ideal),
            "ideal_limit": self.ideal_limit,
            "efficiency": round(self.efficiency, 6),
            "complete": self.complete,
            "sites": {s: {"p50": num(f.p50), "p99": num(f.p99), "last": num(f.last)}
                      for s, f in self.sites.items()},
            "wan_links": {w: {"bytes": int(b), "ratio": round(self.wan_ratio(w), 6),
                              "retried_bytes": int(self.wan_wasted[w])}
                          for w, b in self.wan_bytes.items()},
            "dataset_bytes": self.dataset_bytes,
            "transfers": self.transfers,
            "failures": self.failures,
            "expired": self.expired,
        }
