"""`lanscatter validate FILE`, `plan FILE` and `schema`: check a site tree, show what it deploys.

Both print every problem as `FILE:LINE:COL: error: message [code]`, then how many, all on stdout
(the problems are what the command was asked for), and exit 1 when the file has any; `validate`
also prints warnings (`FILE:LINE:COL: warning: ...`), `plan` prints them on stderr; they never fail
either.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from lanscatter.disk.folder_walk import folder_bytes
from lanscatter.topology.derive import derive_plan
from lanscatter.topology.model import Topology
from lanscatter.topology.problems import TopologyError
from lanscatter.topology.render import plan_to_json, plan_to_text
from lanscatter.topology.tree import usable_links
from lanscatter.topology.validate import load_topology, warnings_of

SCHEMA_PATH = Path(__file__).parents[1] / "topology" / "site-tree.schema.json"


@dataclass(frozen=True, slots=True)
class PlanOptions:
    file: Path
    json: bool
    local: bool
    workdir: Path | None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _load(file: Path) -> Topology | None:
    try:
        return load_topology(file)
    except TopologyError as exc:
        print(exc)
        count = len(exc.problems)
        print(f"{file}: {_count(count, 'problem')}")
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    file = Path(args.file)
    topo = _load(file)
    if topo is None:
        return 1
    for warning in warnings_of(topo):
        print(warning)
    n_hosts = sum(1 for _ in topo.hosts())
    n_wan = len(usable_links(topo))
    print(f"{file}: ok: {_count(len(topo.sites), 'site')}, {_count(n_hosts, 'host')}, {_count(n_wan, 'WAN link')}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    opts = PlanOptions(Path(args.file), args.json, args.local, Path(args.workdir) if args.workdir else None)
    topo = _load(opts.file)
    if topo is None:
        return 1
    for warning in warnings_of(topo):
        print(warning, file=sys.stderr)
    plan = derive_plan(topo, local=opts.local, workdir=opts.workdir)
    source_bytes = None if plan.dataset.chunk_size else _source_bytes(plan.dataset.source)
    if opts.json:
        print(json.dumps(plan_to_json(plan, source_bytes), indent=2, sort_keys=True))
    else:
        print(plan_to_text(plan, str(opts.file), source_bytes))
    return 0


def _source_bytes(source: Path) -> int | None:
    """The source folder's size if this host can read it (for the size `auto` would choose)."""
    try:
        return folder_bytes(source) if source.is_dir() else None
    except OSError:
        return None


def cmd_schema(args: argparse.Namespace) -> int:
    print(SCHEMA_PATH.read_text(encoding="utf-8"), end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("validate", help="check a site-tree file; every problem with its line",
                              description="Check a site-tree YAML file and report every problem as "
                              "FILE:LINE:COL: error: message [code], and warnings (meanings that changed) "
                              "as FILE:LINE:COL: warning: message [code]. Exit 0 when valid (warnings "
                              "or not), 1 otherwise.")
    p.add_argument("file", metavar="FILE", help="the site-tree YAML file")
    p.set_defaults(func=cmd_validate)

    p = subparsers.add_parser("plan", help="show the sites, hosts, roles, upstreams and links a file deploys",
                              description="Derive and print the deployment plan of a site-tree file.")
    p.add_argument("file", metavar="FILE", help="the site-tree YAML file")
    p.add_argument("--json", action="store_true", help="print a stable JSON object instead of text")
    p.add_argument("--local", action="store_true",
                   help="plan the one-machine rehearsal (127.0.0.x addresses, folders under --workdir)")
    p.add_argument("--workdir", metavar="DIR",
                   help="folder for the rehearsal hosts' copies (default: .lanscatter-rehearsal beside FILE)")
    p.set_defaults(func=cmd_plan)

    p = subparsers.add_parser("schema", help="print the JSON Schema of site-tree files, for editors",
                              description="Print the JSON Schema of site-tree files (docs/topology.md).")
    p.set_defaults(func=cmd_schema)
