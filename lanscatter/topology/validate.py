"""Whole-file checks and the loading entry point.

`load_topology(path)` reads, composes, builds and checks a site-tree file, collecting every problem
before it raises one `TopologyError` that lists them all. The checks here are the ones that need
more than one mapping: names used twice, references to hosts and sites, the tree (root, cycles,
reachability, gateways) and two roles that would listen on one address and port.

`warnings_of(topo)` lists what a valid file may not mean as written: today, a site whose `lan:` was
written when it meant one budget shared by the whole site (before `switch:` existed) and whose
ports together now carry more than that.
"""

from __future__ import annotations

import math
from pathlib import Path

from lanscatter.core.ports import DEFAULT_MASTER_PORT, DEFAULT_PEER_PORT
from lanscatter.core.sizes import format_bits_per_s
from lanscatter.core.units import did_you_mean
from lanscatter.topology.load import build
from lanscatter.topology.model import Host, Topology
from lanscatter.topology.problems import Problem, ProblemLog, TopologyError
from lanscatter.topology.tree import site_tree
from lanscatter.topology.yaml_positions import compose

__all__ = ["Problem", "TopologyError", "check", "load_topology", "warnings_of"]


def load_topology(path: Path) -> Topology:
    """The model of a site-tree file; raises `TopologyError` listing every problem found."""
    log = ProblemLog(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError([Problem(str(path), 1, 1, "unreadable", f"cannot read the file: {exc}")]) from exc
    root = compose(text, log)
    if root is None:
        log.raise_if_any()
    assert root is not None
    topo = build(root, path, log)
    check(topo, log)
    log.raise_if_any()
    return topo


def check(topo: Topology, log: ProblemLog) -> None:
    """Adds to `log` the problems that involve more than one part of the file."""
    _unique_hosts(topo, log)
    root = _origin(topo, log)
    _links(topo, log)
    _tree(topo, root, log)
    _gateways(topo, root, log)
    _ports(topo, log)
    _fingerprints(topo, log)


def _unique_hosts(topo: Topology, log: ProblemLog) -> None:
    first: dict[str, Host] = {}
    for host in topo.hosts():
        if host.name in first:
            other = first[host.name]
            log.add(host.pos, "duplicate-name", f"host {host.name!r} is already defined in site "
                    f"{other.site!r} (line {other.pos.line}); host names are unique across the tree")
        else:
            first[host.name] = host


def _origin(topo: Topology, log: ProblemLog) -> str | None:
    """The root site, or None if the origin is unknown."""
    ds = topo.dataset
    if not ds.origin:
        return None
    origin = topo.host(ds.origin)
    if origin is None:
        names = [h.name for h in topo.hosts()]
        log.add(ds.where.get("origin", ds.pos), "unknown-host",
                f"origin {ds.origin!r} is not a host of any site{did_you_mean(ds.origin, names)}")
        return None
    if ds.settle_s is not None and ds.publish not in (None, "on-change"):
        log.add(ds.where["settle"], "settle-unused", f"settle applies to publish: on-change only, not "
                f"{ds.publish}; remove it")
    if origin.settings.adopt is not None:
        log.add(origin.settings.where["adopt"], "origin-adopt", f"the origin's folder is the source, which it "
                f"never writes; remove adopt from host {origin.name!r}")
    folder = topo.settings_of(origin).folder
    if origin.settings.folder is not None:
        log.add(origin.settings.where["folder"], "origin-folder", f"the origin serves dataset source "
                f"{ds.source!r}; remove folder {folder!r} from host {origin.name!r}")
    return origin.site


def _links(topo: Topology, log: ProblemLog) -> None:
    known = [s.name for s in topo.sites]
    seen: dict[frozenset[str], int] = {}
    for link in topo.wan:
        bad = False
        for i, name in enumerate(link.sites):
            if name not in known:
                bad = True
                log.add(link.where.get(f"between.{i}", link.pos), "unknown-site",
                        f"wan link names unknown site {name!r}{did_you_mean(name, known)}")
        if bad:
            continue
        a, b = link.sites
        if a == b:
            log.add(link.where.get("between", link.pos), "self-link", f"wan link joins site {a!r} to itself")
            continue
        pair = frozenset(link.sites)
        if pair in seen:
            log.add(link.pos, "duplicate-link", f"sites {a!r} and {b!r} are already linked (line "
                    f"{seen[pair]}); one link per pair of sites")
        else:
            seen[pair] = link.pos.line


def _tree(topo: Topology, root: str | None, log: ProblemLog) -> None:
    if not topo.sites:
        return
    # Cycles do not depend on the root, so they are found even when the origin is misspelt.
    tree = site_tree(topo, root or topo.sites[0].name)
    for link, cycle in tree.closing:
        log.add(link.pos, "cycle", f"this link closes a cycle {' - '.join(cycle)}; sites must form a "
                "tree rooted at the origin's site (remove one link of the cycle)")
    if root is None:
        return
    reached = list(tree.order)
    for name in tree.unreached:
        site = topo.site(name)
        assert site is not None
        log.add(site.pos, "disconnected", f"site {name!r} is not connected to the origin's site "
                f"{root!r}; add a wan link '- between: [<one of {', '.join(reached)}>, {name}]'")


def _gateways(topo: Topology, root: str | None, log: ProblemLog) -> None:
    for site in topo.sites:
        names = [h.name for h in site.hosts]
        if site.gateway is None:
            if root is not None and site.name != root:
                log.add(site.pos, "no-gateway", f"site {site.name!r} needs 'gateway: <host>', the host that "
                        f"relays from its parent site (one of: {', '.join(names) or 'no hosts yet'})")
        elif site.name == root:
            log.add(site.where["gateway"], "root-gateway", f"site {site.name!r} holds the origin and "
                    "needs no gateway; remove 'gateway'")
        else:
            positions = (site.where["gateway"], *site.standby_pos)
            seen: set[str] = set()
            for gateway, pos in zip(site.gateways, positions):
                if gateway in seen:
                    log.add(pos, "duplicate-gateway", f"gateway {gateway!r} is named twice in site {site.name!r}")
                elif gateway not in names:
                    other = topo.host(gateway)
                    where = f" (it is in site {other.site!r})" if other else did_you_mean(gateway, names)
                    log.add(pos, "unknown-host", f"gateway {gateway!r} is not a host of site {site.name!r}{where}")
                seen.add(gateway)


def _ports(topo: Topology, log: ProblemLog) -> None:
    """Two listeners on one address and port would fail at start; say so now."""
    taken: dict[tuple[str, int], str] = {}
    for host in topo.hosts():
        s = topo.settings_of(host)
        role = topo.role_of(host)
        master_port = s.master_port or DEFAULT_MASTER_PORT
        peer_port = s.peer_port or DEFAULT_PEER_PORT
        listens = {"master": [("master", master_port)], "relay": [("master", master_port), ("peer", peer_port)],
                   "peer": [("peer", peer_port)]}[role]
        for kind, port in listens:
            key = (host.address.lower(), port)
            pos = s.where.get(f"{kind}_port", host.pos)
            if key in taken:
                log.add(pos, "port-conflict", f"{host.name!r} ({role}) would listen on {host.address}:{port}, "
                        f"already used by {taken[key]}; give one of them another {kind}_port or address")
            else:
                taken[key] = f"{host.name!r} ({role}, {kind} port)"


def _fingerprints(topo: Topology, log: ProblemLog) -> None:
    """Two hosts with one certificate: a copy-paste slip, or one key on two hosts (either way,
    pinning could no longer tell them apart)."""
    first: dict[str, Host] = {}
    for host in topo.hosts():
        fp = host.tls_fingerprint
        if fp is None:
            continue
        if fp in first:
            log.add(host.where.get("tls_fingerprint", host.pos), "duplicate-fingerprint",
                    f"host {host.name!r} has the tls_fingerprint of host {first[fp].name!r}; every host "
                    "needs its own certificate (`lanscatter tls new` on each)")
        else:
            first[fp] = host


def warnings_of(topo: Topology) -> list[Problem]:
    """Problems that do not stop the file from loading, with their positions, in file order."""
    out = []
    for site in topo.sites:
        if "lan" not in site.where or "switch" in site.where:
            continue                 # `switch:` written (a speed, or none): the file says what it means
        ports = math.fsum(min(site.lan, topo.settings_of(h).upload_limit or math.inf) for h in site.hosts)
        if ports <= site.lan * (1 + 1e-9):
            continue                 # the old shared budget could never bind: nothing changed
        pos = site.where["lan"]
        lan = format_bits_per_s(site.lan).replace(" ", "").removesuffix("/s")
        out.append(Problem(str(topo.file), pos.line, pos.col, "lan-per-port",
                           f"site {site.name!r}: 'lan: {lan}' is the speed of each host's port on a "
                           f"switched LAN (its {len(site.hosts)} hosts' ports together carry "
                           f"{format_bits_per_s(ports)}); it used to be one budget shared by the whole site. "
                           f"To keep that meaning, add 'switch: {lan}' to the site ('switch: none' "
                           "says the switch carries every port at once)", severity="warning"))
    return sorted(out, key=lambda p: (p.line, p.col))
