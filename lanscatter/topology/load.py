"""Positioned YAML -> `Topology`: the shape of the file, key by key.

This module checks what one mapping can tell on its own (known keys, required keys, types, units,
name syntax) and keeps going after a problem so that one run reports them all; a field that does not
read is left out (or defaulted) and the next one is read. Cross-references (gateways, origin, links,
the tree itself, port clashes) are `validate.py`'s.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import TypeVar

from lanscatter.core.chunking import CDC, KINDS
from lanscatter.core.publish_policy import PUBLISH_MODES
from lanscatter.core.signing import parse_origin_key
from lanscatter.core.units import (
    UnitError,
    did_you_mean,
    parse_duration,
    parse_share,
    parse_size,
    parse_speed,
)
from lanscatter.core.version_plan import MAX_KEEP
from lanscatter.net.tls import normalize_fingerprint
from lanscatter.topology.model import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_CHUNKING,
    DEFAULT_LAN_BYTES_PER_S,
    DEFAULT_SECRET_ENV,
    DEFAULT_TLS,
    TLS_POLICIES,
    Dataset,
    Host,
    HostSettings,
    SecretRef,
    Site,
    Topology,
    WanLink,
)
from lanscatter.topology.problems import Pos, ProblemLog
from lanscatter.topology.yaml_positions import YMap, YNode, YScalar, YSeq

T = TypeVar("T")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
MIN_CHUNK, MAX_CHUNK = 64 * 1024, 1024**3

TOP_KEYS = ("version", "dataset", "defaults", "sites", "wan", "origin_key", "origin_key_file", "tls",
            "tls_ca")
DATASET_KEYS = ("source", "origin", "name", "chunk_size", "chunking", "secret", "publish", "settle",
                "allow_shrink")
SECRET_KEYS = ("env", "file", "value")
SETTING_KEYS = ("master_port", "peer_port", "folder", "upload_limit", "download_limit", "slots", "on_synced",
                "activate", "keep", "adopt")
ACTIVATE_MODES = ("host", "tree", "per-file")
SITE_KEYS = ("lan", "switch", "gateway", "hosts", "defaults", "tls")
HOST_KEYS = ("address", "tls_fingerprint", *SETTING_KEYS)
WAN_KEYS = ("between", "bandwidth", "latency", "down", "up", "loss")


class _Reader:
    """Typed reads from positioned nodes; every failure becomes a problem and a None."""

    def __init__(self, log: ProblemLog) -> None:
        self.log = log

    def mapping(self, node: YNode | None, what: str, known: tuple[str, ...],
                required: tuple[str, ...] = (), at: Pos | None = None) -> dict[str, YNode]:
        """The keys of a mapping, unknown ones reported with the closest known key."""
        where = at or (node.pos if node is not None else Pos(1, 1))
        if node is None or (isinstance(node, YScalar) and node.kind == "null"):
            fields: dict[str, YNode] = {}
        elif not isinstance(node, YMap):
            self.log.add(node.pos, "wrong-type", f"{what} must be a mapping of keys ({', '.join(known)})")
            return {}
        else:
            fields = {}
            for key, value in node.items:
                if key.text in known:
                    fields[key.text] = value
                else:
                    self.log.add(key.pos, "unknown-key", f"unknown key {key.text!r} in {what}"
                                 f"{did_you_mean(key.text, known) or '; known keys: ' + ', '.join(known)}")
        for name in required:
            if name not in fields:
                self.log.add(where, "missing-key", f"{what} needs '{name}'")
        return fields

    def scalar(self, node: YNode, what: str) -> YScalar | None:
        if isinstance(node, YScalar) and node.kind != "null":
            return node
        self.log.add(node.pos, "wrong-type", f"{what} must be a single value")
        return None

    def text(self, node: YNode, what: str) -> str | None:
        s = self.scalar(node, what)
        return s.text if s else None

    def name(self, node: YNode, what: str) -> str | None:
        text = self.text(node, what)
        if text is not None and not NAME.match(text):
            self.log.add(node.pos, "bad-name", f"{what} {text!r} may hold only letters, digits, '.', '_' "
                         "and '-' (starting with a letter or digit, at most 63)")
            return None
        return text

    def integer(self, node: YNode, what: str, lo: int, hi: int) -> int | None:
        s = self.scalar(node, what)
        if s is None:
            return None
        value = s.value
        if s.kind != "int" or not isinstance(value, int) or isinstance(value, bool):
            self.log.add(s.pos, "wrong-type", f"{what} must be a whole number, not {s.text!r}")
            return None
        if not lo <= value <= hi:
            self.log.add(s.pos, "bad-value", f"{what} must be between {lo} and {hi}, not {value}")
            return None
        return value

    def flag(self, node: YNode, what: str) -> bool | None:
        s = self.scalar(node, what)
        if s is None:
            return None
        if s.kind != "bool" or not isinstance(s.value, bool):
            self.log.add(s.pos, "wrong-type", f"{what} must be true or false, not {s.text!r}")
            return None
        return s.value

    def choice(self, node: YNode, what: str, choices: tuple[str, ...]) -> str | None:
        text = self.text(node, what)
        if text is not None and text not in choices:
            self.log.add(node.pos, "bad-value", f"{what} must be one of {', '.join(choices)}, not {text!r}"
                         f"{did_you_mean(text, choices)}")
            return None
        return text

    def unit(self, node: YNode, what: str, parse: Callable[[str], T]) -> T | None:
        s = self.scalar(node, what)
        if s is None:
            return None
        try:
            return parse(s.text)
        except UnitError as exc:
            self.log.add(s.pos, exc.code, f"{what}: {exc.message}")
            return None


def _address(r: _Reader, node: YNode) -> str | None:
    text = r.text(node, "address")
    if text is None:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        if _HOSTNAME.match(text) and not text.rsplit(".", 1)[-1].isdigit():
            return text
        r.log.add(node.pos, "bad-address", f"address {text!r} is neither an IP address nor a host name")
        return None
    if ip.is_unspecified or ip.is_multicast:
        r.log.add(node.pos, "bad-address", f"address {text!r} is not one other hosts can connect to")
        return None
    return str(ip)


def _tls_policy(r: _Reader, node: YNode) -> str | None:
    text = r.text(node, "tls")
    if text is not None and text not in TLS_POLICIES:
        r.log.add(node.pos, "bad-value", f"tls must be one of {', '.join(TLS_POLICIES)}, not {text!r}"
                  f"{did_you_mean(text, TLS_POLICIES)}")
        return None
    return text


def _fingerprint(r: _Reader, node: YNode) -> str | None:
    text = r.text(node, "tls_fingerprint")
    if text is None:
        return None
    try:
        return normalize_fingerprint(text)
    except ValueError:
        r.log.add(node.pos, "bad-fingerprint", "tls_fingerprint must be a SHA-256 fingerprint: 64 hex "
                  "digits, as `lanscatter tls new` or `lanscatter tls fingerprint FILE` prints it")
        return None


def _settings(r: _Reader, fields: dict[str, YNode]) -> HostSettings:
    values: dict[str, object] = {}
    readers: dict[str, Callable[[YNode], object]] = {
        "master_port": lambda n: r.integer(n, "master_port", 1, 65535),
        "peer_port": lambda n: r.integer(n, "peer_port", 1, 65535),
        "folder": lambda n: r.text(n, "folder"),
        "upload_limit": lambda n: r.unit(n, "upload_limit", parse_speed),
        "download_limit": lambda n: r.unit(n, "download_limit", parse_speed),
        "slots": lambda n: r.integer(n, "slots", 1, 1024),
        "on_synced": lambda n: r.text(n, "on_synced"),
        "activate": lambda n: _activate(r, n),
        "keep": lambda n: r.integer(n, "keep", 1, MAX_KEEP),
        "adopt": lambda n: r.flag(n, "adopt"),
    }
    where = {}
    for key, read in readers.items():
        if key in fields:
            values[key] = read(fields[key])
            where[key] = fields[key].pos
    return HostSettings(**values, where=where)  # type: ignore[arg-type]


def _activate(r: _Reader, node: YNode) -> str | None:
    text = r.text(node, "activate")
    if text is not None and text not in ACTIVATE_MODES:
        r.log.add(node.pos, "bad-value", f"activate must be one of {', '.join(ACTIVATE_MODES)}, not {text!r}")
        return None
    return text


def _secret(r: _Reader, node: YNode | None, file: str, at: Pos) -> SecretRef:
    if node is None:
        return SecretRef("env", DEFAULT_SECRET_ENV, file, at)
    fields = r.mapping(node, "secret", SECRET_KEYS)
    if len(fields) != 1:
        r.log.add(node.pos, "bad-secret", "secret takes exactly one of 'env: VARIABLE', 'file: PATH', "
                  "'value: TEXT'")
        return SecretRef("env", DEFAULT_SECRET_ENV, file, node.pos)
    kind, value = next(iter(fields.items()))
    ref = r.text(value, f"secret {kind}") or ""
    if kind == "env" and ref and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", ref):
        r.log.add(value.pos, "bad-secret", f"{ref!r} is not an environment variable name")
    return SecretRef(kind, ref, file, value.pos)


def _origin_key(r: _Reader, node: YNode) -> str | None:
    text = r.text(node, "origin_key")
    if text is None:
        return None
    try:
        return parse_origin_key(text).text
    except ValueError as exc:
        r.log.add(node.pos, "bad-origin-key", f"origin_key: {exc}")
        return None


def _dataset(r: _Reader, key: YScalar, node: YNode) -> Dataset:
    f = r.mapping(node, "dataset", DATASET_KEYS, required=("source", "origin"), at=key.pos)
    where = {k: v.pos for k, v in f.items()}
    pos, file = key.pos, r.log.file
    source = r.text(f["source"], "dataset source") if "source" in f else None
    origin = r.text(f["origin"], "dataset origin") if "origin" in f else None
    name = r.name(f["name"], "dataset name") if "name" in f else None
    if name is None and source and "name" not in f:
        name = PurePath(source).name
        if not re.match(NAME, name):
            r.log.add(f["source"].pos, "bad-name", f"cannot name the data set after folder {name!r}; "
                      "add 'name:' to dataset")
    chunking = r.text(f["chunking"], "chunking") if "chunking" in f else DEFAULT_CHUNKING
    if chunking is not None and chunking not in KINDS:
        r.log.add(f["chunking"].pos, "bad-value", f"chunking must be one of {', '.join(KINDS)}, not {chunking!r}")
        chunking = None
    chunk: int | None = DEFAULT_CHUNK_SIZE
    if "chunk_size" in f and not (isinstance(f["chunk_size"], YScalar) and f["chunk_size"].text == "auto"):
        chunk = r.unit(f["chunk_size"], "chunk_size", parse_size)
        if chunk is not None and not MIN_CHUNK <= chunk <= MAX_CHUNK:
            r.log.add(f["chunk_size"].pos, "bad-size", "chunk_size must be between 64KiB and 1GiB, or auto")
        elif chunk is not None and chunking == CDC and chunk & (chunk - 1):
            r.log.add(f["chunk_size"].pos, "bad-size", "chunk_size must be a power of two (e.g. 4MiB) for "
                      "cdc chunking, or auto")
    secret = _secret(r, f.get("secret"), file, pos)
    publish = r.choice(f["publish"], "publish", PUBLISH_MODES) if "publish" in f else None
    settle = r.unit(f["settle"], "settle", parse_duration) if "settle" in f else None
    allow_shrink = r.flag(f["allow_shrink"], "allow_shrink") if "allow_shrink" in f else None
    return Dataset(name or "", source or "", origin or "", chunk or DEFAULT_CHUNK_SIZE, secret, pos, where,
                   publish=publish, settle_s=settle, allow_shrink=bool(allow_shrink),
                   chunking=chunking or DEFAULT_CHUNKING)


def _hosts(r: _Reader, node: YNode, site: str) -> tuple[Host, ...]:
    entries: list[tuple[YScalar, YNode | None]]
    if isinstance(node, YSeq):  # a plain list of names: each host is reached by its name
        entries = []
        for item in node.items:
            if isinstance(item, YScalar) and item.kind != "null":
                entries.append((item, None))
            else:
                r.log.add(item.pos, "wrong-type", "a list of hosts holds names; to set more than the "
                          "name, write hosts as a mapping 'name: {address: ...}'")
    elif isinstance(node, YMap):
        entries = list(node.items)
    else:
        r.log.add(node.pos, "wrong-type", "hosts must be a mapping of host names (or a list of names)")
        return ()
    if not entries:
        r.log.add(node.pos, "no-hosts", f"site {site!r} has no hosts")
    hosts = []
    for key, body in entries:
        name = r.name(key, "host name")
        if name is None:
            continue
        address: str | None = name
        fingerprint = None
        settings = HostSettings()
        where: dict[str, Pos] = {}
        if body is not None and isinstance(body, YScalar) and body.kind != "null":
            address = _address(r, body)  # `name: 10.0.0.5`
            where["address"] = body.pos
        elif body is not None:
            f = r.mapping(body, f"host {name!r}", HOST_KEYS)
            if "address" in f:
                address = _address(r, f["address"])
                where["address"] = f["address"].pos
            if "tls_fingerprint" in f:
                fingerprint = _fingerprint(r, f["tls_fingerprint"])
                where["tls_fingerprint"] = f["tls_fingerprint"].pos
            settings = _settings(r, f)
        hosts.append(Host(name, site, address or name, settings, key.pos, where, fingerprint))
    return tuple(hosts)


def _switch(r: _Reader, node: YNode) -> float | None:
    """A site's shared capacity; `none` says in so many words that the ports are the only limits."""
    if isinstance(node, YScalar) and node.text.strip().lower() == "none":
        return None
    return r.unit(node, "switch", parse_speed)


