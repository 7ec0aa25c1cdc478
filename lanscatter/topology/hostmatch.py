"""Which host of the topology this machine is, for a real deployment (`lanscatter up FILE`).

A host matches when its name is this machine's host name (short or fully qualified) or its address
is one of this machine's addresses or names. Exactly one host must match; otherwise the error lists
the candidates and says to name the host with `--host`.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from lanscatter.core.errors import ConfigError
from lanscatter.core.units import did_you_mean
from lanscatter.topology.derive import HostPlan


@dataclass(frozen=True, slots=True)
class Identity:
    names: frozenset[str]              # lower-case host names of this machine
    addresses: frozenset[str]          # its IP addresses


def _candidates(hosts: Sequence[HostPlan]) -> str:
    return ", ".join(f"{h.name} ({h.address})" for h in hosts)


def select_host(hosts: Sequence[HostPlan], me: Identity, named: str | None, file: str) -> HostPlan:
    """The host this machine runs: the one named, or the only one matching `me`."""
    if named is not None:
        for h in hosts:
            if h.name == named:
                return h
        raise ConfigError(f"{file} has no host {named!r}{did_you_mean(named, [h.name for h in hosts])}",
                          f"hosts: {_candidates(hosts)}")
    found = [h for h in hosts if h.name.lower() in me.names or h.address.lower() in me.names
             or h.address in me.addresses]
    if len(found) == 1:
        return found[0]
    who = f"this machine ({', '.join(sorted(me.names)) or 'no name'}; {', '.join(sorted(me.addresses))})"
    if not found:
        raise ConfigError(f"{who} is none of the hosts of {file}",
                          f"name it with --host NAME; hosts: {_candidates(hosts)}")
    raise ConfigError(f"{who} matches {len(found)} hosts of {file}: {_candidates(found)}",
                      "name the one to run with --host NAME")


def _proc_addresses() -> set[str]:
    """Linux: every local IPv4 address (the kernel's LOCAL routes) and IPv6 address."""
    out: set[str] = set()
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
    except OSError:
        lines = []
    for prev, line in itertools.pairwise(lines):
        if "/32 host LOCAL" in line and "|--" in prev:
            out.add(prev.split("|--")[1].strip())
    try:
        for row in Path("/proc/net/if_inet6").read_text().splitlines():
            raw = row.split()[0]
            out.add(str(socket.inet_ntop(socket.AF_INET6, bytes.fromhex(raw))))
    except (OSError, ValueError, IndexError):
        pass
    return out


def local_identity(extra_names: Collection[str] = ()) -> Identity:
    """This machine's names and addresses, as far as it can tell without asking the network."""
    short = socket.gethostname()
    names = {short, short.split(".")[0], socket.getfqdn(), *extra_names}
    addresses = _proc_addresses()
    try:
        for info in socket.getaddrinfo(short, None):
            addresses.add(str(info[4][0]))
    except OSError:
        pass
    return Identity(frozenset(n.lower() for n in names if n), frozenset(addresses))
