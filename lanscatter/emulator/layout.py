"""Names, addresses and routes of an emulated site tree, derived from a `NetSpec`. Pure.

Rules (everything below is deterministic, so a crashed run's leftovers can be found by name):
  - namespaces are `lsc<tag>-h.<host>` per host and `lsc<tag>-r.<site>` per site router; names are
    reduced to [A-Za-z0-9_-] so they are safe as file names; all share the prefix `lsc<tag>-`.
  - interface names live inside those namespaces, so they are short and fixed (limit 15 chars):
    a host's port is `eth0`; a router has the bridge `br0`, a bridge port `p<j>` per host,
    `up0` towards its parent and `dn<k>` towards the child joined by WAN link k, and, for a site
    with a `switch` rate, the ifb device `sw0` that everything entering the router passes through.
  - shaping: each host's port at its rates, both ways (egress of `eth0` and of `p<j>`); a site's
    switch as one htb class on `sw0`, fed by the ingress of every host port and WAN end of its
    router, so all of the site's traffic shares it (`RouterNode.switch_ports`).
  - addresses come from 10.213.0.0/16 and exist only inside these namespaces: site i's LAN is
    10.213.<i+1>.0/24 (router .1, host j at .<10+j>), WAN link k is 10.213.255.<4k>/30 (parent .+1,
    child .+2).
  - routes cover 10.213.0.0/16 only: a host sends it to its router; a router sends its children's
    subtrees down their links and the rest up to its parent. Nothing else is routable, so no
    packet can leave the emulated tree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from lanscatter.core.errors import ConfigError
from lanscatter.emulator.spec import NetSpec, WanLink

SUPERNET = "10.213.0.0/16"
MAX_SITES = 254
MAX_HOSTS_PER_SITE = 240
MAX_WAN_LINKS = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class Route:
    destination: str    # CIDR
    via: str


@dataclass(frozen=True, slots=True)
class HostNode:
    name: str
    site: str
    namespace: str
    interface: str          # the host's end of its LAN cable
    router_port: str        # the router's (bridge) end of it
    address: str
    prefix_len: int
    gateway: str
    up_bytes_per_s: float
    down_bytes_per_s: float
    routes: tuple[Route, ...]


@dataclass(frozen=True, slots=True)
class RouterNode:
    site: str
    namespace: str
    bridge: str
    lan_address: str
    prefix_len: int
    routes: tuple[Route, ...]
    switch: str | None = None                 # the ifb device of the site's shared switch, if any
    switch_bytes_per_s: float | None = None
    switch_ports: tuple[str, ...] = ()        # the router's interfaces whose ingress it shapes


@dataclass(frozen=True, slots=True)
class WanHop:
    """One WAN link as built: its two router ends."""

    link: WanLink
    parent_namespace: str
    child_namespace: str
    parent_interface: str
    child_interface: str
    parent_address: str
    child_address: str
    prefix_len: int


@dataclass(frozen=True, slots=True)
class Layout:
    prefix: str                           # every namespace name starts with it
    hosts: Mapping[str, HostNode]
    routers: Mapping[str, RouterNode]
    wan: Mapping[str, WanHop]             # by WanLink.name

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Routers first (they hold the bridges the hosts plug into), then hosts."""
        return tuple(r.namespace for r in self.routers.values()) + tuple(
            h.namespace for h in self.hosts.values()
        )


def namespace_prefix(tag: str) -> str:
    return f"lsc{tag}-"


def safe_name(name: str) -> str:
    return _UNSAFE.sub("_", name)[:40]


def site_subnet(index: int) -> str:
    return f"10.213.{index + 1}.0/24"


def port_rate(lan: float, limit: float | None) -> float:
    """A host's port in one direction: the site's LAN rate, narrowed by the host's own limit."""
    return min(lan, limit) if limit is not None else lan


def plan(spec: NetSpec) -> Layout:
    """The layout of `spec`; raises ConfigError when it does not fit the address plan."""
    if len(spec.sites) > MAX_SITES or len(spec.wan_links) > MAX_WAN_LINKS:
        raise ConfigError(
            f"network spec: at most {MAX_SITES} sites and {MAX_WAN_LINKS} WAN links can be emulated"
        )
    prefix = namespace_prefix(spec.tag)
    site_index = {site.name: i for i, site in enumerate(spec.sites)}
    router_ns = {s.name: f"{prefix}r.{safe_name(s.name)}" for s in spec.sites}
    host_ns = {h.name: f"{prefix}h.{safe_name(h.name)}" for h in spec.hosts}
    if len(set(router_ns.values())) != len(router_ns) or len(set(host_ns.values())) != len(host_ns):
        raise ConfigError("network spec: two names differ only in characters outside A-Z a-z 0-9 _ -")

    wan: dict[str, WanHop] = {}
    for k, link in enumerate(spec.wan_links):
        base = 4 * k
        wan[link.name] = WanHop(
            link=link,
            parent_namespace=router_ns[link.parent],
            child_namespace=router_ns[link.child],
            parent_interface=f"dn{k}",
            child_interface="up0",
            parent_address=f"10.213.255.{base + 1}",
            child_address=f"10.213.255.{base + 2}",
            prefix_len=30,
        )
    hop_to_parent = {hop.link.child: hop for hop in wan.values()}

    routers: dict[str, RouterNode] = {}
    hosts: dict[str, HostNode] = {}
    for site in spec.sites:
        i = site_index[site.name]
        if len(site.hosts) > MAX_HOSTS_PER_SITE:
            raise ConfigError(f"network spec: site {site.name!r} has more than {MAX_HOSTS_PER_SITE} hosts")
        routes: list[Route] = []
        for child in spec.children(site.name):
            down = hop_to_parent[child]
            routes.extend(
                Route(site_subnet(site_index[s]), down.child_address) for s in spec.subtree(child)
            )
        if site.name in hop_to_parent:
            routes.append(Route(SUPERNET, hop_to_parent[site.name].parent_address))
        gateway = f"10.213.{i + 1}.1"
        ports = tuple(f"p{j}" for j in range(len(site.hosts)))
        ports += tuple(hop.parent_interface for hop in wan.values() if hop.link.parent == site.name)
        ports += tuple(hop.child_interface for hop in wan.values() if hop.link.child == site.name)
        shared = site.switch_bytes_per_s is not None
        routers[site.name] = RouterNode(
            site=site.name,
            namespace=router_ns[site.name],
            bridge="br0",
            lan_address=gateway,
            prefix_len=24,
            routes=tuple(routes),
            switch="sw0" if shared else None,
            switch_bytes_per_s=site.switch_bytes_per_s,
            switch_ports=ports if shared else (),
        )
        for j, host in enumerate(site.hosts):
            hosts[host.name] = HostNode(
                name=host.name,
                site=site.name,
                namespace=host_ns[host.name],
                interface="eth0",
                router_port=f"p{j}",
                address=f"10.213.{i + 1}.{10 + j}",
                prefix_len=24,
                gateway=gateway,
                up_bytes_per_s=port_rate(site.lan_bytes_per_s, host.up_bytes_per_s),
                down_bytes_per_s=port_rate(site.lan_bytes_per_s, host.down_bytes_per_s),
                routes=(Route(SUPERNET, gateway),),
            )
    return Layout(prefix=prefix, hosts=hosts, routers=routers, wan=wan)
