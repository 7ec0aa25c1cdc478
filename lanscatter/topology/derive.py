"""From a checked `Topology` to the deployment plan: a pure function, no I/O.

Rules:
- The origin host is the master of the root site (the origin's site). The gateway of every other
  site runs a relay: a peer of its parent site's swarm and the master of its own. Every other host
  is a peer of its own site's swarm.
- A peer's upstream is its site's master or relay; a relay's upstream is its parent site's master
  or relay. Upstreams are (address, master port).
- A site may name standby gateways (`gateway: [a, b]`): each runs a relay that is elected
  (roles/gateway.py); the first relays while it is up. Every member of that site's swarm (its
  peers, its other gateways while standing by, the gateways of its child sites) joins the first
  and has the others as `alternates`; each gateway of the site has the whole list as `gateways`.
- The link map has `up:<host>` / `down:<host>` for every host: its port on the site's switched LAN,
  the site's `lan` speed narrowed by the host's upload / download limit; `switch:<site>` for a
  site that writes a `switch` (its shared fabric); and `wan:<a>><b>` for both directions of every
  tree link (`down` caps the direction away from the origin, `up` the other). A host's own limits
  stay in its HostPlan too: the host keeps those itself, the port speeds are the planner's.
- `local=True` plans a rehearsal on one machine: each host gets its own loopback address
  (127.0.0.2 upward, in tree order: root site first, sites depth first, hosts in file order), and its
  folder becomes `<workdir>/<site>/<host>`; the origin keeps the data set's source folder.
- `addresses` (host -> address) replaces the addresses of the hosts it names, local or not: an
  emulated network (`lanscatter emulate`) gives every host its namespace's address this way.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lanscatter.core.linkmap import Link, LinkMap
from lanscatter.core.ports import DEFAULT_MASTER_PORT, DEFAULT_PEER_PORT
from lanscatter.topology.model import (
    DEFAULT_FOLDER_ROOT,
    SecretRef,
    Site,
    Topology,
    WanLink,
)
from lanscatter.topology.secret import resolve_secret
from lanscatter.topology.tree import site_tree

LOCAL_WORKDIR = ".lanscatter-rehearsal"   # beside the YAML file, when local=True and no workdir


@dataclass(frozen=True, slots=True)
class DatasetPlan:
    name: str
    source: Path               # absolute folder on the origin
    chunk_size: int            # bytes; 0: auto
    secret: SecretRef
    base_dir: Path             # the YAML file's folder: relative secret files are read from there
    origin_key: str | None = None          # the origin's public key, `ed25519:<base64>`
    signing_key_file: Path | None = None   # its private key, on the origin (absolute)
    publish: str | None = None             # the master's --publish (None: its default)
    settle_s: float | None = None          # the master's --settle (None: its default)
    allow_shrink: bool = False
    chunking: str = "cdc"

    def secret_value(self) -> str | None:
        return resolve_secret(self.secret, self.base_dir)


@dataclass(frozen=True, slots=True)
class HostPlan:
    name: str
    site: str
    address: str
    roles: frozenset[str]              # "master" | "relay" | "peer"
    master_port: int                   # master, and a relay's downstream side
    peer_port: int
    folder: Path
    upstream: tuple[str, int] | None   # address + master port of the swarm it joins
    ul_rate: float | None              # bytes/s
    dl_rate: float | None              # bytes/s
    slots: int | None
    on_synced: str | None
    activate: str | None = None        # None: the node's default (host)
    keep: int | None = None
    adopt: bool = False                # a first sync may delete what the version lacks
    # The other masters of the swarm it joins (its standby gateways), tried in turn after `upstream`.
    alternates: tuple[tuple[str, int], ...] = ()
    # A gateway of a site with standbys: that site's gateways (address, master port), in order.
    gateways: tuple[tuple[str, int], ...] = ()

    @property
    def standby(self) -> bool:
        """A gateway after its site's first: a peer of its site until it is elected."""
        return bool(self.gateways) and self.gateways[0] != (self.address, self.master_port)

    @property
    def role(self) -> str:
        """The one role a host has in this version of the tree ("master", "relay" or "peer")."""
        return next(iter(self.roles))


