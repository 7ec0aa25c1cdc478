"""The end summary of a run, in words, from its report (`SyncTracker.report()` plus where things are).

Pure: one function from the report document to lines of text. `lanscatter up` prints it on the
terminal when a run ends (TUI and headless alike) and the monitor shows the same lines, so the two
can never disagree. Sizes through the product's one byte formatter (binary units).
"""

from __future__ import annotations

import math
from typing import Any

from lanscatter.core.sizes import format_bits_per_s, format_bytes

# What a run's outcome is called on the first line (and in the report's "outcome").
OUTCOMES = {
    "synced": "synced",
    "running": "running",
    "timed out": "timed out before every host was in sync",
    "interrupted": "stopped before every host was in sync",
    "alone": "stopped before any peer joined",      # a node run by hand that served nobody
}


def _seconds(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:.1f} s"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The summary of `report` (see docs/orchestrator.md, "The end summary")."""
    outcome = str(report.get("outcome") or ("synced" if report.get("synced") else "running"))
    gen = str(report.get("generation") or "")[:12]
    size = int(report.get("dataset_bytes") or 0)
    head = f"{report.get('dataset', '?')}: {OUTCOMES.get(outcome, outcome)}"
    if gen:
        head += f"; generation {gen}, {format_bytes(size)} in {report.get('chunks', 0)} chunks"
    lines = [head]
    sites: dict[str, Any] = report.get("sites") or {}
    width = max([4, *(len(name) for name in sites)])
    lines.append(f"  {'site':<{width}}  hosts  median    last")
    order = [n for n in report.get("site_order") or () if n in sites] or list(sites)    # the tree's order
    for name in order:
        site = sites[name]
        done = f"{site.get('hosts_done', 0)}/{site.get('hosts', 0)}"
        lines.append(f"  {name:<{width}}  {done:>5}  {_seconds(site.get('p50_s')):>6}  {_seconds(site.get('last_s')):>6}"
                     + ("" if site.get("synced") else "  (not synced)"))
    makespan, ideal, eff = report.get("makespan_s"), report.get("ideal_s"), report.get("efficiency")
    line = f"  makespan {_seconds(makespan)}"
    if isinstance(ideal, (int, float)):
        rate = report.get("bottleneck_bytes_per_s")
        at = f" at the {format_bits_per_s(rate)} bottleneck" if isinstance(rate, (int, float)) else ""
        line += f"; ideal {_seconds(ideal)}{at}"
    if isinstance(eff, (int, float)):
        line += f"; efficiency {eff:.0%}"
        if report.get("efficiency_clamped"):      # the ideal counts whole copies moved uncompressed
            line += " (faster than the ideal: data already in place, or compressed in flight)"
    lines.append(line)
    for name, link in _in_tree_order(report.get("wan_links") or {}, report.get("site_order") or []):
        wire, data = int(link.get("bytes") or 0), link.get("data_bytes")
        text = f"  {name}: "
        if isinstance(data, int):
            text += f"{format_bytes(data)} of data ({_ratio(data, size)} the data set), "
        text += f"{format_bytes(wire)} on the wire ({_ratio(wire, size)})"
        if isinstance(data, int) and data and wire < data:
            text += ", LZ4 in flight"
        lines.append(text)
    if "restarts" in report:           # a node's own summary has none: it restarts nothing
        restarts = {k: v for k, v in (report.get("restarts") or {}).items() if v}
        lines.append("  restarts: " + (", ".join(f"{k} {v}x" for k, v in sorted(restarts.items())) or "none"))
    if report.get("logs"):
        lines.append(f"  logs:   {report['logs']}")
    if report.get("report"):
        lines.append(f"  report: {report['report']}")
    return lines


def _in_tree_order(links: dict[str, Any], site_order: list[str]) -> list[tuple[str, Any]]:
    """WAN links ("wan:PARENT>SITE") in the order of the sites they lead to: a report read back
    from its file (keys sorted) and the one in memory print the same lines."""
    rank = {site: i for i, site in enumerate(site_order)}
    return sorted(links.items(), key=lambda kv: (rank.get(kv[0].rpartition(">")[2], len(rank)), kv[0]))


def _ratio(part: int, whole: int) -> str:
    return f"{part / whole:.2f}x" if whole and not math.isnan(part / whole) else "-"