def _site(r: _Reader, key: YScalar, node: YNode) -> Site | None:
    name = r.name(key, "site name")
    f = r.mapping(node, f"site {key.text!r}", SITE_KEYS, required=("hosts",), at=key.pos)
    lan = r.unit(f["lan"], "lan", parse_speed) if "lan" in f else None
    switch = _switch(r, f["switch"]) if "switch" in f else None
    gateway = None
    standbys: list[tuple[str, Pos]] = []
    if "gateway" in f:
        if isinstance(f["gateway"], YSeq):
            # `[gw-a, gw-b]`: the first relays, the others stand by and take over (docs/deploy.md)
            named = [(t, n.pos) for n in f["gateway"].items if (t := r.text(n, "gateway")) is not None]
            if not f["gateway"].items:
                r.log.add(f["gateway"].pos, "wrong-type", "name at least one gateway: gateway: [gw-a, gw-b]")
            if named:
                gateway, standbys = named[0][0], named[1:]
        else:
            gateway = r.text(f["gateway"], "gateway")
    hosts = _hosts(r, f["hosts"], key.text) if "hosts" in f else ()
    defaults = _settings(r, r.mapping(f["defaults"], "site defaults", SETTING_KEYS)) if "defaults" in f \
        else HostSettings()
    if name is None:
        return None
    tls = _tls_policy(r, f["tls"]) if "tls" in f else None
    where = {k: v.pos for k, v in f.items()}
    return Site(name, lan or DEFAULT_LAN_BYTES_PER_S, gateway, hosts, defaults, key.pos, where, switch=switch,
                tls=tls, standbys=tuple(n for n, _ in standbys), standby_pos=tuple(p for _, p in standbys))