@dataclass(frozen=True, slots=True)
class SitePlan:
    name: str
    parent: str | None
    lan: float                         # bytes/s of each host's port
    master: str                        # host whose /status describes this site's swarm
    depth: int
    switch: float | None = None        # bytes/s the whole site shares; None = ports only
    standbys: tuple[str, ...] = ()     # gateways after `master`, in order (any of them may relay)


@dataclass(frozen=True, slots=True)
class DeploymentPlan:
    dataset: DatasetPlan
    sites: tuple[SitePlan, ...]        # tree order: root first, depth first
    hosts: tuple[HostPlan, ...]        # same order
    link_map: LinkMap
    local: bool

    def host(self, name: str) -> HostPlan:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def site(self, name: str) -> SitePlan:
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(name)

    def site_masters(self) -> dict[str, tuple[str, int]]:
        """Per site, the (address, port) whose /status describes that site's swarm."""
        out = {}
        for s in self.sites:
            m = self.host(s.master)
            out[s.name] = (m.address, m.master_port)
        return out

    def site_heads(self) -> dict[str, tuple[tuple[str, int], ...]]:
        """Per site, every (address, port) that may describe its swarm: the master or first
        gateway, then its standby gateways (the one whose status says `gateway.active` relays)."""
        return {s.name: tuple((h.address, h.master_port) for h in map(self.host, (s.master, *s.standbys)))
                for s in self.sites}


def _loopback(index: int) -> str:
    """The index-th rehearsal address: 127.0.0.2, .3, ... skipping .0 and .255 of every /24."""
    block, offset = divmod(index, 253)
    addr = ipaddress.ip_address("127.0.0.0") + block * 256 + 2 + offset
    if int(addr) > int(ipaddress.ip_address("127.255.255.254")):
        raise ValueError("too many hosts for 127.0.0.0/8")
    return str(addr)


def _resolve(base: Path, folder: str) -> Path:
    path = Path(folder).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


# A host whose port carries this much or more runs FAST_PORT_SLOTS transfers at once each way
# unless the tree sets `slots` (the roles' own default is 2). At the default chunk sizes (1 MiB and
# up) a transfer on such a port takes 8-20 ms, and arranging a slot's next one (a
# report, a plan, a request: about 10 ms measured on an emulated LAN) idles the slot for a third
# of that; more slots keep the port busy. Emulated, a hub of 3 hosts on 1 Gbit/s ports, 300 MB:
# 3.00-3.09 s with 4 slots against 3.67-3.76 s with 2. Slower ports keep 2: on 100 Mbit/s a third
# download slot gained nothing (docs/benchmarks.md).
FAST_PORT = 125e6          # bytes/s: 1 Gbit/s
FAST_PORT_SLOTS = 4


def port_slots(port: float) -> int | None:
    """Transfers at once each way for a host whose port carries `port` bytes/s when the tree
    does not say (None: the roles' default)."""
    return FAST_PORT_SLOTS if port >= FAST_PORT else None


