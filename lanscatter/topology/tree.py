"""The shape of the site tree: which WAN link makes which site the child of which.

WAN links are undirected in the file; the tree is rooted at the origin's site. Links are taken in
file order: a link whose two sites are already joined closes a cycle, and a site no link joins to
the root is unreached. Links naming unknown sites, a site twice or the same pair again are skipped
here (validation reports them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lanscatter.topology.model import Topology, WanLink


@dataclass(frozen=True, slots=True)
class SiteTree:
    root: str
    parent: Mapping[str, str | None]       # reached sites only; root -> None
    uplink: Mapping[str, WanLink]          # non-root reached site -> the link to its parent
    order: tuple[str, ...]                 # reached sites, root first, depth first, file order
    closing: tuple[tuple[WanLink, tuple[str, ...]], ...]  # link closing a cycle, and the cycle
    unreached: tuple[str, ...]

    def depth(self, site: str) -> int:
        d = 0
        while (up := self.parent.get(site)) is not None:
            site, d = up, d + 1
        return d

    def children(self, site: str) -> list[str]:
        return [s for s in self.order if self.parent.get(s) == site]


def usable_links(topo: Topology) -> list[WanLink]:
    """Links between two different known sites, first of each pair only."""
    known = {s.name for s in topo.sites}
    seen: set[frozenset[str]] = set()
    usable = []
    for link in topo.wan:
        pair = frozenset(link.sites)
        if len(pair) == 2 and pair <= known and pair not in seen:
            seen.add(pair)
            usable.append(link)
    return usable


def _forest_path(adj: dict[str, list[str]], a: str, b: str) -> tuple[str, ...]:
    """The sites from a to b along already-joined links (they are joined, so a path exists)."""
    came_from: dict[str, str | None] = {a: None}
    todo = [a]
    while todo:
        here = todo.pop(0)
        for nxt in adj[here]:
            if nxt not in came_from:
                came_from[nxt] = here
                todo.append(nxt)
    path = [b]
    while (step := came_from[path[-1]]) is not None:
        path.append(step)
    return tuple(reversed(path))


def site_tree(topo: Topology, root: str) -> SiteTree:
    names = [s.name for s in topo.sites]
    group = {n: n for n in names}

    def find(n: str) -> str:
        while group[n] != n:
            group[n] = group[group[n]]
            n = group[n]
        return n

    adj: dict[str, list[str]] = {n: [] for n in names}
    edge: dict[frozenset[str], WanLink] = {}
    closing = []
    for link in usable_links(topo):
        a, b = link.sites
        if find(a) == find(b):
            closing.append((link, _forest_path(adj, a, b) + (a,)))
            continue
        group[find(a)] = find(b)
        adj[a].append(b)
        adj[b].append(a)
        edge[frozenset((a, b))] = link

    parent: dict[str, str | None] = {root: None}
    uplink: dict[str, WanLink] = {}
    order: list[str] = []

    stack = [root] if root in adj else []
    while stack:  # depth first without recursion: chains may be of any depth
        site = stack.pop()
        order.append(site)
        children = [c for c in sorted(adj[site], key=names.index) if c not in parent]
        for child in children:
            parent[child] = site
            uplink[child] = edge[frozenset((site, child))]
        stack.extend(reversed(children))
    unreached = tuple(n for n in names if n not in parent)
    return SiteTree(root, parent, uplink, tuple(order), tuple(closing), unreached)
