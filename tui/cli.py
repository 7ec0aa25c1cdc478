"""`lanscatter tui ENDPOINT...`: the monitor in this terminal.

Textual and the app are imported only when the command runs, so `lanscatter --help` stays fast and
the node roles never load the monitor.
"""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

from lanscatter.errors import ConfigError


def parse_endpoint(text: str) -> tuple[str, str]:
    """'[SITE=]http://host:port' -> (site, url); site is '' when not given."""
    site, sep, url = text.partition("=")
    if not sep or "://" in site:
        site, url = "", text
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"not a status endpoint: {text!r}",
            hint="give [SITE=]http://host:port, the address of a site's master or relay",
        )
    try:
        _ = parts.port  # parsed lazily: out-of-range ports raise only here
    except ValueError as exc:
        raise ConfigError(f"bad port in {text!r}: {exc}", hint="ports are 1-65535") from exc
    return site.strip(), url.rstrip("/")


def run_tui(sources: list[tuple[str, str]]) -> int:
    """Run the monitor on (site, url) endpoints until the operator quits; returns the exit code."""
    if not sources:
        raise ConfigError("no status endpoint to watch", hint="give at least one [SITE=]http://host:port")
    from lanscatter_tui.app import build_app
    from lanscatter_tui.feed_client import Source

    app = build_app([Source(site, url) for site, url in sources])
    app.run()
    return app.return_code or 0


def _command(args: argparse.Namespace) -> int:
    return run_tui([parse_endpoint(e) for e in args.endpoints])


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="watch a distribution live in this terminal",
        description="Live chunk matrices, rates and WAN link use of every site, read from the "
        "status endpoints of the sites' masters and relays.",
    )
    parser.add_argument(
        "endpoints", nargs="+", metavar="ENDPOINT", help="[SITE=]http://host:port of a master or relay"
    )
    parser.set_defaults(func=_command)
