"""Start-up: what a role loads before it can work, and how soon a started master serves its first
byte (docs/benchmarks.md, "Start-up")."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from lanscatter.disk.hashing import new_hasher
from tests.integration.nodes import HOST, Node, any_port
from tests.ports import free_port

# What no peer needs to start: the TUI, the site tree, deployment, the emulator, the simulator,
# the master's and the relay's roles, the metrics' library (loaded at the first scrape).
NOT_FOR_A_PEER = ("textual", "rich", "lanscatter_tui", "lanscatter.topology", "lanscatter.deploy",
                  "lanscatter.emulator", "lanscatter.sim", "lanscatter.roles.master", "lanscatter.roles.relay",
                  "lanscatter.roles.swarm", "lanscatter.core.planner", "prometheus_client")


def _imported(stderr: str) -> set[str]:
    """Module names from `python -X importtime` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_a_peer_starts_without_the_tui_the_site_tree_or_the_other_roles(tmp_path: Path) -> None:
    # A peer whose master never answers runs its whole start (parse, role, state, first connect)
    # and ends after its connect timeout: everything it imported on the way is in the list.
    closed = free_port()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "lanscatter", "peer", f"{HOST}:{closed}", str(tmp_path / "p"),
         "--listen", HOST, "--port", "0", "--insecure", "--connect-timeout", "1",
         "--state-dir", str(tmp_path / "state")],
        check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "did not answer" in proc.stderr, proc.stderr[-2000:]
    loaded = _imported(proc.stderr)
    assert "lanscatter.roles.peer" in loaded and "aiohttp" in loaded
    unwanted = sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in NOT_FOR_A_PEER))
    assert unwanted == []


def test_a_started_master_serves_its_first_byte_soon(tmp_path: Path) -> None:
    # From the master's process start (interpreter, imports, scan, listen) to the first byte of
    # a chunk on loopback. About 0.5 s on an idle machine; the bound leaves room for a loaded one.
    source = tmp_path / "src"
    source.mkdir()
    data = os.urandom(1 << 20)
    (source / "a.bin").write_bytes(data)
    hasher = new_hasher()
    hasher.update(data)
    path = f"/chunks/{hasher.hexdigest()}"
    listen, port_file = any_port(tmp_path, "master")
    started = time.monotonic()
    master = Node(["master", str(source), "--listen", HOST, *listen, "--insecure", "--chunking",
                   "fixed", "--chunk-size", "4MiB", "--state-dir", str(tmp_path / "state")],
                  tmp_path / "master.log", port_file)
    try:
        first: bytes = b""
        while not first:
            assert time.monotonic() - started < 10.0, master.output()[-2000:]
            assert master.proc.poll() is None, master.output()[-2000:]
            try:
                port = int(port_file.read_text())
                with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=2) as resp:
                    first = resp.read(1)
            except (OSError, ValueError):      # no port yet (or half written), or not serving yet
                time.sleep(0.02)
        took = time.monotonic() - started
    finally:
        master.stop()
    assert first == data[:1]
    assert took < 5.0, took
