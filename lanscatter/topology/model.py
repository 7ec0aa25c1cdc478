"""The site tree as typed values: what the operator wrote, with the position of every field.

Values here are as written, with only the defaults that need no other part of the file filled in
(a host's address is its name, the dataset's name is its folder's name, ...). Settings a host
inherits (top-level `defaults`, then its site's `defaults`, then its own) are merged by
`Topology.settings_of`. Which host runs which role, and who is whose upstream, is decided by
`derive.py`; whether the whole is consistent, by `validate.py`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from lanscatter.topology.problems import Pos

DEFAULT_CHUNK_SIZE = 0             # auto: chosen from the data's size when it is scanned
DEFAULT_CHUNKING = "cdc"           # content-defined boundaries (lanscatter/core/chunking.py)
DEFAULT_LAN_BYTES_PER_S = 1e9 / 8            # 1 Gbit/s ports
DEFAULT_SECRET_ENV = "LANSCATTER_SECRET"
DEFAULT_FOLDER_ROOT = "/var/lib/lanscatter"  # + /<dataset name> on every host but the origin
# Which links carry TLS: "wan" (a site's uplink, the default), "all" (its LAN too), "off".
TLS_POLICIES = ("wan", "all", "off")
DEFAULT_TLS = "wan"


def _positions() -> Mapping[str, Pos]:
    return field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where the swarm secret comes from: an environment variable, a file, or (rehearsals) inline."""

    kind: str            # "env" | "file" | "value"
    ref: str             # variable name, file path (relative to the YAML file), or the secret itself
    file: str            # the YAML file, for errors that name the position
    pos: Pos

    def describe(self) -> str:
        return {"env": f"environment variable ${self.ref}", "file": f"file {self.ref}",
                "value": "inline value"}[self.kind]


@dataclass(frozen=True, slots=True)
class HostSettings:
    """Settings a host may inherit; None means "not set at this level"."""

    master_port: int | None = None
    peer_port: int | None = None
    folder: str | None = None
    upload_limit: float | None = None      # bytes/s
    download_limit: float | None = None    # bytes/s
    slots: int | None = None
    on_synced: str | None = None           # command run when the host's folder is complete
    activate: str | None = None            # "host" | "tree" | "per-file": how a new version becomes visible
    keep: int | None = None                # versions kept for rollback, the active one included
    adopt: bool | None = None              # a first sync may delete what the version lacks
    where: Mapping[str, Pos] = _positions()

    def over(self, base: HostSettings) -> HostSettings:
        """These settings, falling back to `base` for what is not set here."""
        merged = {}
        where = dict(base.where)
        for f in fields(self):
            if f.name == "where":
                continue
            mine = getattr(self, f.name)
            merged[f.name] = mine if mine is not None else getattr(base, f.name)
            if mine is not None and f.name in self.where:
                where[f.name] = self.where[f.name]
        return HostSettings(**merged, where=where)


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    site: str
    address: str                      # the host name when not given
    settings: HostSettings
    pos: Pos                          # of the name
    where: Mapping[str, Pos] = _positions()
    tls_fingerprint: str | None = None    # SHA-256 of its TLS certificate (64 hex digits)


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    lan: float                        # bytes/s of each host's port on the site's switch
    gateway: str | None               # the first gateway: the one that relays when all are up
    hosts: tuple[Host, ...]
    defaults: HostSettings
    pos: Pos
    where: Mapping[str, Pos] = _positions()
    switch: float | None = None       # bytes/s the whole site shares (its switch fabric); None = ports only
    tls: str | None = None            # one of TLS_POLICIES; None: the tree's
    standbys: tuple[str, ...] = ()    # the gateways after the first (`gateway: [a, b, ...]`), in order
    standby_pos: tuple[Pos, ...] = ()

    @property
    def gateways(self) -> tuple[str, ...]:
        """Every gateway of the site in the file's order (exactly one of them relays at a time)."""
        return (self.gateway, *self.standbys) if self.gateway is not None else ()


@dataclass(frozen=True, slots=True)
class WanLink:
    """A WAN link between two sites. `down` caps the direction away from the origin, `up` the other."""

    sites: tuple[str, str]
    bandwidth: float | None           # bytes/s, both directions unless capped
    latency_s: float
    down: float | None
    up: float | None
    pos: Pos
    where: Mapping[str, Pos] = _positions()
    loss: float = 0.0                 # share of packets lost, each direction (only `emulate` uses it)

    def capacity(self, downward: bool) -> float:
        cap = self.down if downward else self.up
        if cap is not None:
            return cap
        assert self.bandwidth is not None, "validation ensures a bandwidth or both caps"
        return self.bandwidth


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    source: str                       # folder on the origin host (relative: to the YAML file)
    origin: str                       # host name
    chunk_size: int                   # bytes; 0: auto
    secret: SecretRef
    pos: Pos
    where: Mapping[str, Pos] = _positions()
    publish: str | None = None        # on-change | on-switch | manual (None: by the kind of source)
    settle_s: float | None = None     # on-change: quiet time before a publish (None: the default)
    allow_shrink: bool = False        # publish an empty or much smaller source unasked
    chunking: str = DEFAULT_CHUNKING  # "cdc" or "fixed"


@dataclass(frozen=True, slots=True)
class Topology:
    file: Path
    dataset: Dataset
    sites: tuple[Site, ...]
    wan: tuple[WanLink, ...]
    defaults: HostSettings
    origin_key: str | None = None         # `ed25519:<base64>`: only versions it signed are written
    origin_key_file: str | None = None    # the private key, on the origin (relative: to the YAML file)
    where: Mapping[str, Pos] = _positions()
    tls: str = DEFAULT_TLS
    tls_ca: str | None = None         # CA file (relative to the YAML file) instead of fingerprints

    @property
    def base_dir(self) -> Path:
        """Relative paths in the file are relative to the folder that holds it."""
        return self.file.parent

    def site(self, name: str) -> Site | None:
        return next((s for s in self.sites if s.name == name), None)

    def hosts(self) -> Iterator[Host]:
        for site in self.sites:
            yield from site.hosts

    def host(self, name: str) -> Host | None:
        return next((h for h in self.hosts() if h.name == name), None)

    @property
    def origin_site(self) -> str | None:
        origin = self.host(self.dataset.origin)
        return origin.site if origin else None

    def tls_of(self, site: str) -> str:
        """The TLS policy of a site: its own `tls:`, else the tree's."""
        s = self.site(site)
        return s.tls if s is not None and s.tls is not None else self.tls

    def settings_of(self, host: Host) -> HostSettings:
        site = self.site(host.site)
        inherited = site.defaults.over(self.defaults) if site else self.defaults
        return host.settings.over(inherited)

    def role_of(self, host: Host) -> str:
        """"master" for the origin, "relay" for a gateway (standbys too) of a site other than the
        origin's, else "peer"."""
        if host.name == self.dataset.origin:
            return "master"
        site = self.site(host.site)
        if site and host.name in site.gateways and host.site != self.origin_site:
            return "relay"
        return "peer"
