"""Tree activation on an emulated network (`lanscatter emulate`: namespaces, a 20 Mbit/s WAN with
20 ms latency): the source is a `current` symlink, every host runs `activate: tree`; a release
switched at the origin becomes active on every host, the hosts' own switch times within a second
of each other although the branch needs seconds more to receive it.

Needs root, iproute2 and /dev/net/tun; skipped with the reason elsewhere. All traffic stays inside
the namespaces the run creates.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lanscatter.disk.versions_dir import VersionsDir
from lanscatter.emulator.netns import support_problem
from tests.integration.emulated_tree import emulate_argv, new_tag, remove_leftovers, write_tree
from tests.integration.nodes import tree_state

_problem = support_problem()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(_problem is not None, reason=_problem or "")]
HOSTS = (("hub", "hub-1"), ("branch", "gw"), ("branch", "branch-1"))


def _labels(work: Path) -> dict[str, tuple[str, float]]:
    out = {}
    for site, host in HOSTS:
        try:
            record = VersionsDir(work / site / host).active_record()
        except OSError:
            record = None
        if record is not None:
            out[host] = (record.label, record.activated)
    return out


def _wait_all(work: Path, label: str, proc: subprocess.Popen[str], limit_s: float) -> dict[str, float]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "lanscatter emulate ended early"
        shown = _labels(work)
        if len(shown) == len(HOSTS) and all(lab == label for lab, _ in shown.values()):
            return {h: at for h, (_, at) in shown.items()}
        time.sleep(0.2)
    raise AssertionError(f"not every host showed release {label} within {limit_s:.0f} s: {_labels(work)}")


def test_a_switched_release_becomes_active_on_every_host_together(tmp_path: Path) -> None:
    builds = tmp_path / "builds"
    (builds / "releases" / "1").mkdir(parents=True)
    (builds / "releases" / "1" / "app.bin").write_bytes(os.urandom(2 * 2**20))
    (builds / "releases" / "1" / "notes.txt").write_bytes(b"release 1\n")
    (builds / "current").symlink_to("releases/1")
    tag = new_tag()
    work = tmp_path / "work"
    argv = emulate_argv(write_tree(tmp_path, builds / "current", defaults={"activate": "tree"}), work, tag,
                        "--timeout", "150")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_all(work, "1", proc, 60)
        shutil.copytree(builds / "releases" / "1", builds / "releases" / "2")
        (builds / "releases" / "2" / "app.bin").write_bytes(os.urandom(6 * 2**20))   # 2.5 s on the WAN
        (builds / "current.new").symlink_to("releases/2")
        os.replace(builds / "current.new", builds / "current")
        switched = _wait_all(work, "2", proc, 60)
        for site, host in HOSTS:
            assert tree_state(work / site / host) == tree_state(builds / "releases" / "2"), host
        assert max(switched.values()) - min(switched.values()) < 1.0, switched
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=45)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        leftovers = remove_leftovers(tag)
    assert proc.returncode == 143, err[-3000:]
    assert leftovers == []
