"""Names, addresses and routes of an emulated tree: every host reaches every other along the tree."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import replace

import pytest

from lanscatter.core.errors import ConfigError
from lanscatter.core.linkmap import LinkMap
from lanscatter.emulator import shaping
from lanscatter.emulator.layout import Layout, plan
from lanscatter.emulator.spec import Host, NetSpec, Site, WanLink

MBIT = 1e6 / 8


def hub_and_branches() -> NetSpec:
    """hq with two branches; branch b1 has a sub-branch b3."""
    return NetSpec(
        sites=(
            Site("hq", 200 * MBIT, (Host("origin"), Host("h1", up_bytes_per_s=10 * MBIT))),
            Site("b1", 100 * MBIT, (Host("b1-gw"), Host("b1.pc")), parent="hq"),
            Site("b2", 100 * MBIT, (Host("b2-gw"),), parent="hq"),
            Site("b3", 100 * MBIT, (Host("b3-gw"), Host("b3-pc")), parent="b1"),
        ),
        wan_links=(
            WanLink("hq", "b1", 40 * MBIT, 20 * MBIT, 0.02),
            WanLink("hq", "b2", 30 * MBIT, 30 * MBIT),
            WanLink("b1", "b3", 10 * MBIT, 10 * MBIT, 0.01, 0.01),
        ),
        tag="x9",
    )


def test_names_are_prefixed_safe_and_interfaces_short() -> None:
    layout = plan(hub_and_branches())
    assert layout.prefix == "lscx9-"
    assert layout.routers["hq"].namespace == "lscx9-r.hq"
    assert layout.hosts["b1.pc"].namespace == "lscx9-h.b1_pc"
    assert all(ns.startswith("lscx9-") for ns in layout.namespaces)
    assert len(set(layout.namespaces)) == len(layout.namespaces) == 4 + 7
    interfaces = [h.interface for h in layout.hosts.values()] + [h.router_port for h in layout.hosts.values()]
    interfaces += [w.parent_interface for w in layout.wan.values()] + [w.child_interface for w in layout.wan.values()]
    assert all(len(name) <= 15 for name in interfaces)
    # a router's ports and its WAN ends never share a name inside its namespace
    for site in ("hq", "b1"):
        own = [h.router_port for h in layout.hosts.values() if h.site == site]
        own += [w.parent_interface for w in layout.wan.values() if w.link.parent == site]
        own += [w.child_interface for w in layout.wan.values() if w.link.child == site]
        assert len(own) == len(set(own))


def test_addresses_are_private_unique_and_per_site() -> None:
    layout = plan(hub_and_branches())
    addrs = [h.address for h in layout.hosts.values()] + [r.lan_address for r in layout.routers.values()]
    addrs += [w.parent_address for w in layout.wan.values()] + [w.child_address for w in layout.wan.values()]
    assert len(set(addrs)) == len(addrs)
    supernet = ipaddress.ip_network("10.213.0.0/16")
    assert all(ipaddress.ip_address(a) in supernet for a in addrs)
    assert layout.hosts["origin"].address == "10.213.1.10"
    assert layout.hosts["b3-pc"].address == "10.213.4.11"
    assert layout.hosts["b3-pc"].gateway == layout.routers["b3"].lan_address == "10.213.4.1"
    for hop in layout.wan.values():    # both ends in one /30
        net = ipaddress.ip_network(f"{hop.parent_address}/{hop.prefix_len}", strict=False)
        assert ipaddress.ip_address(hop.child_address) in net and net.prefixlen == 30


def test_host_rates_default_to_the_lan_and_never_exceed_it() -> None:
    layout = plan(hub_and_branches())
    assert layout.hosts["origin"].up_bytes_per_s == 200 * MBIT
    assert layout.hosts["h1"].up_bytes_per_s == 10 * MBIT
    assert layout.hosts["h1"].down_bytes_per_s == 200 * MBIT


def _connected(layout: Layout) -> dict[str, list[tuple[ipaddress.IPv4Network, str]]]:
    """namespace -> its connected networks and own addresses (what `ip addr add` gives it)."""
    out: dict[str, list[tuple[ipaddress.IPv4Network, str]]] = {ns: [] for ns in layout.namespaces}
    for h in layout.hosts.values():
        out[h.namespace].append((ipaddress.ip_network(f"{h.address}/{h.prefix_len}", strict=False), h.address))
    for r in layout.routers.values():
        out[r.namespace].append(
            (ipaddress.ip_network(f"{r.lan_address}/{r.prefix_len}", strict=False), r.lan_address)
        )
    for w in layout.wan.values():
        net = ipaddress.ip_network(f"{w.parent_address}/{w.prefix_len}", strict=False)
        out[w.parent_namespace].append((net, w.parent_address))
        out[w.child_namespace].append((net, w.child_address))
    return out


def _walk(layout: Layout, src_ns: str, dst: str) -> list[str] | None:
    """Namespaces a packet visits from src_ns to address dst, following only the layout's routes."""
    connected = _connected(layout)
    owner = {addr: ns for ns, nets in connected.items() for _net, addr in nets}
    routes = {h.namespace: h.routes for h in layout.hosts.values()}
    routes |= {r.namespace: r.routes for r in layout.routers.values()}
    target = ipaddress.ip_address(dst)
    path, here = [src_ns], src_ns
    for _ in range(20):
        if any(addr == dst for _n, addr in connected[here]):
            return path
        on_link = [net for net, _a in connected[here] if target in net]
        if on_link:
            nxt = owner.get(dst)
            if nxt is None or not any(target in net for net, _a in connected[nxt]):
                return None
        else:
            matches = [r for r in routes[here] if target in ipaddress.ip_network(r.destination)]
            if not matches:
                return None
            best = max(matches, key=lambda r: ipaddress.ip_network(r.destination).prefixlen)
            via = ipaddress.ip_address(best.via)
            assert any(via in net for net, _a in connected[here]), f"{here}: gateway {via} not on link"
            nxt = owner[best.via]
        path.append(nxt)
        here = nxt
    raise AssertionError(f"routing loop from {src_ns} to {dst}: {path}")