def _wan_link(r: _Reader, node: YNode) -> WanLink | None:
    f = r.mapping(node, "wan link", WAN_KEYS, required=("between",))
    pair: list[str] = []
    if "between" in f:
        between = f["between"]
        if isinstance(between, YSeq) and len(between.items) == 2:
            pair = [t for t in (r.text(n, "site name") for n in between.items) if t is not None]
        else:
            r.log.add(between.pos, "wrong-type", "between takes two site names: [parent-site, child-site]")
    speeds = {k: r.unit(f[k], k, parse_speed) if k in f else None for k in ("bandwidth", "down", "up")}
    latency = r.unit(f["latency"], "latency", parse_duration) if "latency" in f else 0.0
    loss = r.unit(f["loss"], "loss", parse_share) if "loss" in f else 0.0
    if "bandwidth" not in f and not ("down" in f and "up" in f):
        r.log.add(node.pos, "missing-key", "wan link needs 'bandwidth' (or both 'down' and 'up')")
    for cap in ("down", "up"):
        b, c = speeds["bandwidth"], speeds[cap]
        if b is not None and c is not None and c > b:
            r.log.add(f[cap].pos, "bad-cap", f"{cap} cap is above the link's bandwidth; a link cannot "
                      "carry more than its bandwidth")
    if len(pair) != 2:
        return None
    where = {k: v.pos for k, v in f.items()}
    if isinstance(f["between"], YSeq):
        where["between.0"], where["between.1"] = (n.pos for n in f["between"].items)
    return WanLink((pair[0], pair[1]), speeds["bandwidth"], latency or 0.0, speeds["down"], speeds["up"],
                   node.pos, where, loss=loss or 0.0)


