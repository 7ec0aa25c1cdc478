"""The monitor's widgets. Each renders a view-model value handed to `show()`; none computes.

Colours are the 16 ANSI ones by name, so the monitor stays readable on a 16-colour terminal; the
matrix glyphs carry the held fraction even without colour.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Key
from textual.screen import ModalScreen
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from lanscatter_tui.units import clock
from lanscatter_tui.view_model import (
    COMPACT_STATS,
    WIDE_STATS,
    Mark,
    NodeRow,
    Overview,
    SiteView,
    bin_edges,
    cell_row,
    link_line,
    matrix_caption,
    name_width,
    node_stats,
    overview_line,
    site_tab,
    use_wide_stats,
)

MARK_STYLES = {
    Mark.EMPTY: Style(color="bright_black"),
    Mark.HELD: Style(color="green"),
    Mark.INFLIGHT: Style(color="bright_yellow", bold=True),
    Mark.DOWN: Style(color="red"),
}
LEVEL_STYLES = {"error": Style(color="bright_red", bold=True), "warning": Style(color="yellow")}
HEADER_STYLE = Style(bold=True)
DOWN_STYLE = Style(color="bright_red", bold=True)
CURSOR_STYLE = Style(reverse=True)


class OverviewPanel(Static):
    """Overall progress and ETA, then one line per WAN link with a utilisation bar."""

    _lines = 0

    def show(self, ov: Overview) -> None:
        text = Text()
        text.append("lanscatter ", HEADER_STYLE)
        text.append(overview_line(ov))
        name_w = max((len(link.name) for link in ov.links), default=0)
        bar_w = 10
        for link in ov.links:
            rest, fill = link_line(link)
            filled = round(fill * bar_w)
            text.append("\n")
            text.append(f"{link.name:<{name_w}} ")
            text.append("█" * filled, Style(color="cyan"))
            text.append("░" * (bar_w - filled), Style(color="bright_black"))
            text.append(f" {rest}")
        if not ov.links:
            text.append("\nno WAN links reported")
        # A layout pass costs more than the redraw itself: only when the panel's height changes.
        lines = text.plain.count("\n") + 1
        self.update(text, layout=lines != self._lines)
        self._lines = lines


class SiteBar(Static):
    """The sites in key order; the shown one highlighted, a silent one in red."""

    def show(self, views: Sequence[SiteView], current: int) -> None:
        text = Text()
        for index, view in enumerate(views):
            style = DOWN_STYLE if not view.up else Style()
            if index == current:
                style += CURSOR_STYLE
            if index:
                text.append(" │ ", Style(color="bright_black"))
            text.append(f" {site_tab(index + 1, view)} ", style)
        self.update(text, layout=False)


class ChunkMatrix(Widget):
    """A row per node, a column per chunk (or bin of chunks), with the node's figures first.

    When every site's rows fit, all sites are drawn one under the other (a large terminal is used
    fully); otherwise only the shown site, scrolled to keep the focused node in view. Only visible
    rows are drawn (line API), and a node row's cells are cached by its bitmaps.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._views: Sequence[SiteView] = ()
        self._current = 0
        self._cursor = 0
        self._top = 0
        self._lines: list[tuple[SiteView, NodeRow | None]] = []
        self._name_w = 5
        self._wide = False
        self._columns = 0

    def show(self, views: Sequence[SiteView], current: int, cursor: int) -> None:
        self._views, self._current, self._cursor = views, current, cursor
        self._lay_out()
        self.refresh()

    def on_resize(self) -> None:
        self._lay_out()

    def _lay_out(self) -> None:
        """Column widths, and which (site, node-or-title) goes on each line below the header."""
        width, rows = self.size.width, max(1, self.size.height - 1)
        nodes = [n for v in self._views for n in v.nodes]
        self._name_w = name_width(nodes) + 1  # with the gap before the figures
        self._wide = use_wide_stats(width, self._name_w)
        self._columns = max(0, width - self._name_w - len(WIDE_STATS if self._wide else COMPACT_STATS) - 1)
        stacked = len(self._views) > 1 and sum(len(v.nodes) + 1 for v in self._views) <= rows
        if stacked:
            self._top = 0
            self._lines = [line for v in self._views for line in [(v, None), *((v, n) for n in v.nodes)]]
            return
        if not self._views:
            self._lines = []
            return
        nodes = self._views[self._current].nodes
        if self._cursor < self._top:
            self._top = self._cursor
        elif self._cursor >= self._top + rows:
            self._top = self._cursor - rows + 1
        self._top = max(0, min(self._top, max(0, len(nodes) - rows)))
        view = self._views[self._current]
        self._lines = [(view, n) for n in nodes[self._top : self._top + rows]]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if not any(v.nodes for v in self._views):
            message = "waiting for the first status…" if y == 0 else ""
            return Strip([Segment(message[:width].ljust(width))], width)
        if y == 0:
            stats = WIDE_STATS if self._wide else COMPACT_STATS
            head = f"{'node':<{self._name_w}}{stats}  "
            head += matrix_caption(self._views[self._current].chunks, self._columns)
            return Strip([Segment(head[:width].ljust(width), HEADER_STYLE)], width)
        if y - 1 >= len(self._lines):
            shown = self._views[self._current]
            if y == 1 and not shown.nodes:
                note = "no status received from this site yet" if not shown.known else "no nodes reported"
                return Strip([Segment(note[:width].ljust(width))], width)
            return Strip.blank(width)
        view, node = self._lines[y - 1]
        if node is None:
            index = list(self._views).index(view)
            style = HEADER_STYLE + (CURSOR_STYLE if index == self._current else Style())
            if not view.up:
                style += DOWN_STYLE
            return Strip(
                [Segment(f"── {site_tab(index + 1, view)} ".ljust(width, "─")[:width], style)], width
            )
        shown = self._views[self._current]
        focused = view is shown and node is shown.nodes[min(self._cursor, len(shown.nodes) - 1)]
        return self._node_strip(view, node, focused, self._name_w, self._wide, self._columns)

    def _node_strip(
        self, view: SiteView, node: NodeRow, focused: bool, name_w: int, wide: bool, columns: int
    ) -> Strip:
        online = node.online and view.up
        name_style = Style() if online else DOWN_STYLE
        if focused:
            name_style += CURSOR_STYLE
        segments = [
            Segment(node.name[: name_w - 1].ljust(name_w - 1), name_style),
            Segment(" "),
            Segment(node_stats(node, wide), Style() if node.online else DOWN_STYLE),
            Segment(" "),
        ]
        cells = cell_row(node.bitmap, node.inflight, bin_edges(view.chunks, columns), online)
        start = 0
        marks = cells.marks
        for end in range(1, len(marks) + 1):
            if end == len(marks) or marks[end] != marks[start]:
                segments.append(Segment(cells.glyphs[start:end], MARK_STYLES[marks[start]]))
                start = end
        return Strip(segments).adjust_cell_length(self.size.width)


