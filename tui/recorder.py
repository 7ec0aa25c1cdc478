"""Recording the status feeds of running sites, for replay in the monitor's tests.

    python -m lanscatter_tui.recorder --seconds 30 -o tests/tui/feeds/rehearsal.jsonl \\
        hq=http://127.0.0.2:7001 branch=http://127.0.0.3:7001

Writes one JSON object a line, in arrival order: `{"t": seconds since the start, "site": SITE,
"message": <the /status/ws message as received>}`. Messages are kept as sent (snapshot, then
deltas), so a replay exercises the same decoding as a live feed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import IO, Any

import aiohttp

from lanscatter_tui.cli import parse_endpoint


async def _record_site(
    session: aiohttp.ClientSession, site: str, url: str, started: float, out: IO[str]
) -> None:
    async with session.ws_connect(f"{url}/status/ws", max_msg_size=64 << 20) as ws:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            message: dict[str, Any] = json.loads(msg.data)
            if not site and message.get("type") == "snapshot":
                site = str(message["status"].get("site") or url)
            line = {"t": round(time.monotonic() - started, 3), "site": site or url, "message": message}
            out.write(json.dumps(line, separators=(",", ":")) + "\n")


async def record(sources: list[tuple[str, str]], seconds: float, out: IO[str]) -> None:
    """Record every source's feed for `seconds`; a source that cannot be reached is an error."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(_record_site(session, site, url, started, out)) for site, url in sources]
        done, pending = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lanscatter_tui.recorder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("endpoints", nargs="+", metavar="ENDPOINT", help="[SITE=]http://host:port")
    args = parser.parse_args(argv)
    sources = [parse_endpoint(e) for e in args.endpoints]
    with args.output.open("w") as out:
        asyncio.run(record(sources, args.seconds, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
