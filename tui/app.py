"""The monitor app: one worker per site follows its status feed; a timer redraws what changed.

Workers only post `SiteStatus` / `SiteDown` messages; the handlers store the latest document per
site and note what to log; `refresh_view()` turns the stored documents into view-model values and
hands them to the widgets, at most every `refresh_interval_s` and only when something changed.
`build_app()` is the one way to make the app, for the command line and the tests alike.

Leaving: `q` exits 0; Ctrl-C (a key here: the terminal is in raw mode) exits 130, as a shell's
Ctrl-C would; with `handle_signals`, SIGTERM and SIGINT exit the same way after the terminal is
restored. `lanscatter up` tells from the code and from its own state whether the run was synced.

Start-up: a site that has never answered is "connecting" for `STARTUP_GRACE_S`; only after that is
its silence an error in the log (every run starts while its nodes are still coming up).

The end: with a report file (`lanscatter up` passes its own), the monitor shows the run's summary,
the same lines `up` prints when it ends, once the report says the tree is synced and every site
that answers has shown its own synced status (the report may be written before the feeds' last
update arrives; a screen that says "synced" beside a site at 88 % is a wrong screen). A feed that
stays behind for `REPORT_WAIT_S` does not hold the summary back.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Footer

from lanscatter.core.status import StatusDoc, StatusEvent
from lanscatter.topology.summary import summary_lines
from lanscatter_tui.feed_client import DEFAULT_BACKOFF, Backoff, Source, follow
from lanscatter_tui.view_model import (
    EtaClock,
    LinkTotals,
    SiteView,
    completions,
    event_line,
    node_detail,
    overview,
    site_view,
)
from lanscatter_tui.widgets import (
    ChunkMatrix,
    DetailLine,
    EventLog,
    HelpScreen,
    OverviewPanel,
    SiteBar,
    SummaryPanel,
)

# Three redraws a second at most: above the two the operator needs, below the feed's four.
REFRESH_INTERVAL_S = 1 / 3
STARTUP_GRACE_S = 15.0       # a site not answering yet is "connecting" this long, not an error
REPORT_POLL_S = 1.0
REPORT_CLOCK_SLACK_S = 1.0   # file times are coarser than the clock on some file systems
REPORT_WAIT_S = 5.0          # how long a synced report waits for the sites' feeds to show it too
EXIT_INTERRUPTED = 130       # as a shell reports a program stopped by Ctrl-C


class SiteStatus(Message):
    """A site's endpoint delivered a (new) status document."""

    def __init__(self, index: int, status: StatusDoc) -> None:
        super().__init__()
        self.index = index
        self.status = status


class SiteDown(Message):
    """A site's endpoint stopped answering (or refused); the worker keeps retrying."""

    def __init__(self, index: int, reason: str, at: float) -> None:
        super().__init__()
        self.index = index
        self.reason = reason
        self.at = at


@dataclass(slots=True)
class SiteState:
    """What the app knows of one site (mutable: owned by the app's message handlers)."""

    source: Source
    status: StatusDoc | None = None
    up: bool = True
    down_since: float | None = None
    seen_events: frozenset[StatusEvent] = frozenset()
    online: dict[str, bool] = field(default_factory=dict)
    complete: dict[str, str] = field(default_factory=dict)    # node -> the generation it completed
    synced_generation: str | None = None
    reached: bool = False
    cursor: int = 0
    link_totals: LinkTotals = field(default_factory=LinkTotals)

    @property
    def label(self) -> str:
        if self.source.label or self.status is None:
            return self.source.display_name
        return self.status.site or self.status.name or self.source.display_name


