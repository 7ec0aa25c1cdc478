"""The monitor's view model: binning, shading, progress, ETA and link rows, without a terminal."""

from __future__ import annotations

import base64
import itertools
from dataclasses import replace
from typing import Any

import pytest

from lanscatter.core.status import LinkStatus, StatusDoc, read_status
from lanscatter_tui.units import human_duration
from lanscatter_tui.view_model import (
    LinkTotals,
    Mark,
    bin_counts,
    bin_edges,
    cell_row,
    link_line,
    node_stats,
    overview,
    shade,
    site_view,
    use_wide_stats,
)


def bitmap(chunks: int, held: set[int]) -> str:
    return base64.b64encode(sum(1 << i for i in held).to_bytes((chunks + 7) // 8, "little")).decode()


def node(name: str, chunks: int, held: set[int], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "role": "peer",
        "online": True,
        "have": len(held),
        "bitmap": bitmap(chunks, held),
        "inflight": bitmap(chunks, set()),
        **extra,
    }


def test_bins_cover_every_chunk_once_and_differ_by_one_at_most() -> None:
    for chunks, columns in [(10_000, 70), (96, 79), (7, 3), (5, 80), (1, 1)]:
        edges = bin_edges(chunks, columns)
        sizes = [b - a for a, b in itertools.pairwise(edges)]
        assert edges[0] == 0 and edges[-1] == chunks
        assert len(sizes) == min(chunks, columns)
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert bin_edges(0, 10) == (0,)


def test_bin_counts_read_bits_least_significant_first() -> None:
    # chunk 0 is bit 0 of byte 0; chunk 9 is bit 1 of byte 1.
    raw = base64.b64encode(bytes([0b0000_0001, 0b0000_0010])).decode()
    assert bin_counts(raw, (0, 8, 16)) == [1, 1]
    assert bin_counts(raw, (0, 1, 9, 10, 16)) == [1, 0, 1, 0]


def test_shades_and_marks() -> None:
    assert [shade(h, 9) for h in (0, 1, 4, 7, 9)] == ["·", "░", "▒", "▓", "█"]
    row = cell_row(bitmap(8, {0, 1, 2, 3, 4}), bitmap(8, {5}), (0, 2, 4, 6, 8), True)
    assert row.glyphs == "██▒·"
    assert row.marks == Mark.HELD + Mark.HELD + Mark.INFLIGHT + Mark.EMPTY
    assert cell_row(bitmap(8, {0}), "", (0, 4, 8), False).marks == Mark.DOWN * 2


def test_progress_and_eta_count_each_node_once_and_leave_out_the_origin() -> None:
    chunks, size = 10, 10 * 1_000_000
    hq = {
        "site": "hq",
        "chunks": chunks,
        "bytes": size,
        "nodes": [
            node("origin", chunks, set(range(10)), role="master"),
            node("p1", chunks, set(range(5)), rx_rate=1_000_000.0),
            node("relay", chunks, {0, 1}, role="relay", rx_rate=500_000.0),
        ],
        "links": [{"name": "wan:hq>b", "bytes": 2_000_000, "bytes_per_s": 1_000_000.0, "rate": 500_000.0}],
    }
    branch = {
        "site": "b",
        "chunks": chunks,
        "bytes": size,
        "nodes": [
            node("relay", chunks, {0, 1}, role="relay", rx_rate=500_000.0),
            node("b1", chunks, set(), rx_rate=500_000.0, online=False),
        ],
        "links": [{"name": "wan:hq>b", "bytes": 1_000_000, "bytes_per_s": 1_000_000.0, "rate": 0.0}],
    }
    hq_doc, branch_doc = read_status(hq), read_status(branch)
    views = [(site_view("hq", hq_doc, True), hq_doc), (site_view("b", branch_doc, True), branch_doc)]
    ov = overview(views)
    assert ov.progress == pytest.approx(7 / 30)
    assert ov.rate == 1_500_000.0  # the offline node's stale rate is not counted
    assert ov.eta_s == pytest.approx(23 * 1_000_000 / 1_500_000)
    (link,) = ov.links
    assert link.carried == 2_000_000 and link.utilisation == 0.5  # the larger count wins
    text, fill = link_line(link)
    assert fill == 0.5 and "50% of 8 Mbit/s" in text and "0.20x dataset" in text
    assert views[0][0].progress == pytest.approx(7 / 20)


def test_eta_is_unknown_without_rate_and_zero_when_done() -> None:
    idle = read_status({"chunks": 4, "bytes": 4, "nodes": [node("p", 4, {0})]})
    assert overview([(site_view("s", idle, True), idle)]).eta_s is None
    done = read_status({"chunks": 4, "bytes": 4, "nodes": [node("p", 4, {0, 1, 2, 3})]})
    assert overview([(site_view("s", done, True), done)]).eta_s == 0.0


def test_node_stats_keep_their_column_width() -> None:
    view = site_view(
        "s",
        read_status({
            "chunks": 8,
            "nodes": [
                node(
                    "a",
                    8,
                    {1},
                    downloads=2,
                    dl_slots=4,
                    uploads=1,
                    ul_slots=4,
                    rx_rate=12e6,
                    tx_rate=3.4e6,
                    avg_upload_s=1.25,
                ),
                node("b", 8, set(), online=False),
            ],
        }),
        True,
    )
    for wide in (True, False):
        widths = {len(node_stats(n, wide)) for n in view.nodes}
        assert len(widths) == 1
    assert node_stats(view.nodes[0], True).split() == ["12%", "2/4", "1/4", "11Mi", "3.2Mi", "1.2s"]
    assert node_stats(view.nodes[1], False).strip() == "down"
    assert use_wide_stats(120, 8) and not use_wide_stats(80, 14)


def test_a_site_never_heard_from() -> None:
    view = site_view("b", None, False)
    assert not view.known and not view.up and view.nodes == () and view.progress == 0.0


def test_units() -> None:
    assert [human_duration(s) for s in (0.4, 59, 125, 7300, 400_000)] == ["0s", "59s", "2m05s", "2h01m", "4d"]


def test_a_site_whose_master_runs_open_is_marked_insecure() -> None:
    base: dict[str, Any] = {"chunks": 0, "nodes": [], "synced": False, "generation": None}
    assert site_view("hq", read_status({**base, "insecure": True}), True).insecure
    assert not site_view("hq", read_status(base), True).insecure
    assert not site_view("hq", None, False).insecure


def test_a_site_with_standby_gateways_names_the_one_relaying() -> None:
    from lanscatter.core.status import GatewayStatus, StatusDoc
    from lanscatter_tui.view_model import site_tab, site_view

    status = StatusDoc(role="relay", name="gw-b", chunks=4, generation="g", gateway=GatewayStatus(rank=1, active=True))
    assert site_tab(2, site_view("br", status, True)) == "2 br 100% via gw-b"
    assert site_tab(2, site_view("br", replace(status, gateway=None), True)) == "2 br 100%"


def test_a_link_counts_on_across_its_relays_restart_as_the_report_does() -> None:
    totals = LinkTotals()

    def shown(wire: int, data: int) -> tuple[int, int | None]:
        (link,) = totals.apply(StatusDoc(links=(LinkStatus("wan:hq>br", bytes=wire, data_bytes=data),))).links
        return link.bytes, link.data_bytes

    assert shown(800, 1000) == (800, 1000)
    assert shown(100, 120) == (900, 1120)            # the relay restarted: its counters start again
    assert shown(300, 400) == (1100, 1400)
    assert totals.apply(StatusDoc()) == StatusDoc()
