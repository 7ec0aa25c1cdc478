"""Which node of a site tree serves, requires and uses TLS, and whom it trusts.

Rules (docs/topology.md, "TLS"):
- A site's `tls:` (else the tree's, default `wan`) says which of its links carry TLS: `wan` its
  uplink (the relay's connection to the parent site's swarm), `all` its LAN as well, `off` none.
  A parent site under `all` requires TLS of its child relays too, whatever they say.
- A node serves TLS (beside plain HTTP, on its one port) when any member of its swarm connects
  over TLS; it requires TLS when its site says `all`.
- A node connecting over TLS trusts the certificates of the swarm it joins: every host of that
  site is a possible chunk source, so it pins all their fingerprints (or trusts the tree's CA).
  A gateway with standbys also pins its own site's hosts when that site says `all` (standing by,
  it is a peer there).
- Each host's identity lives in `<state root>/<host>/tls/` (cert.pem, key.pem). `node_tls` is pure;
  `prepare_identities` makes the identities of a run on one machine (a rehearsal, the emulator),
  whose fingerprints no operator has written down.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from lanscatter.core.errors import ConfigError
from lanscatter.net.tls import CERT_FILE, KEY_FILE, ensure_identity
from lanscatter.topology.derive import DeploymentPlan
from lanscatter.topology.model import Topology


@dataclass(frozen=True, slots=True)
class NodeTLS:
    """One host's TLS options, as its role's command line takes them."""

    identity: Path | None = None        # serve TLS with DIR/cert.pem and DIR/key.pem
    required: bool = False
    pins: tuple[str, ...] = ()          # connect over TLS trusting these fingerprints ...
    ca: Path | None = None              # ... or this CA

    def flags(self) -> list[str]:
        argv: list[str] = []
        if self.identity is not None:
            argv += ["--tls-cert", str(self.identity / CERT_FILE), "--tls-key", str(self.identity / KEY_FILE)]
            if self.required:
                argv += ["--tls-required"]
        for fp in self.pins:
            argv += ["--tls-fingerprint", fp]
        if self.ca is not None:
            argv += ["--tls-ca", str(self.ca)]
        return argv


def identity_dir(state_root: Path, host: str) -> Path:
    return state_root / host / "tls"


def _uplink_tls(topo: Topology, plan: DeploymentPlan, site: str) -> bool:
    parent = plan.site(site).parent
    return parent is not None and (topo.tls_of(site) != "off" or topo.tls_of(parent) == "all")


def serving_sites(topo: Topology, plan: DeploymentPlan) -> frozenset[str]:
    """The sites whose swarm has a member that connects over TLS."""
    out = {s.name for s in plan.sites if topo.tls_of(s.name) == "all"}
    out |= {s.parent for s in plan.sites if s.parent is not None and _uplink_tls(topo, plan, s.name)}
    return frozenset(out)


def node_tls(topo: Topology, plan: DeploymentPlan, host: str, state_root: Path,
             fingerprints: Mapping[str, str]) -> NodeTLS:
    """The TLS options of `host`'s role; `fingerprints` (host -> SHA-256) are what it may pin.
    Raises ConfigError when it must connect over TLS and has nothing to trust."""
    h = plan.host(host)
    serving = h.site in serving_sites(topo, plan)
    role = h.role
    if role == "relay":
        joins: str | None = plan.site(h.site).parent if _uplink_tls(topo, plan, h.site) else None
    elif role == "peer":
        joins = h.site if topo.tls_of(h.site) == "all" else None
    else:
        joins = None
    pins: tuple[str, ...] = ()
    ca = topo.base_dir / topo.tls_ca if topo.tls_ca else None
    if joins is not None:
        sources = [x.name for x in plan.hosts if x.site == joins]
        if h.gateways and topo.tls_of(h.site) == "all":
            # Standing by, a gateway is a peer of its own site, over TLS there too, with the same trust.
            sources += [x.name for x in plan.hosts if x.site == h.site and x.name != host]
        missing = [name for name in sources if name not in fingerprints]
        if missing and ca is None:
            raise ConfigError(
                f"host {host} connects to site {joins} over TLS, but the site tree gives no "
                f"tls_fingerprint for {', '.join(missing)}",
                "run `lanscatter tls new --dir DIR` on each of them and put the fingerprint it prints "
                "under the host as tls_fingerprint:, or name a CA with tls_ca:, or set tls: off")
        pins = tuple(sorted({fingerprints[name] for name in sources if name in fingerprints}))
    return NodeTLS(identity_dir(state_root, host) if serving else None,
                   serving and topo.tls_of(h.site) == "all", pins, ca if joins is not None else None)


def tree_fingerprints(topo: Topology) -> dict[str, str]:
    return {h.name: h.tls_fingerprint for h in topo.hosts() if h.tls_fingerprint}


def plan_tls(topo: Topology, plan: DeploymentPlan, hosts: Collection[str], state_root: Path, *,
             one_machine: bool) -> dict[str, NodeTLS]:
    """The TLS options of the roles of `hosts`. `one_machine`: every host runs here (a rehearsal,
    the emulator), so the identities are made here and their fingerprints read."""
    fingerprints = tree_fingerprints(topo)
    if one_machine:
        fingerprints.update(prepare_identities(topo, plan, state_root))
    return {name: node_tls(topo, plan, name, state_root, fingerprints) for name in hosts}


def prepare_identities(topo: Topology, plan: DeploymentPlan, state_root: Path) -> dict[str, str]:
    """Make (once) the identity of every host that serves TLS; returns their fingerprints."""
    serving = serving_sites(topo, plan)
    return {h.name: ensure_identity(identity_dir(state_root, h.name), h.name)
            for h in plan.hosts if h.site in serving}