def derive_plan(topo: Topology, *, local: bool = False, workdir: Path | None = None,
                addresses: Mapping[str, str] | None = None) -> DeploymentPlan:
    """The plan for a topology that `load_topology` accepted."""
    origin = topo.host(topo.dataset.origin)
    assert origin is not None, "load_topology checks the origin"
    tree = site_tree(topo, origin.site)
    base = topo.base_dir.resolve()
    # Not resolved: a source that is a symlink to a release folder stays one (publish on switch).
    source = Path(os.path.normpath(base / Path(topo.dataset.source).expanduser()))
    rehearsal = (workdir or base / LOCAL_WORKDIR).resolve()
    dataset = DatasetPlan(topo.dataset.name, source, topo.dataset.chunk_size, topo.dataset.secret, base,
                          topo.origin_key, _resolve(base, topo.origin_key_file) if topo.origin_key_file else None,
                          topo.dataset.publish, topo.dataset.settle_s, topo.dataset.allow_shrink,
                          topo.dataset.chunking)

    sites = [site for name in tree.order if (site := topo.site(name)) is not None]
    ordered = [h for site in sites for h in site.hosts]
    address = {h.name: (_loopback(i) if local else h.address) for i, h in enumerate(ordered)}
    address.update((name, addr) for name, addr in (addresses or {}).items() if name in address)
    site_master = {site.name: origin.name if site.name == tree.root else site.gateway or "" for site in sites}
    heads = {site.name: (site_master[site.name], *(site.standbys if site.name != tree.root else ()))
             for site in sites}

    settings = {h.name: topo.settings_of(h) for h in ordered}
    lan = {site.name: site.lan for site in sites}
    master_port = {n: s.master_port or DEFAULT_MASTER_PORT for n, s in settings.items()}
    hosts: list[HostPlan] = []
    for h in ordered:
        s = settings[h.name]
        role = topo.role_of(h)
        upstream = None
        alternates: tuple[tuple[str, int], ...] = ()
        if role != "master":
            swarm = tree.parent[h.site] if role == "relay" else h.site
            assert swarm is not None
            upstream, *others = ((address[g], master_port[g]) for g in heads[swarm])
            alternates = tuple(others)
        gateways = tuple((address[g], master_port[g]) for g in heads[h.site]) \
            if role == "relay" and len(heads[h.site]) > 1 else ()
        if h.name == origin.name:
            folder = source
        elif local:
            folder = rehearsal / h.site / h.name
        else:
            folder = _resolve(base, s.folder or f"{DEFAULT_FOLDER_ROOT}/{topo.dataset.name}")
        plan = HostPlan(
            name=h.name, site=h.site, address=address[h.name], roles=frozenset({role}),
            master_port=master_port[h.name], peer_port=s.peer_port or DEFAULT_PEER_PORT,
            folder=folder, upstream=upstream, ul_rate=s.upload_limit, dl_rate=s.download_limit,
            slots=s.slots if s.slots is not None else port_slots(
                min(lan[h.site], s.upload_limit or math.inf, s.download_limit or math.inf)),
            on_synced=s.on_synced, activate=s.activate, keep=s.keep, adopt=bool(s.adopt),
            alternates=alternates, gateways=gateways,
        )
        hosts.append(plan)

    site_plans = tuple(SitePlan(site.name, tree.parent[site.name], site.lan, site_master[site.name],
                                tree.depth(site.name), site.switch, heads[site.name][1:]) for site in sites)
    link_map = _link_map(sites, tree.parent, tree.uplink, hosts)
    return DeploymentPlan(dataset, site_plans, tuple(hosts), link_map, local)


def _link_map(sites: list[Site], parent: Mapping[str, str | None], uplink: Mapping[str, WanLink],
              hosts: list[HostPlan]) -> LinkMap:
    links = {f"switch:{site.name}": Link(f"switch:{site.name}", site.switch)
             for site in sites if site.switch is not None}
    for child, par in parent.items():
        if par is None:
            continue
        link = uplink[child]
        for a, b, downward in ((par, child, True), (child, par, False)):
            name = f"wan:{a}>{b}"
            links[name] = Link(name, link.capacity(downward), link.latency_s)
    port = {site.name: site.lan for site in sites}
    for h in hosts:
        lan = port[h.site]
        links[f"up:{h.name}"] = Link(f"up:{h.name}", min(lan, h.ul_rate or lan))
        links[f"down:{h.name}"] = Link(f"down:{h.name}", min(lan, h.dl_rate or lan))
    return LinkMap(links=links, node_site={h.name: h.site for h in hosts}, site_parent=dict(parent))