def _sites_on(layout: Layout, path: Iterable[str]) -> list[str]:
    by_ns = {r.namespace: r.site for r in layout.routers.values()}
    return [by_ns[ns] for ns in path if ns in by_ns]


def test_every_host_reaches_every_other_along_the_tree() -> None:
    spec = hub_and_branches()
    layout = plan(spec)
    linkmap = LinkMap(site_parent={s.name: s.parent for s in spec.sites})
    for a in layout.hosts.values():
        for b in layout.hosts.values():
            path = _walk(layout, a.namespace, b.address)
            assert path is not None, f"{a.name} cannot reach {b.name}"
            assert path[0] == a.namespace and path[-1] == b.namespace
            hops = linkmap.site_route(a.site, b.site)
            # inside a site the bridge carries the packet (no router hop); across sites every
            # router on the tree route forwards it
            expected_sites = [a.site] + [to for _from, to in hops] if hops else []
            assert _sites_on(layout, path) == expected_sites


@pytest.mark.parametrize("outside", ["8.8.8.8", "192.168.1.1", "10.214.0.1", "127.0.0.2"])
def test_nothing_outside_the_emulated_range_is_routable(outside: str) -> None:
    layout = plan(hub_and_branches())
    for ns in layout.namespaces:
        assert _walk(layout, ns, outside) is None


def test_names_that_clash_once_made_safe_are_refused() -> None:
    spec = NetSpec(sites=(Site("hq", 1, (Host("a.b"), Host("a_b"))),), tag="z")
    with pytest.raises(ConfigError, match="differ only"):
        plan(spec)


def test_each_port_is_shaped_at_the_lan_rate_or_the_hosts_own_lower_one() -> None:
    layout = plan(hub_and_branches())
    h1, origin = layout.hosts["h1"], layout.hosts["origin"]
    assert (origin.up_bytes_per_s, origin.down_bytes_per_s) == (200 * MBIT, 200 * MBIT)
    assert (h1.up_bytes_per_s, h1.down_bytes_per_s) == (10 * MBIT, 200 * MBIT)
    # the host's egress is its upload, the router port's egress its download: one htb class each
    up = shaping.shape_rate(h1.interface, h1.up_bytes_per_s)
    assert up[:2] == [["qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1"],
                      ["class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb", "rate", "10000000bit",
                       "burst", "6056", "cburst", "6056", "quantum", "1514"]]
    # no switch written: nothing shared
    assert all(r.switch is None and r.switch_ports == () for r in layout.routers.values())


def test_a_switch_is_one_class_fed_by_every_port_of_its_router() -> None:
    spec = hub_and_branches()
    sites = tuple(replace(s, switch_bytes_per_s=50 * MBIT) if s.name == "b1" else s for s in spec.sites)
    layout = plan(NetSpec(sites=sites, wan_links=spec.wan_links, tag=spec.tag))
    b1 = layout.routers["b1"]
    # both host ports, the end towards the hub and the end towards its sub-branch b3
    assert (b1.switch, b1.switch_bytes_per_s) == ("sw0", 50 * MBIT)
    assert sorted(b1.switch_ports) == ["dn2", "p0", "p1", "up0"]
    assert layout.routers["hq"].switch is None
    commands = shaping.shared_ingress(b1.switch, b1.switch_ports, 50 * MBIT)
    assert commands[:2] == shaping.htb_root("sw0", 50 * MBIT)
    assert commands[2][:6] == ["qdisc", "add", "dev", "sw0", "parent", "1:1"]        # its bounded queue
    redirects = [c for c in commands if c[0] == "filter"]
    assert [c[3] for c in redirects] == list(b1.switch_ports)
    assert all(c[-6:] == ["action", "mirred", "egress", "redirect", "dev", "sw0"] for c in redirects)
    ingress = [c for c in commands if c[0] == "qdisc" and "ingress" in c]
    assert [c[3] for c in ingress] == list(b1.switch_ports)
