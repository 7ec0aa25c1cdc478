"""Recording live feeds gives a file that replays to the statuses that were served."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

from feed_server import load_feed, serve

from lanscatter_tui.recorder import record


async def test_a_recording_replays_to_what_the_endpoints_served(tmp_path: Path) -> None:
    with serve(at=3.0) as servers:
        out = io.StringIO()

        async def move_on() -> None:
            await asyncio.sleep(0.3)
            servers.show(6.0)

        mover = asyncio.create_task(move_on())
        await record([("hq", servers.url("hq")), ("", servers.url("branch"))], 0.8, out)
        await mover
        expected = {site: server.current() for site, server in servers.sites.items()}
    path = tmp_path / "feed.jsonl"
    path.write_text(out.getvalue())
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["message"]["type"] for line in lines][:2] == ["snapshot", "snapshot"]
    assert "delta" in {line["message"]["type"] for line in lines}
    replayed = load_feed(path)
    assert replayed["hq"][-1][1] == expected["hq"]
    assert replayed["branch"][-1][1] == expected["branch"]  # site name taken from the status
