"""`lanscatter status FILE [--json]`: which version each site and host of a site tree shows.

Reads every site master's `/status` (no secret needed; they carry no file names), like `up`'s
watcher, from any host that reaches them, and prints per site and host the active version (label,
age), the version being staged and its progress, and the hosts behind the origin's current
version (`version_report.py`). Exit 0 when every site master answered, 4 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path

import aiohttp

from lanscatter.core.status import StatusDoc, StatusError
from lanscatter.deploy.version_report import build_report, render
from lanscatter.net.status_client import fetch_status
from lanscatter.topology.derive import derive_plan
from lanscatter.topology.roles import status_url
from lanscatter.topology.validate import load_topology

log = logging.getLogger("lanscatter.status")

NO_ANSWER_EXIT = 4


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sp = sub.add_parser("status", help="which version each site and host of a site tree shows",
                        description="Ask every site master of FILE for its status and print, per site and "
                                    "host, the active version (label, age), the version being staged and its "
                                    "progress, and the hosts behind the origin's current version "
                                    "(docs/versions.md). Exit 4 when a site master does not answer.")
    sp.add_argument("file", type=Path, metavar="FILE", help="the site-tree YAML file")
    sp.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    sp.add_argument("--local", action="store_true",
                    help="the tree as `up --local` runs it on this machine (127.0.0.x addresses)")
    sp.add_argument("--timeout", type=float, default=5.0, metavar="S",
                    help="how long to wait for each site master (default 5)")
    sp.set_defaults(func=run_status)


def run_status(args: argparse.Namespace) -> int:
    plan = derive_plan(load_topology(args.file), local=args.local)
    urls = {site: status_url(*addr) for site, addr in plan.site_masters().items()}
    answers = asyncio.run(_fetch_all(urls, args.timeout))
    report = build_report(plan, answers)
    print(json.dumps(report, indent=2) if args.json else render(report), flush=True)
    return 0 if all(a is not None for a in answers.values()) else NO_ANSWER_EXIT


async def _fetch_all(urls: dict[str, str], timeout_s: float) -> dict[str, StatusDoc | None]:
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        docs = await asyncio.gather(*(_fetch(http, url) for url in urls.values()))
    return dict(zip(urls, docs))


async def _fetch(http: aiohttp.ClientSession, url: str) -> StatusDoc | None:
    try:
        return await fetch_status(http, url)
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None
    except StatusError as exc:
        log.warning("%s answers with no usable status document: %s", url, exc)
        return None