def build(root: YNode, file: Path, log: ProblemLog) -> Topology:
    """The model of a composed file; problems go to `log` (the model is partial where they are)."""
    r = _Reader(log)
    f = r.mapping(root, "the site tree", TOP_KEYS, required=("dataset", "sites"))
    top_keys = {k.text: k for k, _ in root.items} if isinstance(root, YMap) else {}
    if "version" in f:
        r.integer(f["version"], "version", 1, 1)
    dataset = _dataset(r, top_keys["dataset"], f["dataset"]) if "dataset" in f else \
        Dataset("", "", "", DEFAULT_CHUNK_SIZE, SecretRef("env", DEFAULT_SECRET_ENV, str(file), root.pos), root.pos)
    defaults = _settings(r, r.mapping(f["defaults"], "defaults", SETTING_KEYS)) if "defaults" in f \
        else HostSettings()
    sites: list[Site] = []
    if "sites" in f:
        node = f["sites"]
        if isinstance(node, YMap) and node.items:
            sites = [s for s in (_site(r, k, v) for k, v in node.items) if s is not None]
        else:
            log.add(node.pos, "wrong-type", "sites must be a mapping of site names, each with its hosts")
    wan: list[WanLink] = []
    if "wan" in f:
        node = f["wan"]
        if isinstance(node, YSeq):
            wan = [w for w in (_wan_link(r, item) for item in node.items) if w is not None]
        elif not (isinstance(node, YScalar) and node.kind == "null"):
            log.add(node.pos, "wrong-type", "wan must be a list of links ('- between: [a, b]')")
    origin_key = _origin_key(r, f["origin_key"]) if "origin_key" in f else None
    key_file = r.text(f["origin_key_file"], "origin_key_file") if "origin_key_file" in f else None
    where = {k: v.pos for k, v in f.items() if k in ("origin_key", "origin_key_file")}
    tls = (_tls_policy(r, f["tls"]) if "tls" in f else None) or DEFAULT_TLS
    tls_ca = None
    if "tls_ca" in f:
        tls_ca = r.text(f["tls_ca"], "tls_ca")
        if tls_ca is not None and not (file.parent / tls_ca).is_file():
            log.add(f["tls_ca"].pos, "no-file", f"tls_ca: no file {tls_ca!r} (relative paths are from "
                    "this file's folder)")
    return Topology(file, dataset, tuple(sites), tuple(wan), defaults, origin_key, key_file, where, tls=tls,
                    tls_ca=tls_ca)