class DetailLine(Static):
    """The focused node's full figures, or why the site shows no live data."""

    def show(self, view: SiteView, node: NodeRow | None, detail: str, down_since: float | None) -> None:
        if not view.up:
            since = f" since {clock(down_since)}" if down_since is not None else ""
            shown = " (last known state shown)" if view.known else ""
            text = Text(f"{view.label}: not answering{since}; retrying{shown}", DOWN_STYLE)
        elif node is None:
            text = Text("no node to show" if view.known else f"{view.label}: connecting…")
        else:
            text = Text(detail, DOWN_STYLE if not node.online else Style())
        if view.up and view.insecure:
            text = Text.assemble((f"INSECURE: {view.label} runs with no swarm secret · ", DOWN_STYLE), text)
        self.update(text, layout=False)


class SummaryPanel(Static):
    """The run's end summary (the lines `lanscatter up` prints when it ends); hidden until then."""

    def show(self, lines: list[str]) -> None:
        self.update(Text("\n".join(lines)))
        self.display = bool(lines)


class EventLog(Static):
    """Errors, slow sources, restarts, nodes and sites going down and coming back; newest last.

    Entries are kept in time order whatever order the sites' feeds deliver them in, so two
    sites' histories interleave as they happened.
    """

    def __init__(self, *, max_entries: int = 500, id: str | None = None) -> None:
        super().__init__(id=id)
        self._entries: list[tuple[float, int, str, str]] = []
        self._max_entries = max_entries
        self._added = 0

    @property
    def lines(self) -> list[str]:
        return [f"{clock(when)} {text}" for when, _, text, _ in self._entries]

    def add(self, when: float, text: str, level: str) -> None:
        self._added += 1
        bisect.insort(self._entries, (when, self._added, text, level))
        del self._entries[: -self._max_entries]
        self.refresh_entries()

    def on_resize(self) -> None:
        self.refresh_entries()

    def refresh_entries(self) -> None:
        shown = self._entries[-max(1, self.size.height) :]
        content = Text()
        for index, (when, _, text, level) in enumerate(shown):
            if index:
                content.append("\n")
            content.append(f"{clock(when)} ", Style(color="bright_black"))
            content.append(text, LEVEL_STYLES.get(level, Style()))
        self.update(content, layout=False)


HELP_TEXT = """\
[b]Keys[/b]
  right / n / l     next site           1-9   show site N
  left / p / h      previous site
  down / j, up / k  focus next / previous node
  pgdn / pgup       move the focus a page
  home / end        first / last node
  ?                 this help           q     quit (ctrl+c: quit, exit 130)

[b]Matrix[/b]  a row per node, a column per chunk (or per bin of chunks).
  · none held   ░ ▒ ▓ part of the bin held   █ all held
  yellow: chunks arriving now   red: node or site down (last known state)

[b]Columns[/b]  done = chunks held; dl/ul = download/upload slots in use/total
  (+: more transfers than slots: ones finishing, WAN uploads beside the slots);
  rx/s, tx/s = bytes per second (Ki, Mi, Gi: powers of 1024); upld = average
  time to serve one chunk.

[b]Header[/b]  progress and ETA over all nodes; per WAN link: use against its
  capacity and the data it brought against the data set (1.00x is ideal),
  with the bytes on the wire when LZ4 made them fewer.

Press any key to close."""


class HelpScreen(ModalScreen[None]):
    """The key list over the monitor; any key closes it."""

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(HELP_TEXT)

    def on_key(self, event: Key) -> None:
        event.stop()
        self.dismiss()
