"""The command line of each role a host runs: a pure function of the deployment plan.

One OS process per role: the origin runs `lanscatter master`, a gateway `lanscatter proxy` (a peer
of its parent site's swarm and the master of its own), every other host `lanscatter peer`. The
swarm secret reaches them in the environment, never on a command line that `ps` shows, and
already stretched (`role_env`: `LANSCATTER_SWARM_KEY`, auth.py): the supervisor pays the scrypt
once, not each role it starts, nor each restart. Masters and relays also get the topology file and
their host name, so their planner loads the link map and caps every transfer at its links' speeds:
in a local rehearsal that is what emulates the LAN and WAN speeds between the 127.0.0.x addresses.
The origin's master signs with the origin's private key (`--signing-key`); every other role checks
versions against its public key (`--origin-key`): the run's own (a rehearsal's), else the tree's
`origin_key_file` and `origin_key`. TLS options come per host from `tls_plan.py` (certificate to
serve, fingerprints to pin).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lanscatter.core.auth import SWARM_KEY_ENV, SwarmKey
from lanscatter.topology.derive import DeploymentPlan, HostPlan
from lanscatter.topology.tls_plan import NodeTLS

SECRET_ENV = "LANSCATTER_SECRET"
COMMAND_OF_ROLE = {"master": "master", "relay": "proxy", "peer": "peer"}


@dataclass(frozen=True, slots=True)
class RoleCommand:
    host: str
    role: str                          # "master" | "relay" | "peer"
    argv: tuple[str, ...]              # the whole command line, interpreter first
    status_url: str                    # where this role answers GET /status


@dataclass(frozen=True, slots=True)
class RunContext:
    """What every role of one `lanscatter up` run shares."""

    topology_file: Path
    state_root: Path                   # each host keeps its hash cache and journals in a subfolder
    local: bool
    workdir: Path | None               # the rehearsal's work directory (local runs)
    link_flags: Collection[str] = ()   # commands that accept --topology/--host (see link_flag_support)
    python: str = sys.executable
    store_and_forward: bool = False    # relays wait for the whole generation (benchmark comparison)
    # This run starts every host: the origin's first generation waits (briefly) for its swarm to join.
    all_hosts: bool = False
    origin_key: str | None = None      # overrides the tree's origin_key (a rehearsal's own key)
    signing_key: Path | None = None    # overrides the tree's origin_key_file
    tls: Mapping[str, NodeTLS] = field(default_factory=dict)    # per host (tls_plan.py); none: no TLS


def role_env(secret: str | None) -> dict[str, str]:
    """What the roles' environment gets for the swarm secret: the key stretched once here, and an
    empty LANSCATTER_SECRET, so a secret in the supervisor's own environment reaches no role."""
    if not secret:
        return {}
    return {SWARM_KEY_ENV: SwarmKey.stretch(secret).hex(), SECRET_ENV: ""}


def _mbit(rate: float) -> str:
    """bytes/s as the Mbit/s the node commands take, exactly enough to round-trip."""
    return f"{rate * 8 / 1e6:.9g}"


def status_url(address: str, port: int) -> str:
    """Where the node listening on (address, port) answers GET /status."""
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/status"


