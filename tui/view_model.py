"""What the monitor shows, computed from status documents: pure values, no Textual, no I/O.

Widgets render these values as they are; every decision about binning, shading, progress, ETA and
link use lives here so it can be tested without a terminal.

Chunk matrix: a row per node, a column per chunk, or per bin of consecutive chunks when there are
more chunks than columns. A cell's glyph shows the fraction of its chunks the node holds; its mark
says how to colour it (see `Mark`). Bitmaps follow the `/status` contract: base64 of
ceil(chunks/8) bytes, chunk i is bit i % 8 of byte i // 8 (least significant bit first).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from lanscatter.core.eta import MeanRateEta
from lanscatter.core.safe_text import safe_text
from lanscatter.core.sizes import format_bits_per_s, format_byte_rate, format_bytes
from lanscatter.core.status import (
    ActiveVersion,
    LinkStatus,
    NodeStatus,
    StagedVersion,
    StatusDoc,
    StatusEvent,
)
from lanscatter_tui.units import human_duration

# Glyphs by held fraction: none, under 1/3, under 2/3, under all, all.
SHADES = "·░▒▓█"


class Mark:
    """How a matrix cell is coloured (one character each, so a row's marks are a plain str)."""

    EMPTY = "e"
    HELD = "h"
    INFLIGHT = "i"
    DOWN = "d"


@dataclass(frozen=True, slots=True)
class CellRow:
    """One node's matrix cells: `glyphs[i]` drawn with the colour of `marks[i]`."""

    glyphs: str
    marks: str


@dataclass(frozen=True, slots=True)
class NodeRow:
    name: str
    role: str
    online: bool
    have: int
    chunks: int
    downloads: int                       # transfers in flight, in its slots or beside them
    uploads: int
    dl_slots: int
    ul_slots: int
    dl_slots_used: int                   # never above dl_slots
    ul_slots_used: int                   # never above ul_slots
    rx_rate: float
    tx_rate: float
    avg_upload_s: float | None
    bitmap: str
    inflight: str
    version: str = ""                    # the version its folder shows, and the one it stages

    @property
    def progress(self) -> float:
        return self.have / self.chunks if self.chunks else 1.0


@dataclass(frozen=True, slots=True)
class SiteView:
    """One site as its endpoint last described it; `up` is False while the endpoint is silent."""

    label: str
    up: bool
    known: bool
    generation: str | None
    chunks: int
    synced: bool
    nodes: tuple[NodeRow, ...]
    insecure: bool = False               # its master runs with no swarm secret (--insecure)
    gateway: str | None = None           # a site with standby gateways: the one relaying now

    @property
    def progress(self) -> float:
        counted = [n for n in self.nodes if n.role != "master"]
        total = sum(n.chunks for n in counted)
        return sum(n.have for n in counted) / total if total else (1.0 if self.known else 0.0)


@dataclass(frozen=True, slots=True)
class LinkRow:
    name: str
    carried: int                         # bytes on the wire
    data: int | None                     # chunk content it brought (None: its relay does not say)
    capacity: float | None
    rate: float
    dataset_bytes: int

    @property
    def utilisation(self) -> float | None:
        return self.rate / self.capacity if self.capacity else None


@dataclass(frozen=True, slots=True)
class Overview:
    progress: float
    rate: float
    eta_s: float | None
    dataset_bytes: int
    links: tuple[LinkRow, ...]


# --- reading status documents -----------------------------------------------------------------


def site_view(label: str, status: StatusDoc | None, up: bool) -> SiteView:
    if status is None:
        return SiteView(label, up, False, None, 0, False, ())
    return SiteView(
        label=label,
        up=up,
        known=True,
        generation=status.generation,
        chunks=status.chunks,
        synced=status.synced,
        nodes=tuple(_node_row(n, status.chunks) for n in status.nodes),
        insecure=status.insecure,
        gateway=status.name if status.gateway is not None else None,
    )


def _node_row(node: NodeStatus, chunks: int) -> NodeRow:
    return NodeRow(
        name=node.name,
        role=node.role,
        online=node.online,
        have=node.have,
        chunks=chunks,
        downloads=node.downloads,
        uploads=node.uploads,
        dl_slots=node.dl_slots,
        ul_slots=node.ul_slots,
        dl_slots_used=node.dl_slots_used,
        ul_slots_used=node.ul_slots_used,
        rx_rate=node.rx_rate,
        tx_rate=node.tx_rate,
        avg_upload_s=node.avg_upload_s,
        bitmap=node.bitmap,
        inflight=node.inflight,
        version=version_text(node.active, node.staged),
    )


def _version_name(v: ActiveVersion | StagedVersion) -> str:
    gen = v.generation[:12] or "?"
    return f"{safe_text(v.label, 40)!r} ({gen})" if v.label else gen


def version_text(active: ActiveVersion | None, staged: StagedVersion | None) -> str:
    """Which version a node shows, and the one it stages with its progress ("" when unknown)."""
    parts = []
    if active is not None:
        parts.append(f"shows {_version_name(active)}")
    if staged is not None:
        parts.append(f"staged {_version_name(staged)} whole, awaiting commit" if staged.whole
                     else f"staging {_version_name(staged)} {staged.progress:.0%}")
    return ", ".join(parts)


def overview(sites: Iterable[tuple[SiteView, StatusDoc | None]]) -> Overview:
    """Progress and ETA over every node of every site, and every WAN link, each counted once.

    A relay is listed by both the site it downloads from and the site it serves; nodes and links
    are counted once by name. The origin master always holds everything, so it is left out.
    Links come in the order of the sites they lead to (the tree's order), as in the summary.
    """
    nodes: dict[str, NodeRow] = {}
    links: dict[str, LinkRow] = {}
    rank: dict[str, int] = {}            # a link is listed where the site it leads to is
    dataset = 0
    for view, status in sites:
        rank.setdefault(view.label, len(rank))
        for node in view.nodes:
            if node.role != "master" and node.name not in nodes:
                nodes[node.name] = node
        if status is None:
            continue
        dataset = max(dataset, status.bytes)
        for link in status.links:
            row = _link_row(link, status.bytes)
            seen = links.get(row.name)
            if seen is None or row.carried > seen.carried:
                links[row.name] = row
    total = sum(n.chunks for n in nodes.values())
    held = sum(min(n.have, n.chunks) for n in nodes.values())
    chunk_bytes = dataset / max(1, max((n.chunks for n in nodes.values()), default=1))
    remaining = (total - held) * chunk_bytes
    rate = sum(n.rx_rate for n in nodes.values() if n.online)
    if total and held >= total:
        eta: float | None = 0.0
    else:
        eta = remaining / rate if rate > 0 else None
    return Overview(
        progress=held / total if total else 0.0,
        rate=rate,
        eta_s=eta,
        dataset_bytes=dataset,
        links=tuple(sorted(links.values(), key=lambda r: (rank.get(r.name.rpartition(">")[2], len(rank)), r.name))),
    )


@dataclass(slots=True)
class EtaClock:
    """The overview's ETA by the product's one rule (`lanscatter.core.eta`): from the mean progress rate,
    shown only once it has been measured for a few seconds. The app keeps one and feeds it."""

    eta: MeanRateEta = field(default_factory=MeanRateEta)

    def estimate(self, ov: Overview, now: float) -> Overview:
        if ov.progress >= 1.0 and ov.eta_s == 0.0:
            return ov
        return replace(ov, eta_s=self.eta.update(ov.progress, 1.0, now))


@dataclass(slots=True)
class LinkTotals:
    """A site's WAN link bytes over the monitor's whole run, counted as `up`'s report counts them: a
    relay that restarts counts from zero again, and what it had counted before stays counted (else
    the monitor would show less than the report for the same link)."""

    seen: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (link, key) -> (base, last)

    def apply(self, status: StatusDoc) -> StatusDoc:
        """`status` with each link's `bytes` and `data_bytes` as totals since the monitor started."""
        if not status.links:
            return status
        return replace(status, links=tuple(
            replace(link, bytes=self._total(link.name, "bytes", link.bytes),
                    data_bytes=None if link.data_bytes is None else self._total(link.name, "data", link.data_bytes))
            for link in status.links))

    def _total(self, link: str, key: str, value: int) -> int:
        base, last = self.seen.get((link, key), (0, 0))
        if value < last:                # the relay restarted and counts from zero again
            base += last
        self.seen[(link, key)] = (base, value)
        return base + value


def completions(label: str, status: StatusDoc, known: dict[str, str]) -> list[tuple[float, str]]:
    """(time, text) for each node of `status` that holds every chunk of its generation and is not
    yet in `known` (node -> generation), which is updated; the time is when the master saw it."""
    gen, chunks = status.generation, status.chunks
    if not gen or not chunks:
        return []
    since = status.generation_at
    out = []
    for node in status.nodes:
        name = node.name
        if name == status.name or node.have < chunks or known.get(name) == gen:
            # the site's own master or relay is logged where it downloads (a relay), or never (the origin)
            continue
        known[name] = gen
        when = node.complete_at if node.complete_at is not None else status.time
        after = f" after {when - since:.1f} s" if since is not None and when >= since else ""
        out.append((when, f"{label}: {name} complete{after}"))
    return out


def _link_row(link: LinkStatus, dataset_bytes: int) -> LinkRow:
    return LinkRow(
        name=link.name,
        carried=link.bytes,
        data=link.data_bytes,
        capacity=link.bytes_per_s or None,
        rate=link.rate,
        dataset_bytes=dataset_bytes,
    )


# --- chunk matrix -----------------------------------------------------------------------------


@lru_cache(maxsize=64)
def bin_edges(chunks: int, columns: int) -> tuple[int, ...]:
    """Chunk index where each column starts, plus `chunks` at the end.

    One column per chunk when they fit; otherwise `columns` bins whose sizes differ by one at most.
    """
    if chunks <= 0 or columns <= 0:
        return (0,)
    count = min(chunks, columns)
    return tuple(chunks * c // count for c in range(count + 1))


@lru_cache(maxsize=4096)
def _bit_string(bitmap: str) -> str:
    """The bitmap as '0'/'1' characters, chunk 0 first ('' when it is empty or unreadable).

    Counting '1's in a slice of this string is a C loop, which makes binning a row of 10,000
    chunks into a couple of hundred columns cheap enough to redraw several times a second.
    """
    try:
        data = base64.b64decode(bitmap)
    except (binascii.Error, ValueError):
        return ""
    value = int.from_bytes(data, "little")
    return format(value, f"0{len(data) * 8}b")[::-1] if value else ""


def bin_counts(bitmap: str, edges: Sequence[int]) -> list[int]:
    """How many chunks of each bin `bitmap` marks."""
    bits = _bit_string(bitmap)
    if not bits:
        return [0] * (len(edges) - 1)
    return list(map(bits.count, itertools.repeat("1"), edges[:-1], edges[1:]))


@lru_cache(maxsize=64)
def _bin_shades(edges: tuple[int, ...]) -> tuple[str, ...]:
    """Per bin, its glyph for each possible count (see `_shades`)."""
    return tuple(_shades(end - start) for start, end in itertools.pairwise(edges))


# Mark by (chunks in flight?) * 2 + (any chunk held?).
_MARK_BY_STATE = (Mark.EMPTY, Mark.HELD, Mark.INFLIGHT, Mark.INFLIGHT)


@lru_cache(maxsize=2048)
def cell_row(bitmap: str, inflight: str, edges: tuple[int, ...], online: bool) -> CellRow:
    """A node's matrix cells for the given bins (cached: rows that did not change cost nothing).

    Redrawn for every visible row at every refresh while chunks move, so the per-bin loops are
    `map`s over C functions rather than Python-level loops (about 4x faster at 200 bins).
    """
    held = bin_counts(bitmap, edges)
    glyphs = "".join(map(str.__getitem__, _bin_shades(edges), held))
    if not online:
        return CellRow(glyphs, Mark.DOWN * len(held))
    state = list(map(bool, held))
    if _bit_string(inflight):
        moving = map(bool, bin_counts(inflight, edges))
        state = list(map(operator.add, state, map(operator.mul, moving, itertools.repeat(2))))
    return CellRow(glyphs, "".join(map(_MARK_BY_STATE.__getitem__, state)))


@lru_cache(maxsize=256)
def _shades(size: int) -> str:
    """The glyph for every count 0..size of a bin of `size` chunks, by index."""
    return "".join(shade(held, size) for held in range(size + 1))


def shade(held: int, size: int) -> str:
    if held <= 0 or size <= 0:
        return SHADES[0]
    if held >= size:
        return SHADES[-1]
    return SHADES[1 + min(2, 3 * held // size)]


# --- text of rows and lines -------------------------------------------------------------------

NAME_MAX = 14
# Widths of the node columns before the matrix, in the wide and the compact layout.
WIDE_STATS = " done   dl   ul  rx/s  tx/s  upld"
COMPACT_STATS = " done  rx/s"


def name_width(nodes: Sequence[NodeRow]) -> int:
    return max(4, min(NAME_MAX, max((len(n.name) for n in nodes), default=4)))


def use_wide_stats(width: int, name_w: int) -> bool:
    """Wide stats when the matrix still gets 40 columns beside them."""
    return width - name_w - len(WIDE_STATS) - 1 >= 40


def node_stats(node: NodeRow, wide: bool) -> str:
    """The node's figures, aligned under WIDE_STATS or COMPACT_STATS."""
    if not node.online:
        return f"{'  down':<{len(WIDE_STATS if wide else COMPACT_STATS)}}"  # under "done"
    done = f"{int(node.progress * 100):>4}%"
    rx = f"{format_bytes(node.rx_rate, compact=True):>6}"
    if not wide:
        return f"{done}{rx}"
    avg = _short_seconds(node.avg_upload_s) if node.avg_upload_s is not None else "-"
    return (
        f"{done}{slots_used(node.dl_slots_used, node.dl_slots):>5}{slots_used(node.ul_slots_used, node.ul_slots):>5}"
        f"{rx}{format_bytes(node.tx_rate, compact=True):>6}{avg:>6}"
    )


def slots_used(used: int, slots: int) -> str:
    """'2/3': slots in use of the node's slots (the document never has more in use than there are)."""
    return f"{used}/{slots}"


def _beside(used: int, transfers: int, what: str) -> str:
    """' (+2 uploads beside the slots)' when transfers outnumber the slots they take: ones ending,
    WAN uploads the planner runs beside the slots."""
    extra = transfers - used
    return f" (+{extra} {what}{'s' if extra != 1 else ''} beside)" if extra > 0 else ""


def _short_seconds(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 9.95 else human_duration(seconds)


def node_detail(node: NodeRow) -> str:
    """Everything known about one node, for the line under the matrix."""
    if not node.online:
        return f"{node.name} ({node.role}) DOWN, last known {node.have}/{node.chunks} chunks"
    avg = f"{node.avg_upload_s:.2f}s" if node.avg_upload_s is not None else "-"
    return (
        f"{node.name} {node.role} {node.have}/{node.chunks} {node.progress:.0%}  "
        f"dl {slots_used(node.dl_slots_used, node.dl_slots)}{_beside(node.dl_slots_used, node.downloads, 'download')}"
        f" ul {slots_used(node.ul_slots_used, node.ul_slots)}{_beside(node.ul_slots_used, node.uploads, 'upload')}  "
        f"rx {format_byte_rate(node.rx_rate)} tx {format_byte_rate(node.tx_rate)}  avg up {avg}"
        + (f"  {node.version}" if node.version else "")
    )


def matrix_caption(chunks: int, columns: int) -> str:
    if chunks <= 0:
        return "no chunks"
    per = chunks / max(1, min(chunks, columns))
    return f"{chunks} chunks" if per <= 1 else f"{chunks} chunks, {per:.3g} a column"


def site_tab(index: int, view: SiteView) -> str:
    """The site's label in the site bar: number key, name, and its state."""
    if not view.up:
        state = "DOWN"
    elif not view.known:
        state = "…"
    elif view.synced:
        state = "synced"
    else:
        state = f"{view.progress:.0%}"
    via = f" via {view.gateway}" if view.gateway and view.up else ""
    return f"{index} {view.label} {state}{via}"


def overview_line(ov: Overview) -> str:
    if ov.eta_s is None:
        eta = "ETA --"
    elif ov.eta_s == 0 and ov.progress >= 1:
        eta = "done"
    else:
        eta = f"ETA {human_duration(ov.eta_s)}"
    return (
        f"{ov.progress:6.1%} of {format_bytes(ov.dataset_bytes)} everywhere  {format_byte_rate(ov.rate)}  {eta}"
    )


def link_line(link: LinkRow) -> tuple[str, float]:
    """A WAN link's figures (to print after its bar) and the bar's fill fraction."""
    use = link.utilisation
    if link.capacity:
        speed = f"{use or 0.0:4.0%} of {format_bits_per_s(link.capacity)}"
    else:
        speed = format_bits_per_s(link.rate)
    data = link.carried if link.data is None else link.data
    carried = f"carried {format_bytes(data)}"
    if link.dataset_bytes:
        carried += f" = {data / link.dataset_bytes:.2f}x dataset"
    if link.data is not None and link.carried < link.data:
        carried += f", {format_bytes(link.carried)} on the wire"
    return f"{speed}  {carried}", (min(1.0, use) if use is not None else 0.0)


def event_line(site: str, event: StatusEvent) -> tuple[str, str]:
    """(text, level) for one event of a site's status."""
    return f"{site}: {event.message}", event.level
