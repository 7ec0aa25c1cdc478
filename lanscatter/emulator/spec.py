"""What the network emulator builds: sites, their hosts and the WAN links of a site tree.

Pure values, no I/O. A `NetSpec` is validated when it is made, so everything downstream (the
layout, the namespaces) can rely on it: names unique, every non-root site joined to its parent by
exactly one WAN link, rates positive, loss a fraction. Rates are bytes per second, delays seconds
(one way), as in `lanscatter.core.linkmap`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lanscatter.core.errors import ConfigError

_TAG = re.compile(r"[a-z0-9]{1,6}")


@dataclass(frozen=True, slots=True)
class Host:
    """A machine on a site's LAN; its port's rates are the site's LAN rate, or its own where lower."""

    name: str
    up_bytes_per_s: float | None = None
    down_bytes_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class Site:
    """A LAN (one switch) with its hosts; `parent` is the upstream site, None for the root.

    `lan_bytes_per_s` is each host's port; `switch_bytes_per_s`, when set, a capacity shared by
    everything that enters the site's router (from its hosts and from its WAN links)."""

    name: str
    lan_bytes_per_s: float
    hosts: tuple[Host, ...]
    parent: str | None = None
    switch_bytes_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class WanLink:
    """The link between a site and its parent: a rate per direction, a one-way delay, a loss share."""

    parent: str
    child: str
    down_bytes_per_s: float          # parent -> child
    up_bytes_per_s: float            # child -> parent
    delay_s: float = 0.0             # one way, the same both ways
    loss: float = 0.0                # share of packets dropped, each direction

    @property
    def name(self) -> str:
        return f"{self.parent}<->{self.child}"

    @property
    def needs_delay_or_loss(self) -> bool:
        return self.delay_s > 0 or self.loss > 0


@dataclass(frozen=True, slots=True)
class NetSpec:
    """A whole site tree. `tag` keeps the namespaces of concurrent emulations apart."""

    sites: tuple[Site, ...]
    wan_links: tuple[WanLink, ...] = ()
    tag: str = "0"

    def __post_init__(self) -> None:
        _validate(self)

    def site(self, name: str) -> Site:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(name)

    def link_to_parent(self, site: str) -> WanLink | None:
        return next((link for link in self.wan_links if link.child == site), None)

    def children(self, site: str) -> tuple[str, ...]:
        return tuple(s.name for s in self.sites if s.parent == site)

    def subtree(self, site: str) -> tuple[str, ...]:
        """`site` and every site below it, parents before children."""
        out = [site]
        for child in self.children(site):
            out.extend(self.subtree(child))
        return tuple(out)

    @property
    def hosts(self) -> tuple[Host, ...]:
        return tuple(h for s in self.sites for h in s.hosts)


def _fail(message: str, hint: str | None = None) -> None:
    raise ConfigError(f"network spec: {message}", hint)


def _validate(spec: NetSpec) -> None:
    if not _TAG.fullmatch(spec.tag):
        _fail(f"tag {spec.tag!r} must be 1-6 characters a-z 0-9", "it becomes part of namespace names")
    if not spec.sites:
        _fail("no sites")
    names = [s.name for s in spec.sites]
    if len(set(names)) != len(names):
        _fail("site names repeat")
    hosts = [h.name for h in spec.hosts]
    if len(set(hosts)) != len(hosts):
        _fail("host names repeat", "host names must be unique across all sites")
    roots = [s.name for s in spec.sites if s.parent is None]
    if len(roots) != 1:
        _fail(f"needs exactly one root site (a site without parent), found {roots}")
    for site in spec.sites:
        if site.lan_bytes_per_s <= 0:
            _fail(f"site {site.name!r}: LAN rate must be positive")
        if site.switch_bytes_per_s is not None and site.switch_bytes_per_s <= 0:
            _fail(f"site {site.name!r}: switch rate must be positive")
        for host in site.hosts:
            for rate in (host.up_bytes_per_s, host.down_bytes_per_s):
                if rate is not None and rate <= 0:
                    _fail(f"host {host.name!r}: rates must be positive")
        if site.parent is not None and site.parent not in names:
            _fail(f"site {site.name!r}: parent {site.parent!r} is not a site")
    if len(spec.subtree(roots[0])) != len(spec.sites):
        _fail("the sites do not form one tree (a parent chain has a cycle)")
    seen: set[str] = set()
    for link in spec.wan_links:
        child = link.child
        if child in seen:
            _fail(f"site {child!r} has more than one WAN link to its parent")
        seen.add(child)
        if child not in names or spec.site(child).parent != link.parent:
            _fail(f"WAN link {link.name!r} does not join a site to its parent")
        if link.down_bytes_per_s <= 0 or link.up_bytes_per_s <= 0:
            _fail(f"WAN link {link.name!r}: rates must be positive")
        if link.delay_s < 0 or not 0 <= link.loss < 1:
            _fail(f"WAN link {link.name!r}: delay must be >= 0 and loss in [0, 1)")
    missing = [s.name for s in spec.sites if s.parent is not None and s.name not in seen]
    if missing:
        _fail(f"sites without a WAN link to their parent: {missing}")
