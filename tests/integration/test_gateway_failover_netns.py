"""A standby gateway on an emulated network (`lanscatter emulate`): the active gateway's WAN path is
cut mid-sync (a blackhole route to the origin's site inside its namespace: the host and its LAN
stay up). A standby that still reaches the origin takes over, the cut one stands by, the site goes
on receiving within 10 s, every host ends identical and the WAN carries little more than the data
once (the interface counters).

Needs root, iproute2 and /dev/net/tun; skipped with the reason elsewhere. All traffic stays inside
the namespaces the run creates (10.213.0.0/16).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lanscatter.core.ports import DEFAULT_MASTER_PORT, DEFAULT_PEER_PORT
from lanscatter.emulator.layout import namespace_prefix
from lanscatter.emulator.netns import EmulatorError, support_problem
from lanscatter.emulator.run import inside_namespace
from tests.integration.emulated_tree import emulate_argv, new_tag, remove_leftovers, write_tree
from tests.integration.nodes import tree_state

_problem = support_problem()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(_problem is not None, reason=_problem or "")]

DATA = 12 << 20
HUB_LAN = "10.213.1.0/24"          # site 0 of the layout (emulator/layout.py)
BRANCH = {"ga": "10.213.2.10", "gb": "10.213.2.11", "b1": "10.213.2.12"}
SITES = {
    "hub": {"lan": "100Mbit", "hosts": ["origin"]},
    "branch": {"lan": "100Mbit", "gateway": ["ga", "gb"], "hosts": ["ga", "gb", "b1"]},
}
WAN = {"between": ["hub", "branch"], "bandwidth": "16Mbit", "latency": "10ms"}


def _status(tag: str, host: str, port: int) -> dict[str, Any] | None:
    """A host's /status, asked from inside its namespace (in a thread of its own)."""
    def ask() -> dict[str, Any] | None:
        try:
            with inside_namespace(f"{namespace_prefix(tag)}h.{host}"), \
                    urllib.request.urlopen(f"http://{BRANCH[host]}:{port}/status", timeout=2) as resp:
                data = json.load(resp)
        except (OSError, ValueError, EmulatorError):   # the namespace is not built yet, or the role not up
            return None
        return data if isinstance(data, dict) else None
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(ask).result(timeout=10)


def _active(tag: str, host: str) -> bool:
    st = _status(tag, host, DEFAULT_MASTER_PORT)
    return bool(st and isinstance(st.get("gateway"), dict) and st["gateway"]["active"])


def _have(tag: str) -> int:
    st = _status(tag, "b1", DEFAULT_PEER_PORT)
    return int(st["nodes"][0]["have"]) if st else -1


def _wait(cond: Any, timeout: float, what: str, proc: subprocess.Popen[str]) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        assert proc.poll() is None, f"emulate ended early ({proc.returncode}) waiting for {what}"
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_a_gateway_cut_off_from_the_origin_hands_over_to_its_standby(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(DATA - (1 << 20)))
    (source / "small.bin").write_bytes(os.urandom(1 << 20))
    tag = new_tag("f")
    work, report_path = tmp_path / "work", tmp_path / "report.json"
    tree = write_tree(tmp_path, source, sites=SITES, wan=WAN, secret="failover-netns-secret")
    argv = emulate_argv(tree, work, tag, "--exit-when-synced", "--timeout", "120", "--report", str(report_path))
    log = open(tmp_path / "emulate.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(lambda: _active(tag, "ga") and _have(tag) >= 8, 60, "ga relaying, b1 receiving", proc)
        assert not _active(tag, "gb")
        subprocess.run(["ip", "-n", f"{namespace_prefix(tag)}h.ga", "route", "add", "blackhole", HUB_LAN],
                       check=True, timeout=10)
        cut_at = time.monotonic()
        # Chunks the cut gateway already held can still reach b1 for a while: the site has resumed
        # once b1 receives more after the standby took over.
        _wait(lambda: _active(tag, "gb"), 20, "gb taking over", proc)
        had = _have(tag)
        _wait(lambda: _have(tag) > had + 1, 20, "b1 receiving again", proc)
        resumed = time.monotonic() - cut_at
        assert _active(tag, "gb") and not _active(tag, "ga")
        assert resumed <= 10.0, f"the site received nothing for {resumed:.1f} s"
        assert proc.wait(timeout=120) == 0, (tmp_path / "emulate.log").read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()
        remove_leftovers(tag)
    want = tree_state(source)
    for host in ("ga", "gb", "b1"):
        assert tree_state(work / "branch" / host) == want, f"{host} differs from the origin"
    report = json.loads(report_path.read_text())
    assert report["synced"] is True
    link = report["wan_links"]["wan:hub>branch"]
    assert link["bytes"] <= 1.2 * DATA, link
