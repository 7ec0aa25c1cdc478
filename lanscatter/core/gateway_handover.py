"""When a relay joins an upstream swarm in place of another gateway of its site (pure).

A site with standby gateways (gateway_election.py) has one relay in its upstream swarm at a time.
A relay that died is gone when its connection ends; a frozen one keeps its connection, its
Downloads and the seed's upload slots until the upstream's silence rule (SILENT_S, then each
transfer's timeout), so its successor would wait behind them. Instead, a gateway's relay says in
its Hello which site it relays for (the site's gateways as 'ip:port', in the tree's order) and
the term it was elected with, and the upstream session withdraws the relay it replaces at once.

What a join proves: the swarm secret (handshake.py), and, unless the swarm accepts peers behind
NAT, the address the member connects from. Nothing else in a Hello is proven: every member holds
the secret. So the rules rest on the addresses:
- a member counts as a gateway of a set only if it joined as a relay, with a term, from a proven
  address that is one of the set's; anything else is no gateway here: it neither replaces a member
  nor is replaced;
- a joining gateway replaces each member gateway of exactly the same set with a lower term (the
  session withdraws it as though it had left and closes its connection);
- a joining gateway with a lower term than a member gateway of its set is superseded: it stays
  joined, and nothing is planned to it (a gateway woken from a freeze may join again before its
  election makes it stand down);
- the same term: neither (a split brain, which the election heals).
A member elsewhere, secret or not, cannot evict a site's relay: it would have to connect from an
address that relay itself named as one of its site's gateways.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lanscatter.core.auth import endpoint, normal_ip

MAX_GATEWAYS = 64            # a site names at most this many (gateway_election.MAX_RANK)


@dataclass(frozen=True, slots=True)
class Gateway:
    """A member as a gateway of a site: its name, the site's gateways ('ip:port'), its term."""

    name: str
    gateways: tuple[str, ...]
    term: int


def standby_set(role: str, gateways: Sequence[str], term: int, addr: str, *,
                addr_proven: bool) -> tuple[str, ...]:
    """The site's gateways a member counts as one of (normalised 'ip:port', in order), or () when
    it counts as none: not a relay, no term, fewer than two gateways, a malformed entry, an address
    not proven or not among them."""
    if role != "relay" or term <= 0 or not addr_proven or not 2 <= len(gateways) <= MAX_GATEWAYS:
        return ()
    parsed: list[str] = []
    hosts: set[str] = set()
    for text in gateways:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not host or not 0 < int(port) < 65536:
            return ()
        host = normal_ip(host.removeprefix("[").removesuffix("]"))
        hosts.add(host)
        parsed.append(endpoint(host, int(port)))
    if normal_ip(addr) not in hosts:
        return ()
    return tuple(parsed)


def handover(new: Gateway, members: Iterable[Gateway]) -> tuple[list[str], str | None]:
    """Whom `new`, joining, replaces (members of its set with a lower term), and the member of its
    set with a higher term that supersedes it (None: none does)."""
    if not new.gateways:
        return [], None
    replaced: list[str] = []
    newer: Gateway | None = None
    for m in members:
        if m.name == new.name or m.gateways != new.gateways:
            continue
        if m.term < new.term:
            replaced.append(m.name)
        elif m.term > new.term and (newer is None or m.term > newer.term):
            newer = m
    return replaced, newer.name if newer is not None else None
