"""The deployment plan as text for an operator, and as a stable JSON object for tools.

Text: one block per site, indented by its depth in the tree, with the WAN link that joins it to its
parent, then one aligned row per host (role, listen address, upstream, folder, limits).
JSON (`plan_to_json`): `format` 1; keys are only ever added, never renamed.
With `chunk_size: auto`, the size the origin would choose is shown when the caller could read the
source folder's size (`source_bytes`); the origin keeps a size in use while it still fits.
"""

from __future__ import annotations

from typing import Any

from lanscatter.core.chunking import auto_chunk_size
from lanscatter.core.sizes import format_bits_per_s, format_byte_rate, format_bytes
from lanscatter.core.swarm_load import chunk_floor
from lanscatter.core.units import format_duration
from lanscatter.topology.derive import DeploymentPlan, HostPlan

JSON_FORMAT = 1


def _listen(h: HostPlan) -> str:
    if h.role == "master":
        return f"{h.address}:{h.master_port}"
    if h.role == "relay":
        return f"{h.address}:{h.master_port} (peer side :{h.peer_port})"
    return f"{h.address}:{h.peer_port}"


def _extras(h: HostPlan) -> str:
    parts = []
    if h.ul_rate is not None:
        parts.append(f"upload <= {format_byte_rate(h.ul_rate)}")
    if h.dl_rate is not None:
        parts.append(f"download <= {format_byte_rate(h.dl_rate)}")
    if h.slots is not None:
        parts.append(f"{h.slots} slots")
    if h.on_synced:
        parts.append(f"on_synced: {h.on_synced}")
    return ", ".join(parts)


def _wan(plan: DeploymentPlan, parent: str, child: str) -> str:
    down = plan.link_map.links[f"wan:{parent}>{child}"]
    up = plan.link_map.links[f"wan:{child}>{parent}"]
    speed = (format_bits_per_s(down.bytes_per_s) if down.bytes_per_s == up.bytes_per_s
             else f"{format_bits_per_s(down.bytes_per_s)} down / {format_bits_per_s(up.bytes_per_s)} up")
    latency = f", {format_duration(down.latency_s)}" if down.latency_s else ""
    return f"WAN from {parent}: {speed}{latency}"


def _chunk_text(plan: DeploymentPlan, source_bytes: int | None) -> str:
    size = plan.dataset.chunk_size
    if size:
        return format_bytes(size)
    if source_bytes is None:
        return "auto size (1-64 MiB, from the data; the source is not readable here)"
    return (f"{format_bytes(auto_chunk_size(source_bytes, floor=chunk_floor(plan.link_map)))} (auto, for the "
            f"{format_bytes(source_bytes)} in the source now)")


def plan_to_text(plan: DeploymentPlan, file: str, source_bytes: int | None = None) -> str:
    ds = plan.dataset
    mode = "local rehearsal (loopback addresses)" if plan.local else "deployment"
    lines = [
        f"{file}: {mode}",
        (f"data set {ds.name!r}: {ds.source} in {ds.chunking} chunks of {_chunk_text(plan, source_bytes)}, "
         f"secret from {ds.secret.describe()}"),
        "",
    ]
    for site in plan.sites:
        pad = "    " * site.depth
        joined = "origin site" if site.parent is None else _wan(plan, site.parent, site.name)
        switch = f", switch {format_bits_per_s(site.switch)} shared" if site.switch is not None else ""
        lines.append(f"{pad}site {site.name}  [LAN {format_bits_per_s(site.lan)} ports{switch}; {joined}]")
        hosts = [h for h in plan.hosts if h.site == site.name]
        rows = [(h.name, h.role, _listen(h),
                 f"<- {h.upstream[0]}:{h.upstream[1]}" if h.upstream else "", str(h.folder), _extras(h))
                for h in hosts]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            cells = [c.ljust(w) for c, w in zip(row[:4], widths)] + [c for c in row[4:] if c]
            lines.append(f"{pad}  " + "  ".join(cells).rstrip())
    n_wan = sum(1 for s in plan.sites if s.parent is not None)
    lines += ["", ", ".join(f"{n} {noun}{'s' if n != 1 else ''}"
                            for n, noun in ((len(plan.sites), "site"), (len(plan.hosts), "host"), (n_wan, "WAN link")))]
    return "\n".join(lines)


def plan_to_json(plan: DeploymentPlan, source_bytes: int | None = None) -> dict[str, Any]:
    ds = plan.dataset
    auto = (auto_chunk_size(source_bytes, floor=chunk_floor(plan.link_map))
            if not ds.chunk_size and source_bytes is not None else None)
    return {
        "format": JSON_FORMAT,
        "local": plan.local,
        "dataset": {"name": ds.name, "source": str(ds.source), "chunk_size": ds.chunk_size or "auto",
                    "chunking": ds.chunking, "source_bytes": source_bytes, "auto_chunk_size": auto,
                    "secret": {"kind": ds.secret.kind,
                               "ref": None if ds.secret.kind == "value" else ds.secret.ref}},
        "sites": [{"name": s.name, "parent": s.parent, "depth": s.depth, "lan_bytes_per_s": s.lan,
                   "switch_bytes_per_s": s.switch,
                   "master": s.master, "status": list(plan.site_masters()[s.name])} for s in plan.sites],
        "hosts": [{"name": h.name, "site": h.site, "address": h.address, "roles": sorted(h.roles),
                   "master_port": h.master_port, "peer_port": h.peer_port, "folder": str(h.folder),
                   "upstream": list(h.upstream) if h.upstream else None, "ul_rate": h.ul_rate,
                   "dl_rate": h.dl_rate, "slots": h.slots, "on_synced": h.on_synced} for h in plan.hosts],
        "links": [{"name": link.name, "bytes_per_s": link.bytes_per_s, "latency_s": link.latency_s}
                  for link in sorted(plan.link_map.links.values(), key=lambda x: x.name)],
    }