def role_command(plan: DeploymentPlan, host: HostPlan, ctx: RunContext) -> RoleCommand:
    role = host.role
    command = COMMAND_OF_ROLE[role]
    argv: list[str] = [ctx.python, "-m", "lanscatter", command]
    if role == "master":
        argv += [str(plan.dataset.source), "--listen", host.address, "--port", str(host.master_port),
                 "--chunk-size", f"{plan.dataset.chunk_size}B" if plan.dataset.chunk_size else "auto",
                 "--chunking", plan.dataset.chunking]
        if ctx.all_hosts:
            joining = sum(1 for h in plan.hosts if h.upstream == (host.address, host.master_port) and not h.standby)
            if joining:
                argv += ["--expect-peers", str(joining)]
        signing_key = ctx.signing_key or plan.dataset.signing_key_file
        if signing_key is not None:
            argv += ["--signing-key", str(signing_key)]
        if plan.dataset.publish is not None:
            argv += ["--publish", plan.dataset.publish]
        if plan.dataset.settle_s is not None:
            argv += ["--settle", f"{plan.dataset.settle_s:g}"]
        if plan.dataset.allow_shrink:
            argv += ["--allow-shrink"]
        if any(h.activate == "tree" for h in plan.hosts):
            argv += ["--activate", "tree"]      # the origin reports a commit past its deadline
    else:
        assert host.upstream is not None, "derive gives every relay and peer an upstream"
        up_addr, up_port = host.upstream
        up = f"[{up_addr}]:{up_port}" if ":" in up_addr else f"{up_addr}:{up_port}"
        port = host.peer_port if role == "peer" else host.master_port
        argv += [up, str(host.folder), "--listen", host.address, "--port", str(port)]
        for addr, alt_port in host.alternates:
            argv += ["--alternate", f"[{addr}]:{alt_port}" if ":" in addr else f"{addr}:{alt_port}"]
        if role == "relay":
            argv += ["--peer-port", str(host.peer_port)]
            if ctx.store_and_forward:
                argv += ["--store-and-forward"]
            if host.gateways:
                argv += ["--gateways", ",".join(f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a, p in host.gateways)]
        dl_rate = relay_rate = host.dl_rate
        if role == "relay" and ctx.local:
            # In a rehearsal the relay is the only receiver behind its WAN link: one download limit
            # at the link's speed emulates the link for every transfer at once.
            wan = plan.link_map.links.get(f"wan:{plan.site(host.site).parent}>{host.site}")
            if wan is not None and math.isfinite(wan.bytes_per_s):
                relay_rate = min(dl_rate or math.inf, wan.bytes_per_s)
        if host.gateways and relay_rate != dl_rate:
            # A gateway with standbys is a peer of its own site while it stands by: LAN speed then.
            assert relay_rate is not None
            argv += ["--relay-dl-rate", _mbit(relay_rate)]
        else:
            dl_rate = relay_rate
        if dl_rate is not None:
            argv += ["--dl-rate", _mbit(dl_rate)]
        if host.adopt:
            argv += ["--adopt"]
        origin_key = ctx.origin_key or plan.dataset.origin_key
        if origin_key is not None:
            argv += ["--origin-key", origin_key]
        if host.activate is not None:
            argv += ["--activate", host.activate]
        if host.keep is not None:
            argv += ["--keep", str(host.keep)]
    tls = ctx.tls.get(host.name)
    if tls is not None:
        argv += tls.flags()
    argv += ["--name", host.name, "--state-dir", str(ctx.state_root / host.name)]
    if host.ul_rate is not None:
        argv += ["--ul-rate", _mbit(host.ul_rate)]
    if host.slots is not None:
        argv += ["--slots", str(host.slots)]
    if command in ctx.link_flags:
        argv += ["--topology", str(ctx.topology_file), "--host", host.name]
        if ctx.local:
            argv += ["--local"]
            if ctx.workdir is not None:
                argv += ["--workdir", str(ctx.workdir)]
    status_port = host.peer_port if role == "peer" else host.master_port
    return RoleCommand(host.name, role, tuple(argv), status_url(host.address, status_port))


def registered_commands() -> frozenset[str]:
    """The subcommands this installation has (the relay is `proxy`)."""
    from lanscatter.cli import COMMAND_MODULES

    return frozenset({"secret", *(c for commands in COMMAND_MODULES.values() for c in commands)})


def link_flag_support() -> frozenset[str]:
    """The node commands of this installation whose planner can load the link map (--topology)."""
    from lanscatter.cli import LINK_FLAG_COMMANDS

    return LINK_FLAG_COMMANDS
