"""The monitor driven by keys, fed by a recorded rehearsal served from real loopback endpoints."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from feed_server import FEEDS, FeedServers, Recording, serve
from waiting import wait_until

from lanscatter.topology.summary import summary_lines
from lanscatter_tui.app import MonitorApp, build_app
from lanscatter_tui.feed_client import Backoff, Source
from lanscatter_tui.widgets import ChunkMatrix, EventLog, HelpScreen, SummaryPanel

FAST_RETRY = Backoff(first_s=0.05, max_s=0.2)
RECORDING = Recording()
MID = RECORDING.when_progress(0.7)  # both sites busy: chunks in flight, partial matrices


def monitor(servers: FeedServers) -> MonitorApp:
    return build_app(
        [Source("hq", servers.url("hq")), Source("branch", servers.url("branch"))],
        backoff=FAST_RETRY,
        ansi=False,
    )


def reporting_monitor(servers: FeedServers, report: Path, report_wait_s: float) -> MonitorApp:
    return build_app([Source("hq", servers.url("hq")), Source("branch", servers.url("branch"))],
                     backoff=FAST_RETRY, ansi=False, report=report, report_wait_s=report_wait_s)


def all_known(app: MonitorApp) -> bool:
    return all(site.status is not None for site in app.sites)


def log_text(app: MonitorApp) -> str:
    return "\n".join(app.query_one(EventLog).lines)


def screen_text(app: MonitorApp) -> str:
    matrix = app.query_one(ChunkMatrix)
    return "\n".join(matrix.render_line(y).text for y in range(matrix.size.height))


async def test_keys_switch_site_focus_a_node_show_help_and_quit() -> None:
    hq, branch = RECORDING.node_names("hq", MID), RECORDING.node_names("branch", MID)
    assert hq[0] == "origin" and len(hq) >= 3 and branch[0] == "gw-b"
    with serve(at=MID) as servers:
        app = monitor(servers)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: all_known(app))
            assert app.current_site == 0 and app.focused_node == "origin"
            await pilot.press("down", "down")
            assert app.focused_node == hq[2]
            await pilot.press("up")
            assert app.focused_node == hq[1]
            await pilot.press("right")
            assert app.current_site == 1 and app.focused_node == "gw-b"
            await pilot.press("end")
            assert app.focused_node == branch[-1]
            await pilot.press("right")
            assert app.current_site == 0 and app.focused_node == hq[1]  # each site keeps its focus
            await pilot.press("left")
            assert app.current_site == 1
            await pilot.press("1")
            assert app.current_site == 0
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("right")  # any key closes help and does nothing else
            assert not isinstance(app.screen, HelpScreen) and app.current_site == 0
            await pilot.press("q")
            await wait_until(pilot, lambda: not app.is_running, timeout_s=5)
        assert app.return_code == 0


async def test_a_site_that_stops_answering_is_shown_down_and_comes_back() -> None:
    with serve(at=MID) as servers:
        app = monitor(servers)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: all_known(app))
            await pilot.press("right")
            servers.stop("branch")
            await wait_until(pilot, lambda: not app.sites[1].up)
            app.refresh_view()
            await pilot.pause()
            assert "branch: status feed closed" in log_text(app)
            assert "2 branch DOWN" in str(app.query_one("#sites").render())
            assert "branch: not answering since" in str(app.query_one("#detail").render())
            servers.start("branch")
            await wait_until(pilot, lambda: app.sites[1].up)
            assert "branch: answering again" in log_text(app)
            assert app.sites[0].up


async def test_a_node_going_down_and_up_in_the_feed_shows_and_is_logged() -> None:
    last_up, went_down, back = RECORDING.outage("branch", "br-2")  # the peer killed while recording
    with serve(at=last_up) as servers:
        app = monitor(servers)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("right")
            await wait_until(pilot, lambda: all_known(app))
            await wait_until(pilot, lambda: "br-2" in screen_text(app))
            assert "down" not in screen_text(app)
            servers.show(went_down)
            await wait_until(pilot, lambda: "node br-2 is down" in log_text(app))
            await wait_until(pilot, lambda: "down" in screen_text(app))
            assert "branch: br-2 left" in log_text(app)  # the relay's own event, from the feed
            servers.show(back)
            await wait_until(pilot, lambda: "node br-2 is back" in log_text(app))
            await wait_until(pilot, lambda: "down" not in screen_text(app))


async def test_polls_get_status_when_the_endpoint_has_no_websocket() -> None:
    with serve(at=2.0, websocket=False) as servers:
        app = monitor(servers)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: all_known(app))
            first = app.sites[0].status
            assert first is not None
            servers.show(RECORDING.end)
            await wait_until(
                pilot, lambda: app.sites[0].status is not None and app.sites[0].status.time > first.time
            )
            assert all(site.up for site in app.sites)


async def test_an_endpoint_that_never_answers_is_connecting_then_down() -> None:
    with serve(at=2.0) as servers:
        servers.stop("branch")
        app = build_app([Source("hq", servers.url("hq")), Source("branch", servers.url("branch"))],
                        backoff=FAST_RETRY, ansi=False, startup_grace_s=1.5)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: app.sites[0].status is not None)
            # Nodes still coming up are no error: no "not answering" line during the grace period.
            assert app.sites[1].up and "branch" not in log_text(app)
            await wait_until(pilot, lambda: not app.sites[1].up)
            assert "branch: not answering (connection refused) (never answered since the monitor started)" in log_text(app)
            assert app.sites[1].status is None
            servers.start("branch")
            await wait_until(pilot, lambda: app.sites[1].up and app.sites[1].status is not None)


async def test_ctrl_c_quits_at_once_with_130() -> None:
    # Textual's own ctrl+c only asks to press another key; the monitor quits, as its help says.
    with serve(at=MID) as servers:
        app = monitor(servers)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: all_known(app))
            await pilot.press("ctrl+c")
            await wait_until(pilot, lambda: not app.is_running, timeout_s=5)
        assert app.return_code == 130


async def test_the_log_says_when_each_host_and_site_finished_and_the_summary_shows(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({**RECORDED_REPORT, "makespan_s": 99.0}))     # a previous run's, an hour old
    os.utime(report, (time.time() - 3600, time.time() - 3600))
    with serve(at=RECORDING.end) as servers:
        app = build_app([Source("hq", servers.url("hq")), Source("branch", servers.url("branch"))],
                        backoff=FAST_RETRY, ansi=False, report=report)
        async with app.run_test(size=(100, 40)) as pilot:
            await wait_until(pilot, lambda: all_known(app))
            await wait_until(pilot, lambda: "branch: site synced" in log_text(app))
            for name in RECORDING.node_names("branch", RECORDING.end)[1:]:
                assert f"branch: {name} complete" in log_text(app)
            await pilot.pause(1.2)                                            # the report was polled
            assert not app.query_one(SummaryPanel).display and not app.summary
            lines = summary_lines(RECORDED_REPORT)
            report.write_text(json.dumps(RECORDED_REPORT))
            await wait_until(pilot, lambda: app.summary == lines)
            assert app.query_one(SummaryPanel).display
            assert f"every site synced after {RECORDED_REPORT['makespan_s']:.1f} s: the summary is above" in log_text(app)


async def test_a_synced_report_waits_for_the_sites_feeds_to_say_synced(tmp_path: Path) -> None:
    # `up` may write its report before the monitor's feeds bring the sites' last updates: the
    # summary waits for them, so the screen never says "synced" beside a site still at 70 %.
    with serve(at=MID) as servers:
        app = reporting_monitor(servers, tmp_path / "report.json", report_wait_s=30)
        async with app.run_test(size=(100, 40)) as pilot:
            await _write_synced_report_once_all_known(pilot, app, tmp_path / "report.json")
            await pilot.pause(1.5)                                            # the report was read
            assert not app.summary and not app.query_one(SummaryPanel).display
            servers.show(RECORDING.end)
            await wait_until(pilot, lambda: app.summary == summary_lines(RECORDED_REPORT))
            log = log_text(app)
            assert log.index("hq: site synced") < log.index("every site synced")
            assert log.index("branch: site synced") < log.index("every site synced")


async def test_a_synced_report_is_shown_even_if_a_feed_stays_behind(tmp_path: Path) -> None:
    with serve(at=MID) as servers:
        app = reporting_monitor(servers, tmp_path / "report.json", report_wait_s=1.0)
        async with app.run_test(size=(100, 40)) as pilot:
            await _write_synced_report_once_all_known(pilot, app, tmp_path / "report.json")
            await wait_until(pilot, lambda: app.summary == summary_lines(RECORDED_REPORT))
            assert not any(site.status is not None and site.status.synced for site in app.sites)


async def _write_synced_report_once_all_known(pilot: Any, app: MonitorApp, report: Path) -> None:
    await wait_until(pilot, lambda: all_known(app))
    report.write_text(json.dumps(RECORDED_REPORT))


# The report `up` wrote at the end of the recorded run (feeds/rehearsal.jsonl).
RECORDED_REPORT = json.loads((FEEDS / "rehearsal.report.json").read_text())