class MonitorApp(App[int]):
    CSS_PATH = "monitor.tcss"
    TITLE = "lanscatter"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "interrupt", "Quit", show=False, priority=True),
        Binding("question_mark,f1", "help", "Help"),
        Binding("right,n,l", "next_site", "Next site"),
        Binding("left,p,h", "previous_site", "Prev site"),
        Binding("down,j", "move_focus(1)", "Next node"),
        Binding("up,k", "move_focus(-1)", "Prev node", show=False),
        Binding("pagedown", "move_focus(10)", "Page down", show=False),
        Binding("pageup", "move_focus(-10)", "Page up", show=False),
        Binding("home", "move_focus(-1000000)", "First node", show=False),
        Binding("end", "move_focus(1000000)", "Last node", show=False),
        *(Binding(str(n), f"show_site({n - 1})", f"Site {n}", show=False) for n in range(1, 10)),
    ]

    current_site: reactive[int] = reactive(0, init=False)

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        refresh_interval_s: float = REFRESH_INTERVAL_S,
        backoff: Backoff = DEFAULT_BACKOFF,
        ansi: bool | None = None,
        report: Path | None = None,
        handle_signals: bool = False,
        startup_grace_s: float = STARTUP_GRACE_S,
        report_wait_s: float = REPORT_WAIT_S,
    ) -> None:
        super().__init__()
        self._report_wait_s = report_wait_s
        self._synced_report: tuple[dict[str, Any], float] | None = None     # (report, when read)
        self._startup_grace_s = startup_grace_s
        self._ansi = ansi
        self._report = report
        self._report_seen: tuple[float, int] | None = None
        self._handle_signals = handle_signals
        self._started = time.time()
        self._eta = EtaClock()
        self.summary: list[str] = []
        self.sites = [SiteState(source) for source in sources]
        self._refresh_interval_s = refresh_interval_s
        self._backoff = backoff
        self._dirty = True
        self.redraws = 0

    def compose(self) -> ComposeResult:
        yield OverviewPanel(id="overview")
        yield SiteBar(id="sites")
        yield ChunkMatrix(id="matrix")
        yield DetailLine(id="detail")
        yield SummaryPanel(id="summary")
        yield EventLog(id="log")
        yield Footer()

    def on_mount(self) -> None:
        ansi = self._ansi if self._ansi is not None else self.console.color_system in ("standard", "windows")
        if ansi:
            # On a 16-colour terminal, a theme made of the terminal's own colours stays legible
            # where the default theme's shades of grey would collapse into one.
            self.theme = "ansi-dark"
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.add_signal_handler(sig, self.exit, None, 128 + sig)
        for index in range(len(self.sites)):
            self.follow_site(index)
        self.set_interval(self._refresh_interval_s, self._refresh_if_dirty)
        if self._report is not None:
            self.set_interval(REPORT_POLL_S, self.read_report)
            self.set_interval(REPORT_POLL_S / 4, self._show_synced_report)
        self.refresh_view()

    def on_unmount(self) -> None:
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def read_report(self) -> None:
        """Show the run's summary once the report file says the tree is synced (re-read on change)."""
        assert self._report is not None
        try:
            st = self._report.stat()
            if (st.st_mtime, st.st_size) == self._report_seen or st.st_mtime < self._started - REPORT_CLOCK_SLACK_S:
                return              # unchanged, or a previous run's (a rehearsal run again in the same folder)
            self._report_seen = (st.st_mtime, st.st_size)
            doc = json.loads(self._report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return                  # not written yet, or being replaced: the next poll sees it
        if isinstance(doc, dict) and doc.get("synced"):
            self._synced_report = (doc, time.monotonic())
            self._show_synced_report()

    def _show_synced_report(self) -> None:
        """The summary of a synced report, once the sites' own statuses agree (or waited enough)."""
        if self._synced_report is None:
            return
        doc, read_at = self._synced_report
        behind = [s for s in self.sites if s.up and s.status is not None and not s.status.synced]
        if behind and time.monotonic() - read_at < self._report_wait_s:
            return                  # their last updates are still on the way
        self._synced_report = None
        self.show_summary(doc)

    def show_summary(self, report: dict[str, Any]) -> None:
        lines = summary_lines(report)
        if lines != self.summary:
            if not self.summary:
                makespan = report.get("makespan_s")
                after = f" after {makespan:.1f} s" if isinstance(makespan, (int, float)) else ""
                # the sites' own clock (their last status), like every other line of the log
                when = max((s.status.time for s in self.sites if s.status), default=time.time())
                self._log_event(when, f"every site synced{after}: the summary is above", "info")
            self.summary = lines
            self.query_one(SummaryPanel).show(lines)

    @work(group="feeds")
    async def follow_site(self, index: int) -> None:
        await follow(
            self.sites[index].source,
            on_status=lambda status: self.post_message(SiteStatus(index, status)),
            on_down=lambda reason: self.post_message(SiteDown(index, reason, time.time())),
            backoff=self._backoff,
        )

    # --- feed messages ------------------------------------------------------------------------

    def on_site_status(self, message: SiteStatus) -> None:
        site = self.sites[message.index]
        if not site.up:
            self._log_event(time.time(), f"{site.label}: answering again", "info")
        status = site.link_totals.apply(message.status)
        site.up, site.down_since, site.status, site.reached = True, None, status, True
        self._log_new_events(site, status)
        self._log_node_changes(site, status)
        self._log_completions(site, status)
        self._dirty = True
        self._show_synced_report()

    def on_site_down(self, message: SiteDown) -> None:
        site = self.sites[message.index]
        if not site.reached and message.at - self._started < self._startup_grace_s:
            return                  # still coming up: the site bar says "connecting"
        if site.up:
            site.up, site.down_since = False, message.at
            never = "" if site.reached else " (never answered since the monitor started)"
            self._log_event(message.at, f"{site.label}: {message.reason}{never}", "error")
            self._dirty = True

    def _log_completions(self, site: SiteState, status: StatusDoc) -> None:
        """Log each node that completed the site's generation, and the site itself, once each."""
        for when, text in completions(site.label, status, site.complete):
            self._log_event(when, text, "info")
        gen = status.generation
        if gen and status.synced and site.synced_generation != gen:
            site.synced_generation = gen
            self._log_event(status.time, f"{site.label}: site synced", "info")

    def _log_new_events(self, site: SiteState, status: StatusDoc) -> None:
        for event in status.events:
            if event not in site.seen_events:
                text, level = event_line(site.label, event)
                self._log_event(event.t, text, level)
        site.seen_events = frozenset(status.events)

    def _log_node_changes(self, site: SiteState, status: StatusDoc) -> None:
        now = status.time
        online = {n.name: n.online for n in status.nodes}
        for name, is_online in online.items():
            was = site.online.get(name)
            if was is True and not is_online:
                self._log_event(now, f"{site.label}: node {name} is down", "warning")
            elif was is False and is_online:
                self._log_event(now, f"{site.label}: node {name} is back", "info")
        site.online = online

    def _log_event(self, when: float, text: str, level: str) -> None:
        self.query_one(EventLog).add(when, text, level)

    # --- drawing ------------------------------------------------------------------------------

    def _refresh_if_dirty(self) -> None:
        if self._dirty:
            self.refresh_view()

    def site_views(self) -> list[SiteView]:
        return [site_view(s.label, s.status, s.up) for s in self.sites]

    def refresh_view(self) -> None:
        """Redraw every widget from the stored status documents."""
        self._dirty = False
        self.redraws += 1
        views = self.site_views()
        ov = overview(zip(views, (s.status for s in self.sites)))
        ov = self._eta.estimate(ov, time.time())
        self.query_one(OverviewPanel).show(ov)
        self.query_one(SiteBar).show(views, self.current_site)
        if not views:
            return
        site, view = self.sites[self.current_site], views[self.current_site]
        site.cursor = max(0, min(site.cursor, len(view.nodes) - 1))
        node = view.nodes[site.cursor] if view.nodes else None
        self.query_one(ChunkMatrix).show(views, self.current_site, site.cursor)
        detail = node_detail(node) if node is not None else ""
        self.query_one(DetailLine).show(view, node, detail, site.down_since)

    def watch_current_site(self) -> None:
        self.refresh_view()

    # --- keys ---------------------------------------------------------------------------------

    def action_next_site(self) -> None:
        if self.sites:
            self.current_site = (self.current_site + 1) % len(self.sites)

    def action_previous_site(self) -> None:
        if self.sites:
            self.current_site = (self.current_site - 1) % len(self.sites)

    def action_show_site(self, index: int) -> None:
        if 0 <= index < len(self.sites):
            self.current_site = index

    def action_move_focus(self, step: int) -> None:
        if self.sites:
            self.sites[self.current_site].cursor = max(0, self.sites[self.current_site].cursor + step)
            self.refresh_view()

    def action_interrupt(self) -> None:
        self.exit(return_code=EXIT_INTERRUPTED)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    @property
    def focused_node(self) -> str | None:
        """Name of the node the cursor is on in the shown site (for tests and scripts)."""
        view = self.site_views()[self.current_site] if self.sites else None
        if view is None or not view.nodes:
            return None
        return view.nodes[min(self.sites[self.current_site].cursor, len(view.nodes) - 1)].name


def build_app(
    sources: Sequence[Source],
    *,
    refresh_interval_s: float = REFRESH_INTERVAL_S,
    backoff: Backoff = DEFAULT_BACKOFF,
    ansi: bool | None = None,
    report: Path | None = None,
    handle_signals: bool = False,
    startup_grace_s: float = STARTUP_GRACE_S,
    report_wait_s: float = REPORT_WAIT_S,
) -> MonitorApp:
    """The monitor for these site endpoints (shared by `lanscatter tui` and the tests).

    `ansi`: use the terminal's 16 colours (True), the full-colour theme (False), or decide from
    what the terminal reports (None). `report`: a run's report file whose summary to show once
    it says the tree is synced. `handle_signals`: SIGTERM/SIGINT/SIGHUP leave cleanly (the
    command line; tests leave the test runner's handlers alone). `startup_grace_s`: how long a site
    that never answered is "connecting" rather than down. `report_wait_s`: how long a synced
    report waits for the sites' feeds to say synced too.
    """
    return MonitorApp(sources, refresh_interval_s=refresh_interval_s, backoff=backoff, ansi=ansi,
                      report=report, handle_signals=handle_signals, startup_grace_s=startup_grace_s,
                      report_wait_s=report_wait_s)
