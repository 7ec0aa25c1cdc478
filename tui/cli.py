"""`lanscatter tui ENDPOINT...`: the monitor in this terminal.

Textual and the app are imported only when the command runs, so `lanscatter --help` stays fast and
the node roles never load the monitor.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lanscatter.core.errors import ConfigError

if TYPE_CHECKING:
    from lanscatter_tui.feed_client import Source


_HOST_PORT = re.compile(r"(?:[^\s/:@\[\]]+|\[[0-9A-Fa-f:.]+\]):\d+")


def parse_endpoint(text: str) -> tuple[str, str]:
    """'[SITE=]http://host:port' or '[SITE=]host:port' (plain HTTP, as the other commands take a
    master) -> (site, url); site is '' when not given."""
    site, sep, url = text.partition("=")
    if not sep or "://" in site:
        site, url = "", text
    if "://" not in url and _HOST_PORT.fullmatch(url):
        url = f"http://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"not a status endpoint: {text!r}",
            hint="give [SITE=]host:port or [SITE=]http://host:port, the address of a site's master or relay, "
                 "or a site-tree file",
        )
    try:
        _ = parts.port  # parsed lazily: out-of-range ports raise only here
    except ValueError as exc:
        raise ConfigError(f"bad port in {text!r}: {exc}", hint="ports are 1-65535") from exc
    return site.strip(), url.rstrip("/")


def run_tui(sources: list[Source], report: Path | None = None) -> int:
    """Run the monitor on the sites' endpoints until the operator quits; returns the exit code
    (0 for q, 130 for Ctrl-C, 128+N after signal N)."""
    if not sources:
        raise ConfigError("no status endpoint to watch", hint="give at least one [SITE=]http://host:port")
    from lanscatter_tui.app import build_app

    app = build_app(sources, report=report, handle_signals=True)
    app.run()
    return app.return_code or 0


def topology_feeds(path: Path, *, local: bool, workdir: Path | None) -> list[Source]:
    """Every site's status endpoint (its master or relay) from a site-tree file; a site with
    standby gateways has them as alternates (the feed follows whichever is active)."""
    from lanscatter.topology import derive_plan, load_topology
    from lanscatter_tui.feed_client import Source

    plan = derive_plan(load_topology(path), local=local, workdir=workdir)
    out = []
    for site, heads in plan.site_heads().items():
        first, *rest = (f"http://{addr}:{port}" for addr, port in heads)
        out.append(Source(site, first, tuple(rest)))
    return out


def topology_sources(path: Path, *, local: bool, workdir: Path | None) -> list[tuple[str, str]]:
    """Every site's status endpoint (its master or first gateway) from a site-tree file."""
    return [(s.label, s.url) for s in topology_feeds(path, local=local, workdir=workdir)]


def _command(args: argparse.Namespace) -> int:
    if len(args.endpoints) == 1 and "://" not in args.endpoints[0]:
        path = Path(args.endpoints[0])
        if path.is_file():
            return run_tui(topology_feeds(path, local=args.local, workdir=args.workdir), args.report)
        if path.suffix in (".yaml", ".yml"):
            raise ConfigError(f"no site-tree file {str(path)!r}", hint="check the path, or give the sites' "
                              "status endpoints as [SITE=]host:port")
    from lanscatter_tui.feed_client import Source

    return run_tui([Source(*parse_endpoint(e)) for e in args.endpoints], args.report)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="watch a distribution live in this terminal",
        description="Live chunk matrices, rates and WAN link use of every site, read from the "
        "status endpoints of the sites' masters and relays. Keys: ? for help, q to quit (exit 0), "
        "Ctrl-C to quit with exit code 130.",
    )
    parser.add_argument(
        "endpoints", nargs="+", metavar="FILE|ENDPOINT",
        help="a site-tree file (watch every site), or [SITE=]host:port (or http(s)://host:port) of masters and relays"
    )
    parser.add_argument("--local", action="store_true",
                        help="with a site-tree file: watch its local rehearsal (127.0.0.x addresses)")
    parser.add_argument("--workdir", type=Path, default=None, help="with --local: the rehearsal's work directory")
    parser.add_argument("--report", type=Path, default=None, metavar="FILE",
                        help="a run's report (`lanscatter up` writes one): show its end summary once it says "
                        "the tree is synced (a file older than the monitor is a previous run's: not shown)")
    parser.set_defaults(func=_command)
