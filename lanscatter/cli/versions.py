"""`lanscatter rollback` and `lanscatter versions`: one host's kept versions of its folder.

A rollback switches the folder's symlink to a kept version (no data moves) and holds the host
there: the generation it rolled back from is not activated again by itself; the next other
generation the origin publishes is. A running peer or relay shares the versions folder's lock,
so a rollback never interleaves with its switch.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from lanscatter.core.errors import ConfigError
from lanscatter.core.manifest import show_path
from lanscatter.disk.versions_dir import VersionsDir


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    r = sub.add_parser("rollback", help="switch a host's folder back to a kept version",
                       description="Switch DIR (a peer's or relay's folder in host activation) back to "
                                   "a kept version in one atomic step, without moving data. The host stays "
                                   "on it until the origin publishes another generation.")
    r.add_argument("folder", type=Path, metavar="DIR")
    r.add_argument("--to", default=None, metavar="NAME|LABEL|GENERATION",
                   help="the version to switch to: its name, the origin's label for it, or its "
                        "generation (`lanscatter versions DIR` lists them; default: the version active "
                        "before the current one)")
    r.set_defaults(func=_rollback)
    v = sub.add_parser("versions", help="list the kept versions of a host's folder",
                       description="List the versions of DIR kept for rollback, the active one marked.")
    v.add_argument("folder", type=Path, metavar="DIR")
    v.set_defaults(func=_list)


def _versions(folder: Path) -> VersionsDir:
    vd = VersionsDir(folder)
    if not vd.home.is_dir():
        raise ConfigError(f"{folder} has no versions (it was never synced with host activation)",
                          "run the peer or relay with --activate host first")
    vd.recover()
    return vd


def _rollback(args: argparse.Namespace) -> int:
    vd = _versions(args.folder)
    target = vd.rollback(args.to, time.time())
    print(f"{vd.folder} -> version {target.name} (generation {target.generation[:12] or 'adopted'})")
    return 0


def _list(args: argparse.Namespace) -> int:
    vd = _versions(args.folder)
    index = vd.read_index()
    for v in index.versions:
        when = datetime.fromtimestamp(v.activated, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        mark = "*" if v.name == index.active else " "
        label = f"  {show_path(v.label)}" if v.label else ""
        print(f"{mark} {v.name:16}  {v.generation[:12] or 'adopted':12}  last active {when}{label}")
    if index.hold is not None:
        print("held off (rollback): " + ", ".join(g[:12] for g in index.hold.skip))
    return 0
