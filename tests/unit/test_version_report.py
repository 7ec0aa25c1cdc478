"""`lanscatter status`'s report (version_report.py) from site masters' status documents: per host
the version shown, the one staged and its progress, the hosts behind; a silent site, a host never
joined, and hostile texts from the network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lanscatter.core.status import StatusError, read_status
from lanscatter.deploy.version_report import age_text, build_report, render
from lanscatter.topology.derive import derive_plan
from lanscatter.topology.validate import load_topology

EXAMPLE = Path(__file__).parents[2] / "examples" / "topologies" / "hub-two-branches.yaml"
G1, G2 = "a1" * 32, "b2" * 32


def _v(gen: str, label: str, ms: int = 1_000_000) -> dict[str, Any]:
    return {"generation": gen, "label": label, "published_ms": ms}


def _node(name: str, active: dict[str, Any] | None, staged: dict[str, Any] | None = None,
          online: bool = True) -> dict[str, Any]:
    return {"name": name, "online": online, "active": active and {**active, "activated": 5.0}, "staged": staged}


def test_report_shows_each_hosts_version_what_it_stages_and_who_is_behind() -> None:
    plan = derive_plan(load_topology(EXAMPLE))
    now = 1_000 + 7200.0
    hub = {"time": now, "published": _v(G2, "build 2"),
           "commit": {"state": "staging", "mode": "tree", "ready": 3, "hosts": 4, "waiting": ["paris-2"],
                      "committed": G1, "committed_label": "build 1"},
           "nodes": [_node("hub-origin", _v(G2, "build 2")), _node("hub-ws1", _v(G2, "build 2")),
                     _node("hub-ws2", _v(G1, "build 1", 0), {"generation": G2, "label": "build 2",
                                                             "progress": 0.45, "whole": False}),
                     _node("paris-gw", _v(G1, "build 1")), _node("lyon-gw", _v(G2, "build 2"))]}
    paris = {"time": now, "nodes": [
        _node("paris-gw", _v(G1, "build 1"), {"generation": G2, "label": "build 2", "progress": 1.0, "whole": True}),
        _node("paris-1", _v(G2, "build 2")),
        _node("paris-2", _v(G1, "<b>\x1b[31m" + "x" * 300), online=False)]}
    report = build_report(plan, {"hub": read_status(hub), "paris": read_status(paris), "lyon": None})
    assert report["current"]["generation"] == G2
    assert report["behind"] == ["hub-ws2", "paris-gw", "paris-2"]
    assert report["unknown"] == ["lyon-1"]                 # its site did not answer: not known, not behind
    hosts = {h["name"]: h for s in report["sites"] for h in s["hosts"]}
    assert hosts["hub-ws1"]["active"]["age_s"] == now - 1000 and not hosts["hub-ws1"]["behind"]
    assert hosts["hub-ws2"]["staged"] == {"generation": G2, "label": "build 2", "progress": 0.45, "whole": False}
    assert hosts["hub-ws1"]["active"]["activated"] == 5.0
    assert not hosts["hub-origin"]["behind"]
    assert not hosts["lyon-1"]["listed"]                   # its site did not answer ...
    assert hosts["lyon-gw"]["active"]["generation"] == G2  # ... its relay is known from the hub
    label = hosts["paris-2"]["active"]["label"]
    assert "\x1b" not in label and "<b>" in label and len(label) <= 512
    text = render(report)
    assert "origin: version 'build 2' (b2b2b2b2b2b2)" in text
    assert "tree commit (tree activation): staging, 3 of 4 hosts joined hold it; waiting for paris-2" in text
    assert "staging 'build 2' (b2b2b2b2b2b2) 45%" in text
    assert "staged 'build 2' (b2b2b2b2b2b2) whole, waiting for the commit" in text
    assert "site lyon (its master lyon-gw did not answer)" in text
    assert "hosts behind: 3 of 7 (hub-ws2, paris-gw, paris-2); not known for 1 whose site did not answer (lyon-1)" in text
    assert "[down]" in text and "\x1b" not in text
    assert max(len(line) for line in text.splitlines()) < 200


def test_hostile_version_fields_are_refused_where_the_document_is_read() -> None:
    base = {"time": 1.0, "nodes": [_node("hub-ws1", _v(G1, "x"))]}
    assert read_status(base).nodes[0].active is not None
    for bad in ({"generation": G1, "label": "x" * 600}, {"generation": 5}, {"generation": G1, "published_ms": -4}):
        with pytest.raises(StatusError):
            read_status({**base, "nodes": [{"name": "n", "active": bad}]})
    for staged in ({"generation": G2, "progress": 1.5}, {"generation": G2, "progress": "half"}):
        with pytest.raises(StatusError):
            read_status({**base, "nodes": [{"name": "n", "staged": staged}]})
    with pytest.raises(StatusError):
        read_status({**base, "commit": {"mode": "tree", "state": "staging", "waiting": ["n"] * 100}})
    plan = derive_plan(load_topology(EXAMPLE))
    report = build_report(plan, {"hub": read_status({"time": 1.0})})
    assert report["current"] is None and report["behind"] == []
    assert "no version published" in render(report)


def test_nothing_is_said_behind_when_the_origin_does_not_answer() -> None:
    plan = derive_plan(load_topology(EXAMPLE))
    report = build_report(plan, {"hub": None, "paris": None, "lyon": None})
    assert report["behind"] == [] and len(report["unknown"]) == report["hosts"] == 7
    text = render(report)
    assert "hosts behind: not known (the origin did not answer)" in text and "0 of" not in text


def test_ages_read_as_an_operator_says_them() -> None:
    assert [age_text(s) for s in (None, 5, 125, 7300, 200000)] == ["?", "5 s", "2 min", "2 h", "2 d"]
