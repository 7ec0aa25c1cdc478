"""Every surface tells the same figures of one recorded run: the rehearsal behind
`feeds/rehearsal.jsonl` (the monitor's feed), whose `up` wrote `feeds/rehearsal.report.json` and
printed `feeds/rehearsal.up.txt` (headless progress lines and the end summary), and whose site
masters answered `/status`, `/metrics` and `/` at the end (`feeds/rehearsal.end.json`). All of it
comes from tests/tui/record_rehearsal.py: real processes, nothing written by hand.

One byte formatter (binary units: KiB, MiB), one spelling of each figure; slots never above their
total; every rate 0 once the transfers are over; an ETA only once a rate is known.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import resources
from typing import Any

import pytest
from feed_server import FEEDS, Recording
from prometheus_client.parser import text_string_to_metric_families

from lanscatter.core.sizes import format_bytes
from lanscatter.core.status import read_status
from lanscatter.net.metrics_http import metrics_body
from lanscatter.topology.summary import summary_lines
from lanscatter_tui.view_model import (
    EtaClock,
    link_line,
    node_detail,
    node_stats,
    overview,
    overview_line,
    site_view,
    slots_used,
)

RECORDING = Recording()
SITES = ("hq", "branch")
END: dict[str, dict[str, Any]] = json.loads((FEEDS / "rehearsal.end.json").read_text())
REPORT: dict[str, Any] = json.loads((FEEDS / "rehearsal.report.json").read_text())
UP_TEXT = (FEEDS / "rehearsal.up.txt").read_text()


def _metrics(text: str) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, sample.labels.get("node") or sample.labels.get("link") or "")] = sample.value
    return out


def _page_formatter(page: str, values: list[int]) -> list[str]:
    """The HTML page's own size formatter, run by node.js on `values`."""
    fmt = re.search(r"function fmt\(n\)\{.*?\n(?:.*\n)*?.*v/=1024;\}\}", page)
    assert fmt is not None, "the page has no fmt()"
    script = fmt.group(0) + f"\nconsole.log(JSON.stringify({json.dumps(values)}.map(fmt)));"
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, check=True)
    return list(json.loads(out.stdout))


def _progress_lines() -> list[str]:
    return [line.split("lanscatter.up: ", 1)[1] for line in UP_TEXT.splitlines() if re.search(r"up: +\d+\.\ds \| ", line)]


def test_up_printed_the_summary_of_the_report_it_wrote() -> None:
    lines = summary_lines(REPORT)
    assert UP_TEXT.rstrip("\n").splitlines()[-len(lines):] == lines
    assert REPORT["outcome"] == "synced" and REPORT["synced"] and REPORT["restarts"] == {"br-2": 3}
    assert "  restarts: br-2 3x" in lines and any(line.startswith("  makespan ") and "efficiency" in line for line in lines)


def test_the_headless_lines_the_report_the_status_and_the_monitor_agree() -> None:
    hq, branch = RECORDING.at("hq", RECORDING.end), RECORDING.at("branch", RECORDING.end)
    docs = read_status(hq), read_status(branch)
    views = [site_view("hq", docs[0], True), site_view("branch", docs[1], True)]
    ov = overview(zip(views, docs))
    size = format_bytes(REPORT["dataset_bytes"])

    # The data set: one figure, one spelling, on every surface.
    assert REPORT["dataset_bytes"] == hq["bytes"] == branch["bytes"] == ov.dataset_bytes
    assert f"of {size} everywhere" in overview_line(ov) and f", {size} in {REPORT['chunks']} chunks" in summary_lines(REPORT)[0]
    assert f"{size} in {REPORT['chunks']} chunks" in UP_TEXT          # the origin's "serving generation" line

    # Synced: the sites' status, the monitor, up's last line and the report say the same.
    last = _progress_lines()[-1]
    assert hq["synced"] and branch["synced"] and all(v.synced for v in views)
    assert "| hq 4/4 | branch 4/4 |" in last
    assert all(REPORT["sites"][s]["synced"] and REPORT["sites"][s]["hosts_done"] == 4 for s in SITES)

    # The WAN link: the relay's bytes (on the wire, and of data) are the monitor's, up's and the report's.
    (link,) = ov.links
    wan = REPORT["wan_links"]["wan:hq>branch"]
    status_link = branch["links"][0]
    assert link.carried == wan["bytes"] == status_link["bytes"] and link.data == wan["data_bytes"] == status_link["data_bytes"]
    data, wire = format_bytes(wan["data_bytes"]), format_bytes(wan["bytes"])
    ratio = f"{wan['data_bytes'] / REPORT['dataset_bytes']:.2f}x"
    assert f"carried {data} = {ratio} dataset, {wire} on the wire" in link_line(link)[0]
    assert f"wan:hq>branch {data} ({ratio}), {wire} on the wire" in last
    assert f"wan:hq>branch: {data} of data ({ratio} the data set), {wire} on the wire" in "\n".join(summary_lines(REPORT))

    # When each host finished: the report's times are the ones up logged.
    for host, figures in REPORT["hosts"].items():
        if figures["role"] != "master":
            assert f"lanscatter.up: {host} complete after {figures['done_s']:.1f} s" in UP_TEXT


