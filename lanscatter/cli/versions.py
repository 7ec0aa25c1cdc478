"""`lanscatter rollback` and `lanscatter versions`: one host's kept versions of its folder, and the
whole tree's rollback.

A rollback switches the folder's symlink to a kept version (no data moves) and holds the host
there: the generation it rolled back from is not activated again by itself; the next other
generation the origin publishes is. A running peer or relay shares the versions folder's lock,
so a rollback never interleaves with its switch.

`rollback --tree [HOST[:PORT]]` asks the origin's master (authenticated with the swarm secret, like
`lanscatter publish`) to have every host show a version committed earlier (tree_commit.py).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from lanscatter.cli.node import secret_args, split_hostport, swarm_secret
from lanscatter.cli.publish import signed_request
from lanscatter.core.auth import Auth
from lanscatter.core.errors import ConfigError, RemoteProtocolError
from lanscatter.core.manifest import show_path
from lanscatter.core.publish_request import MAX_TO_CHARS, ROLLBACK_PATH, RollbackRequest, seal_rollback
from lanscatter.disk.versions_dir import VersionsDir
from lanscatter.roles.master import DEFAULT_MASTER_PORT


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    r = sub.add_parser("rollback", help="switch a host's folder, or the whole tree, back to a kept version",
                       description="Switch DIR (a peer's or relay's folder in host activation) back to "
                                   "a kept version in one atomic step, without moving data. The host stays "
                                   "on it until the origin publishes another generation. With --tree, ask "
                                   "the origin's master at HOST[:PORT] to switch every host of the tree back "
                                   "(docs/versions.md).")
    r.add_argument("folder", metavar="DIR|HOST[:PORT]", nargs="?", default=None,
                   help=f"the host's folder; with --tree, the origin's master (default 127.0.0.1:"
                        f"{DEFAULT_MASTER_PORT})")
    r.add_argument("--to", default=None, metavar="NAME|LABEL|GENERATION",
                   help="the version to switch to: its name, the origin's label for it, or its "
                        "generation (`lanscatter versions DIR` lists them; default: the version active "
                        "before the current one; with --tree, the version committed before)")
    r.add_argument("--tree", action="store_true",
                   help="roll back every host of the tree, through the origin's master")
    r.add_argument("--timeout", type=float, default=30.0, metavar="S", help="with --tree: give up after this long")
    secret_args(r)
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
    if args.tree:
        return _tree_rollback(args)
    if args.folder is None:
        raise ConfigError("give the folder to roll back", "lanscatter rollback DIR, or --tree for the whole tree")
    vd = _versions(Path(args.folder))
    target = vd.rollback(args.to, time.time())
    print(f"{vd.folder} -> version {target.name} (generation {target.generation[:12] or 'adopted'})")
    return 0


def _tree_rollback(args: argparse.Namespace) -> int:
    to = args.to
    if to is not None and not (0 < len(to) <= MAX_TO_CHARS and to.isprintable()):
        raise ConfigError(f"--to is printable text of 1 to {MAX_TO_CHARS} characters", "give a label or generation")
    host, port = split_hostport(args.folder or "127.0.0.1", DEFAULT_MASTER_PORT)
    auth = Auth(swarm_secret(args))
    answer = asyncio.run(signed_request(host, port, ROLLBACK_PATH,
                                        lambda nonce: seal_rollback(auth, RollbackRequest(nonce, to)), args.timeout))
    gen, label, instead = answer.get("generation"), answer.get("label"), answer.get("instead")
    if not (isinstance(gen, str) and isinstance(label, str) and isinstance(instead, str)):
        raise RemoteProtocolError(f"{host}:{port} gave a rollback answer without its fields")
    shown = f" labelled {show_path(label, 120)!r}" if label else ""
    if instead:
        print(f"the tree shows generation {show_path(gen, 64)}{shown} instead of {show_path(instead, 64)}")
    else:
        print(f"the tree shows generation {show_path(gen, 64)}{shown} (the current one)")
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
