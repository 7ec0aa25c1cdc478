"""Screenshots of the monitor at fixed terminal sizes, fed by the recorded rehearsal.

Update after an intended change of the display: pytest tests/tui/test_snapshots.py --snapshot-update
(and look at the SVGs in __snapshots__/ before committing them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from feed_server import Recording, serve
from test_pilot import RECORDED_REPORT
from textual.pilot import Pilot
from waiting import wait_until

from lanscatter_tui.app import MonitorApp, build_app
from lanscatter_tui.feed_client import Source

RECORDING = Recording()
MID = RECORDING.when_progress(0.7)  # both sites busy: chunks in flight, partial matrices
_, _WENT_DOWN, _BACK = RECORDING.outage("branch", "br-2")
OUTAGE = (_WENT_DOWN + _BACK) / 2  # br-2 killed and not yet restarted


def shot(
    snap_compare: Callable[..., bool],
    at: float,
    size: tuple[int, int],
    press: Iterable[str] = (),
    ansi: bool = False,
    report: tuple[Path, dict[str, Any]] | None = None,
) -> bool:
    with serve(at=at) as servers:
        sources = [Source("hq", servers.url("hq")), Source("branch", servers.url("branch"))]
        app = build_app(sources, ansi=ansi, report=report[0] if report else None)

        async def settle(pilot: Pilot[Any]) -> None:
            assert isinstance(pilot.app, MonitorApp)
            monitor = pilot.app
            await wait_until(pilot, lambda: all(site.status is not None for site in monitor.sites))
            if report is not None:
                report[0].write_text(json.dumps(report[1]))      # written during the run, as `up` does
                await wait_until(pilot, lambda: bool(monitor.summary))
            for key in press:
                await pilot.press(key)
            monitor.refresh_view()
            await pilot.pause()

        return snap_compare(app, terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_both_sites_mid_distribution(snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
    assert shot(snap_compare, MID, size, press=["down", "down"])


def test_branch_with_a_node_down_at_80x24(snap_compare: Callable[..., bool]) -> None:
    to_br2 = ["down"] * RECORDING.node_names("branch", OUTAGE).index("br-2")  # focus the node that is down
    assert shot(snap_compare, OUTAGE, (80, 24), press=["right", *to_br2])


def test_end_of_the_recording_at_120x40(snap_compare: Callable[..., bool]) -> None:
    assert shot(snap_compare, RECORDING.end, (120, 40))


def test_the_end_with_the_summary_at_120x40(snap_compare: Callable[..., bool], tmp_path: Path) -> None:
    assert shot(snap_compare, RECORDING.end, (120, 40), report=(tmp_path / "report.json", RECORDED_REPORT))


def test_help_at_80x24(snap_compare: Callable[..., bool]) -> None:
    assert shot(snap_compare, MID, (80, 24), press=["question_mark"])


def test_sixteen_colours_at_80x24(snap_compare: Callable[..., bool]) -> None:
    assert shot(snap_compare, OUTAGE, (80, 24), press=["right"], ansi=True)
