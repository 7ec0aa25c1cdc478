"""`lanscatter emulate` end to end: a two-site tree on an emulated network (20 Mbit/s, 20 ms WAN)
mirrors the data set on every host, reports each chunk crossing the WAN once (from the interface
counters), and leaves no namespace behind.

Needs root, iproute2 and /dev/net/tun; skipped with the reason elsewhere. All traffic stays inside
the namespaces the run creates (10.213.0.0/16).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lanscatter.deploy.process_stop import stop
from lanscatter.emulator.netns import list_namespaces, support_problem
from tests.integration.emulated_tree import emulate_argv, new_tag, remove_leftovers, write_tree
from tests.integration.nodes import tree_state

_problem = support_problem()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(_problem is not None, reason=_problem or "")]


def _dataset(source: Path) -> None:
    """About 4 MiB, incompressible (so the WAN carries the data set's own size), nested, one empty file."""
    (source / "nested" / "deeper").mkdir(parents=True)
    (source / "big.bin").write_bytes(os.urandom(3 * 2**20 + 12345))
    (source / "nested" / "mid.bin").write_bytes(os.urandom(700_000))
    (source / "nested" / "deeper" / "small.txt").write_bytes(os.urandom(3000))
    (source / "empty").write_bytes(b"")


def test_emulated_tree_mirrors_the_origin_and_counts_the_wan(tmp_path: Path) -> None:
    source = tmp_path / "source"
    _dataset(source)
    tag = new_tag()
    work, report_path = tmp_path / "work", tmp_path / "report.json"
    argv = emulate_argv(write_tree(tmp_path, source), work, tag,
                        "--exit-when-synced", "--timeout", "45", "--report", str(report_path))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=75, check=False)
    finally:
        leftovers = remove_leftovers(tag)
    assert done.returncode == 0, done.stderr[-4000:]
    assert leftovers == []

    want = tree_state(source)
    for site, host in (("hub", "hub-1"), ("branch", "gw"), ("branch", "branch-1")):
        assert tree_state(work / site / host) == want, f"{host} differs from the origin"

    report = json.loads(report_path.read_text())
    assert report["synced"] is True
    assert report["emulated"] is True
    assert report["delay_mechanism"] in ("netem", "forwarder")
    assert report["dataset_bytes"] == sum(len(v[0]) for v in want.values() if v != "dir")
    link = report["wan_links"]["wan:hub>branch"]
    assert 0.95 <= link["ratio"] <= 1.10, link
    assert link["raw_bytes"] > link["bytes"]           # headers counted by the interface, not in payload
    # 20 Mbit/s: the branch cannot be done before the data set has crossed the link once
    assert report["sites"]["branch"]["last_s"] >= report["dataset_bytes"] / 2.5e6 * 0.9
    assert all(h["done_s"] is not None for h in report["hosts"].values())


def test_cleanup_needs_no_file_and_removes_nothing_foreign(tmp_path: Path) -> None:
    tag = new_tag()
    done = subprocess.run([sys.executable, "-m", "lanscatter", "emulate", "--cleanup", "--tag", tag],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "removed 0 namespace(s)" in done.stderr


def test_sigterm_stops_the_roles_and_removes_the_network(tmp_path: Path) -> None:
    source = tmp_path / "source"
    _dataset(source)
    tag = new_tag()
    argv = emulate_argv(write_tree(tmp_path, source), tmp_path / "work", tag)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "work" / "logs" / "branch-1.log").exists():   # roles started
            assert time.monotonic() < deadline and proc.poll() is None, "the roles never started"
            time.sleep(0.1)
        assert len(list_namespaces(f"lsc{tag}-")) == 6
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=45)
    finally:
        stop([proc], 10)
        leftovers = remove_leftovers(tag)
    assert proc.returncode == 143, err[-3000:]
    assert leftovers == []
