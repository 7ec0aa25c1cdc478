"""From a site-tree file to the network that emulates it, and the plan that runs on it. Pure.

Rules:
- every site of the topology is a site of the `NetSpec`, in tree order, with its LAN rate (each
  host's port) and its `switch` (shared by the whole site) where it writes one; a host with an
  `upload_limit` / `download_limit` below the LAN rate gets its port shaped at that rate;
- every WAN link becomes the link between a site and its parent: `down` (away from the origin) and
  `up` rates as the link map has them, `latency` as the one-way delay, `loss` as the loss share;
- each host's address is the one the emulator's layout gives it (10.213.x.y inside its namespace);
  the deployment plan is derived for one machine (per-host folders under the work directory) with
  those addresses, so the roles connect to each other across the emulated links.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lanscatter.emulator.layout import plan as layout_of
from lanscatter.emulator.spec import Host, NetSpec, Site, WanLink
from lanscatter.topology.derive import DeploymentPlan, derive_plan
from lanscatter.topology.model import Topology


def net_spec(topo: Topology, tag: str) -> NetSpec:
    """The emulated network of a topology that `load_topology` accepted."""
    plan = derive_plan(topo)
    links = plan.link_map.links
    loss = {frozenset(w.sites): w.loss for w in topo.wan}
    sites = tuple(
        Site(s.name, s.lan,
             tuple(Host(h.name, h.ul_rate, h.dl_rate) for h in plan.hosts if h.site == s.name),
             parent=s.parent, switch_bytes_per_s=s.switch)
        for s in plan.sites
    )
    wan = []
    for s in plan.sites:
        if s.parent is None:
            continue
        down, up = links[f"wan:{s.parent}>{s.name}"], links[f"wan:{s.name}>{s.parent}"]
        wan.append(WanLink(s.parent, s.name, down.bytes_per_s, up.bytes_per_s, delay_s=down.latency_s,
                           loss=loss.get(frozenset((s.parent, s.name)), 0.0)))
    return NetSpec(sites=sites, wan_links=tuple(wan), tag=tag)


def emulated_addresses(spec: NetSpec) -> dict[str, str]:
    """Host -> its address inside the emulated network."""
    return {name: node.address for name, node in layout_of(spec).hosts.items()}


def emulated_plan(topo: Topology, spec: NetSpec, workdir: Path) -> DeploymentPlan:
    """The deployment plan on the emulated network: namespace addresses, folders under `workdir`."""
    return derive_plan(topo, local=True, workdir=workdir, addresses=emulated_addresses(spec))


def wan_link_names(spec: NetSpec) -> Mapping[str, str]:
    """The emulator's name of each WAN link (`hq<->b1`) -> the report's (`wan:hq>b1`)."""
    return {link.name: f"wan:{link.parent}>{link.child}" for link in spec.wan_links}
