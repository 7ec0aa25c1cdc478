"""Whether a site-tree file keeps its meaning when copied to another folder or host. Pure."""

from __future__ import annotations

from pathlib import Path

from lanscatter.topology.model import Topology


def relative_paths(topo: Topology) -> list[str]:
    """The tree's paths that are relative to the file's folder (so they change meaning when the file
    is copied elsewhere), each named as the operator wrote it."""
    out = []
    if not Path(topo.dataset.source).expanduser().is_absolute():
        out.append(f"dataset.source {topo.dataset.source!r}")
    if topo.dataset.secret.kind == "file" and not Path(topo.dataset.secret.ref).expanduser().is_absolute():
        out.append(f"secret file {topo.dataset.secret.ref!r}")
    if topo.origin_key_file is not None and not Path(topo.origin_key_file).expanduser().is_absolute():
        out.append(f"origin_key_file {topo.origin_key_file!r}")
    for h in topo.hosts():
        folder = topo.settings_of(h).folder
        if folder is not None and not Path(folder).expanduser().is_absolute():
            out.append(f"folder {folder!r} of host {h.name}")
    return out