def test_status_metrics_and_the_monitors_rows_carry_the_same_counts() -> None:
    for site in SITES:
        status, metrics = END[site]["status"], _metrics(END[site]["metrics"])
        fed = RECORDING.at(site, RECORDING.end)          # what the monitor's feed said last
        assert status["generation"] == fed["generation"] == REPORT["generation"]
        assert metrics[("lanscatter_dataset_bytes", "")] == status["bytes"] == REPORT["dataset_bytes"]
        assert metrics[("lanscatter_synced", "")] == 1.0 and status["synced"]
        view = site_view(site, read_status(fed), True)
        rows = {row.name: row for row in view.nodes}
        for node in status["nodes"]:
            name, row = node["name"], rows[node["name"]]
            assert metrics[("lanscatter_node_rx_bytes_total", name)] == node["rx_bytes"]
            assert metrics[("lanscatter_node_tx_bytes_total", name)] == node["tx_bytes"]
            assert metrics[("lanscatter_node_chunks", name)] == node["have"] == row.have == status["chunks"]
            fed_node = next(n for n in fed["nodes"] if n["name"] == name)
            assert (fed_node["rx_bytes"], fed_node["tx_bytes"]) == (node["rx_bytes"], node["tx_bytes"])
            for used, total in ((row.dl_slots_used, row.dl_slots), (row.ul_slots_used, row.ul_slots)):
                shown = slots_used(used, total)
                assert int(shown.split("/")[0]) <= total and f"/{total}" in shown
            assert f"{row.have}/{row.chunks}" in node_detail(row)
        for ln in status["links"]:
            assert metrics[("lanscatter_link_bytes_total", ln["name"])] == ln["bytes"]
    # A relay's upload counts what it serves its own site (its peers' receipts came from somewhere).
    gw_b = next(n for n in END["branch"]["status"]["nodes"] if n["name"] == "gw-b")
    assert gw_b["tx_bytes"] > 0


def test_every_rate_is_zero_once_the_transfers_are_over() -> None:
    statuses = [END[site]["status"] for site in SITES] + [RECORDING.at(site, RECORDING.end) for site in SITES]
    for status in statuses:
        for node in status["nodes"]:
            assert (node["name"], node["rx_rate"], node["tx_rate"]) == (node["name"], 0.0, 0.0)
        for ln in status["links"]:
            assert ln["rate"] == 0.0
    docs = [read_status(RECORDING.at(site, RECORDING.end)) for site in SITES]
    views = [site_view(site, doc, True) for site, doc in zip(SITES, docs)]
    ov = overview(zip(views, docs))
    assert ov.rate == 0.0 and "0 B/s  done" in overview_line(ov)
    assert all("     0     0" in node_stats(row, wide=True) for view in views for row in view.nodes)


def test_no_eta_before_a_rate_is_known() -> None:
    clock = EtaClock()
    first = min(t for frames in RECORDING.frames.values() for t, _ in frames)
    docs = [read_status(RECORDING.at(site, first)) for site in SITES]
    ov = clock.estimate(overview(zip([site_view(s, doc, True) for s, doc in zip(SITES, docs)], docs)), first)
    assert ov.eta_s is None and "ETA --" in overview_line(ov)


def test_the_html_page_is_the_products_and_formats_sizes_by_the_same_rule() -> None:
    page = resources.files("lanscatter").joinpath("static/status.html").read_text(encoding="utf-8")
    assert all(END[site]["page"] == page for site in SITES)
    if shutil.which("node") is None:
        pytest.skip("node.js is not installed: the page's formatter is not run")
    branch = END["branch"]["status"]
    figures = [REPORT["dataset_bytes"], REPORT["wan_links"]["wan:hq>branch"]["bytes"],
               *(n["rx_bytes"] for n in branch["nodes"]), 0, 1000, 1536, 2**40]
    assert _page_formatter(page, figures) == [format_bytes(v) for v in figures]


def test_which_version_a_node_shows_is_the_same_on_status_metrics_and_the_detail_line() -> None:
    gen1, gen2 = "a1" * 32, "b2" * 32
    node = {"name": "hq-1", "role": "peer", "online": True, "have": 3, "bitmap": "", "inflight": "",
            "rx_bytes": 0, "tx_bytes": 0,
            "active": {"generation": gen1, "label": "build [b]1", "published_ms": 1_700_000_000_000, "activated": 1.0},
            "staged": {"generation": gen2, "label": "", "progress": 0.25, "whole": False}}
    status = read_status({"chunks": 4, "bytes": 1, "synced": False, "nodes": [node], "links": [],
                          "commit": {"mode": "tree", "state": "overdue", "ready": 1, "hosts": 2}})
    row = site_view("hq", status, True).nodes[0]
    assert node_detail(row).endswith(f"shows 'build [b]1' ({gen1[:12]}), staging {gen2[:12]} 25%")
    text = metrics_body(lambda: status)[0].decode()
    assert (f'lanscatter_node_active_published_timestamp_seconds{{generation="{gen1}",label="build [b]1",'
            f'node="hq-1"}} 1.7e+09') in text
    assert f'lanscatter_node_staged_ratio{{generation="{gen2}",node="hq-1"}} 0.25' in text
    assert "lanscatter_commit_overdue 1.0" in text
