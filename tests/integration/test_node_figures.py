"""What the nodes themselves tell an operator: a peer that exits the moment its folder is complete
leaves its final byte counts with its master (/status and /metrics agree), and ends with its summary
line, the master with the summary `up` ends with; a peer whose master never answers says so in
words, copies its log and the error that ends it to --log-file, and gives up with a hint."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.nodes import HOST, Cluster, Node, synced, wait_for
from tests.ports import free_port


def test_a_peer_that_exits_when_synced_leaves_its_figures_with_the_master(cluster: Cluster, tmp_path: Path) -> None:
    master = cluster.start_master()
    peer = cluster.start_peer("p1", "--exit-when-synced")
    assert peer.proc.wait(timeout=60) == 0, peer.output()
    assert "peer: synced; generation " in peer.output()                      # its summary line
    st = master.status()
    assert st is not None
    row = next(n for n in st["nodes"] if n["name"] == "p1")
    assert row["rx_bytes"] > 0 and row["have"] == st["chunks"]
    with urllib.request.urlopen(f"http://{HOST}:{master.port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    rx = {s.labels["node"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
          if s.name == "lanscatter_node_rx_bytes_total"}
    assert rx["p1"] == row["rx_bytes"]
    # Stopped, the master ends with the summary `up` ends with: its site, when each node finished, the makespan.
    assert master.stop() == 0
    out = master.output()
    assert "master: synced; generation " in out and "  site  hosts  median    last" in out
    assert re.search(r"\n  lan     2/2   \d+\.\d s  +\d+\.\d s\n  makespan \d+\.\d s\n", out), out


def test_a_peer_stopped_long_after_its_sync_says_how_long_the_sync_took(cluster: Cluster) -> None:
    """Not how long it ran: a peer run as a service is stopped days after its last sync."""
    master = cluster.start_master()
    peer = cluster.start_peer("p1")
    wait_for(lambda: synced(peer), 60, "the peer's sync", master, peer)
    time.sleep(4.0)
    began = time.monotonic()
    assert peer.stop() == 0
    out = peer.output()
    took = re.search(r"peer: synced; generation \w+, [\d.]+ \w+ of [\d.]+ \w+, (\d+\.\d+) s after it arrived; ", out)
    assert took is not None, out
    ran = time.monotonic() - began + 4.0
    assert float(took.group(1)) < ran - 3.0, (took.group(0), ran)


def test_a_peer_alone_says_what_it_tries_and_gives_up_with_a_hint(cluster: Cluster, tmp_path: Path) -> None:
    cluster.master = None
    port = free_port()                       # nobody listens there
    node = Node(["peer", f"{HOST}:{port}", str(tmp_path / "alone"), "--listen", HOST, "--port", "0",
                 "--state-dir", str(tmp_path / "state-alone"), "--connect-timeout", "2",
                 "--log-file", str(tmp_path / "alone-copy.log")],
                tmp_path / "alone.log", port, {"LANSCATTER_SECRET": cluster.secret})
    cluster.nodes.append(node)
    assert node.proc.wait(timeout=30) != 0
    out = node.output()
    assert f"peer: connecting to {HOST}:{port} (attempt 1, retrying" in out
    assert "connection refused" in out and "ssl:default" not in out and "0 B of 0 B" not in out
    assert f"error: the master at {HOST}:{port} did not answer for 2 s (connection refused)" in out
    assert "--connect-timeout waits longer" in out
    copy = (tmp_path / "alone-copy.log").read_text()      # --log-file: the log lines, dated
    assert f"peer: connecting to {HOST}:{port} (attempt 1, retrying" in copy and copy[:4].isdigit()
    assert f"ERROR   lanscatter.cli: the master at {HOST}:{port} did not answer for 2 s" in copy    # why it stopped
