"""Every surface tells the same figures of one recorded run (`feeds/rehearsal.jsonl`, its end):
the monitor's view model, `up`'s headless progress line, the report and its summary, /status,
/metrics and the HTML page. One byte formatter, one spelling of each figure."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from feed_server import Recording
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from lanscatter.core.sizes import format_bytes
from lanscatter.core.status import StatusDoc, read_status
from lanscatter.deploy.tracker import SyncTracker
from lanscatter.deploy.watch import Watcher
from lanscatter.net.node_http import _StatusCollector
from lanscatter.topology import derive_plan, load_topology
from lanscatter.topology.summary import summary_lines
from lanscatter_tui.view_model import link_line, node_detail, overview, overview_line, site_view, slots_used

RECORDING = Recording()
TREE = """\
dataset: {name: demo, source: SOURCE, origin: origin, chunk_size: 256KiB, secret: {value: x-secret-for-this-test}}
sites:
  hq: {lan: 60Mbit, hosts: [origin, hq-1, hq-2, hq-3]}
  branch: {lan: 60Mbit, gateway: gw-b, hosts: [gw-b, br-1, br-2, br-3]}
wan:
  - {between: [hq, branch], bandwidth: 16Mbit}
"""


def _metrics(status: StatusDoc) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatusCollector(lambda: status))
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out[(sample.name, sample.labels.get("node") or sample.labels.get("link") or "")] = sample.value
    return out


def _page_formatter(values: list[int]) -> list[str]:
    """The HTML page's own size formatter, run by node.js on `values`."""
    page = resources.files("lanscatter").joinpath("static/status.html").read_text(encoding="utf-8")
    fmt = re.search(r"function fmt\(n\)\{.*?\n(?:.*\n)*?.*v/=1024;\}\}", page)
    assert fmt is not None, "the page has no fmt()"
    script = fmt.group(0) + f"\nconsole.log(JSON.stringify({json.dumps(values)}.map(fmt)));"
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, check=True)
    return list(json.loads(out.stdout))


def test_the_surfaces_agree_on_one_recorded_run(tmp_path: Path) -> None:
    tree = tmp_path / "tree.yaml"
    tree.write_text(TREE.replace("SOURCE", str(tmp_path / "source")))
    plan = derive_plan(load_topology(tree), local=True, workdir=tmp_path)
    hq, branch = RECORDING.at("hq", RECORDING.end), RECORDING.at("branch", RECORDING.end)
    docs = read_status(hq), read_status(branch)
    tracker = SyncTracker(plan)
    tracker.observe(30.0, "hq", docs[0])
    tracker.observe(30.0, "branch", docs[1])
    report = tracker.report()
    summary = "\n".join(summary_lines(report))
    headless = Watcher(plan, tracker, plan.hosts).progress_line()
    views = [site_view("hq", docs[0], True), site_view("branch", docs[1], True)]
    ov = overview(zip(views, docs))

    # The data set: one figure, one spelling, on the monitor and in the summary.
    size = format_bytes(hq["bytes"])
    assert report["dataset_bytes"] == hq["bytes"] == ov.dataset_bytes
    assert f"of {size} everywhere" in overview_line(ov) and f", {size} in {hq['chunks']} chunks" in summary

    # Synced: the sites' status, the monitor, the tracker and the report say the same.
    assert hq["synced"] and branch["synced"] and all(v.synced for v in views)
    assert report["synced"] and all(report["sites"][s]["synced"] for s in ("hq", "branch"))
    assert "hq 4/4" in headless and "branch 4/4" in headless and "office" not in summary
    assert "  hq        4/4" in summary and "  branch    4/4" in summary

    # The WAN link: the bytes the relay reports are the monitor's, the headless line's and the report's.
    (link,) = ov.links
    wan = report["wan_links"]["wan:hq>branch"]
    carried = format_bytes(wan["bytes"])
    assert link.carried == wan["bytes"] == branch["links"][0]["bytes"]
    assert f"carried {carried}" in link_line(link)[0]
    assert f"wan:hq>branch {carried}" in headless and f"{carried} on the wire" in summary
    ratio = f"{wan['bytes'] / hq['bytes']:.2f}x"
    assert ratio in link_line(link)[0] and ratio in headless and ratio in summary

    # Per node: /status, /metrics and the monitor's rows carry the same counts; slots never above total.
    for status, doc, view in ((hq, docs[0], views[0]), (branch, docs[1], views[1])):
        metrics = _metrics(doc)
        for node, row in zip(status["nodes"], view.nodes):
            assert metrics[("lanscatter_node_rx_bytes_total", node["name"])] == node["rx_bytes"]
            assert metrics[("lanscatter_node_tx_bytes_total", node["name"])] == node["tx_bytes"]
            assert metrics[("lanscatter_node_chunks", node["name"])] == node["have"] == row.have
            for used, total in ((row.dl_slots_used, row.dl_slots), (row.ul_slots_used, row.ul_slots)):
                shown = slots_used(used, total)
                assert int(shown.split("/")[0]) <= total and f"/{total}" in shown
            assert f"{row.have}/{row.chunks}" in node_detail(row)
        assert metrics[("lanscatter_dataset_bytes", "")] == hq["bytes"]
        for ln in status["links"]:
            assert metrics[("lanscatter_link_bytes_total", ln["name"])] == ln["bytes"]

    # The HTML page formats sizes by the same rule (when node.js is here to run its script).
    if shutil.which("node") is None:
        pytest.skip("node.js is not installed: the page's formatter is not run")
    figures = [hq["bytes"], wan["bytes"], *(n["rx_bytes"] for n in branch["nodes"]), 0, 1000, 1536, 2**40]
    assert _page_formatter(figures) == [format_bytes(v) for v in figures]
