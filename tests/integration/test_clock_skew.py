"""Hosts whose clocks are hours apart (one set in local time, or never set) still serve each other:
a chunk token expires by the clock of the master that made it, and a source checks it by that clock
as learned at its join. Real processes on 127.0.0.1, one of them under libfaketime."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from tests.integration.nodes import Cluster, synced, tree_state, wait_for


def _libfaketime() -> str | None:
    """Where the system's libfaketime is (Debian's faketime package), or None."""
    for folder in (f"/usr/lib/{platform.machine()}-linux-gnu/faketime", "/usr/lib/faketime"):
        if os.path.exists(f"{folder}/libfaketime.so.1"):
            return f"{folder}/libfaketime.so.1"
    return None


_LIB = _libfaketime()
pytestmark = pytest.mark.skipif(_LIB is None, reason="libfaketime is not installed (scripts/ci-packages.sh)")


def _clock(offset_s: int) -> dict[str, str]:
    """The environment that sets a process's wall clock `offset_s` off (its monotonic clock as is)."""
    assert _LIB is not None
    return {"LD_PRELOAD": _LIB, "FAKETIME": f"{offset_s:+d}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def _events(node) -> str:  # type: ignore[no-untyped-def]
    st = node.status()
    return " ".join(e["message"] for e in st["events"]) if st else ""


@pytest.mark.parametrize("skewed", ["source", "master"])
def test_hosts_whose_clocks_are_hours_apart_serve_each_other(cluster: Cluster, tmp_path: Path, skewed: str) -> None:
    (cluster.source / "big.bin").write_bytes(os.urandom(24 * 256 * 1024))
    # The master at 2 MB/s: the late peer takes most chunks from the holder, which holds them all.
    master = cluster.start_master("--ul-rate", "16", env=_clock(3 * 3600) if skewed == "master" else None)
    holder = cluster.start_peer("holder", env=_clock(-2 * 3600) if skewed == "source" else None)
    wait_for(lambda: synced(holder), 30, "the holder in sync", master, holder)
    if skewed == "source":
        assert "this host's clock is 7200 s behind the master's" in holder.output()
    late = cluster.start_peer("late")
    wait_for(lambda: synced(late), 30, "the late peer in sync", master, holder, late)
    st = holder.status()
    assert st is not None and st["nodes"][0]["tx_bytes"] > 0, "the holder served nothing"
    assert "failed to get chunk" not in _events(master), _events(master)
    assert "token" not in holder.output(), holder.output()[-2000:]
    assert tree_state(tmp_path / "late") == tree_state(cluster.source)
