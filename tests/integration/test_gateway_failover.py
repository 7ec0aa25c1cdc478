"""Standby gateways as real processes on loopback: the active one SIGKILLed or frozen (SIGSTOP)
mid-sync, a standby takes over, the site goes on receiving within 10 s, every file ends identical,
and the WAN link (the origin's uploads: it is the only source upstream) carries little more than
the data once. A first gateway that comes back stays a standby."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lanscatter.core.auth import new_secret
from tests.integration.nodes import HOST, Cluster, Node, tree_state, wait_for
from tests.ports import free_port

DATA = 24 << 20
WAN_MBIT = "24"               # 3 MB/s into the site: about 8 s for the data


def _gateway(c: Cluster, name: str, ports: list[int], rank: int, upstream: Node) -> Node:
    argv = ["proxy", f"{HOST}:{upstream.port}", str(c.tmp / name), "--listen", HOST, "--port", str(ports[rank]),
            "--peer-port", "0", "--name", name, "--state-dir", str(c.tmp / f"state-{name}"),
            "--gateways", ",".join(f"{HOST}:{p}" for p in ports), "--relay-dl-rate", WAN_MBIT]
    node = Node(argv, c.tmp / f"{name}.log", ports[rank], {"LANSCATTER_SECRET": c.secret})
    c.nodes.append(node)
    return node


def _leaf(c: Cluster, name: str, ports: list[int]) -> Node:
    port = free_port()
    argv = ["peer", f"{HOST}:{ports[0]}", str(c.tmp / name), "--listen", HOST, "--port", str(port),
            "--name", name, "--state-dir", str(c.tmp / f"state-{name}"), "--connect-timeout", "30",
            *(a for p in ports[1:] for a in ("--alternate", f"{HOST}:{p}"))]
    node = Node(argv, c.tmp / f"{name}.log", port, {"LANSCATTER_SECRET": c.secret})
    c.nodes.append(node)
    return node


def _have(node: Node) -> int:
    st = node.status()
    return st["nodes"][0]["have"] if st else -1


def _gw(node: Node) -> dict[str, Any] | None:
    st = node.status()
    return st.get("gateway") if st else None


def _active(node: Node) -> bool:
    g = _gw(node)
    return bool(g and g["active"])


def _wan_bytes(master: Node) -> int:
    st = master.status()
    assert st is not None
    return int(st["nodes"][0]["tx_bytes"])


@pytest.fixture
def site(tmp_path: Path) -> Any:
    source = tmp_path / "origin"
    (source / "d").mkdir(parents=True)
    (source / "d" / "big.bin").write_bytes(os.urandom(DATA - (1 << 20)))
    (source / "small.bin").write_bytes(os.urandom(1 << 20))
    c = Cluster(tmp_path, source)
    try:
        master = c.start_master()
        ports = [free_port(), free_port()]
        gw_a = _gateway(c, "gw-a", ports, 0, master)
        gw_b = _gateway(c, "gw-b", ports, 1, master)
        leaves = [_leaf(c, f"leaf-{i}", ports) for i in (1, 2)]
        yield c, master, ports, gw_a, gw_b, leaves
    finally:
        c.close()


def _check_resumes_and_finishes(c: Cluster, master: Node, gw_b: Node, leaves: list[Node], cut_at: float,
                                *nodes: Node) -> None:
    # Chunks the leaves already hold can still pass between them for a while: the site has
    # resumed once a leaf receives more after the standby took over.
    wait_for(lambda: _active(gw_b), 20, "gw-b taking over", *nodes)
    before = [_have(leaf) for leaf in leaves]
    wait_for(lambda: any(_have(leaf) > had for leaf, had in zip(leaves, before)), 20, "the site receiving again",
             *nodes)
    resumed = time.monotonic() - cut_at
    print(f"the site received again {resumed:.1f} s after the cut")
    assert resumed <= 10.0, f"the site received nothing for {resumed:.1f} s"
    assert _active(gw_b)
    wait_for(lambda: all(_synced(n) for n in (gw_b, *leaves)), 60, "the site in sync", *nodes)
    want = tree_state(c.source)
    for name in ("gw-b", "leaf-1", "leaf-2"):
        assert tree_state(c.tmp / name) == want, name
    wan = _wan_bytes(master)
    assert wan <= 1.2 * DATA, f"the WAN link carried {wan / DATA:.2f} x the data"


def _synced(node: Node) -> bool:
    st = node.status()
    return bool(st and st["synced"])


def _mid_sync(leaves: list[Node]) -> bool:
    return all(_have(leaf) >= 25 for leaf in leaves)


def test_killed_gateway_standby_takes_over_and_the_first_stays_standby_when_back(site: Any) -> None:
    c, master, ports, gw_a, gw_b, leaves = site
    nodes = (master, gw_a, gw_b, *leaves)
    wait_for(lambda: _active(gw_a) and not _active(gw_b), 30, "gw-a active, gw-b standby", *nodes)
    wait_for(lambda: _mid_sync(leaves), 60, "the site half way", *nodes)
    assert not _synced(leaves[0])
    gw_a.kill()
    cut_at = time.monotonic()
    _check_resumes_and_finishes(c, master, gw_b, leaves, cut_at, *nodes)
    st = master.status()
    assert st is not None
    assert {"gw-b"} <= {n["name"] for n in st["nodes"] if n["online"]}

    back = Node([str(a) for a in gw_a.proc.args[3:]], gw_a.log, gw_a.port,  # type: ignore[index]
                {"LANSCATTER_SECRET": c.secret})
    c.nodes.append(back)
    wait_for(lambda: _gw(back) is not None and _gw(back)["active_gateway"] == f"{HOST}:{ports[1]}", 30,
             "the returning gateway sees the active one", back, gw_b)
    time.sleep(4)
    assert not _active(back) and _active(gw_b)
    wait_for(lambda: _synced(back), 60, "the returning gateway in sync as a standby", back, gw_b)
    assert tree_state(c.tmp / "gw-a") == tree_state(c.source)


def test_frozen_gateway_is_replaced_and_steps_down_when_it_wakes(site: Any) -> None:
    """The upstream withdraws the frozen relay when its successor joins (its transfers and the
    origin's upload slots are not held until its silence); woken, it stands by and does not pull
    the data over the WAN again."""
    c, master, _ports, gw_a, gw_b, leaves = site
    nodes = (master, gw_a, gw_b, *leaves)
    wait_for(lambda: _active(gw_a) and not _active(gw_b), 30, "gw-a active, gw-b standby", *nodes)
    wait_for(lambda: _mid_sync(leaves), 60, "the site half way", *nodes)
    gw_a.proc.send_signal(signal.SIGSTOP)       # cut off from everything, sockets open
    try:
        cut_at = time.monotonic()
        _check_resumes_and_finishes(c, master, gw_b, leaves, cut_at, *nodes)
        assert any("gw-a withdrawn: replaced by gw-b" in e["message"] for e in master.status()["events"])
        wan = _wan_bytes(master)
    finally:
        gw_a.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: _gw(gw_a) is not None and not _active(gw_a), 30, "the woken gateway standing by", gw_a, gw_b)
    assert _active(gw_b)
    wait_for(lambda: _synced(gw_a), 60, "the woken gateway in sync as a standby", gw_a, gw_b)
    assert tree_state(c.tmp / "gw-a") == tree_state(c.source)
    # Woken, its downloads still under way read on until they time out (the origin's uploads to
    # it stay open): a part of a few chunks, not the data again.
    after = _wan_bytes(master)
    print(f"the WAN link carried {after - wan} bytes more after the frozen gateway woke")
    assert after <= 1.2 * DATA, f"with the woken gateway the WAN link carried {after / DATA:.2f} x the data"


class _Forger(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 200 and, in turn, a claim to be the active gateway with a high term
    and no valid MAC, or a body of 1 MiB."""

    answers = (json.dumps({"rank": 1, "active": True, "term": 99, "upstream_ok": True, "mac": "0" * 64}).encode(),
               b"{" + b" " * (1 << 20) + b"}")

    def do_GET(self) -> None:
        body = self.answers[len(self.path) % 2]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


class _ForgerServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass                       # a client that hangs up on the 1 MiB body is what it should do


@pytest.fixture
def forger() -> Any:
    server = _ForgerServer((HOST, 0), _Forger)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_forged_claim_makes_no_gateway_stand_by(tmp_path: Path, forger: Any) -> None:
    """Something at the other gateway's address that does not hold the secret claims to be active
    with a high term (another time it answers with a huge body, and its /ws is no websocket): it is
    not heard, and the first gateway relays."""
    source = tmp_path / "origin"
    source.mkdir()
    (source / "a.bin").write_bytes(os.urandom(1 << 20))
    c = Cluster(tmp_path, source)
    try:
        master = c.start_master()
        gw = _gateway(c, "gw-a", [free_port(), forger.server_address[1]], 0, master)
        wait_for(lambda: _active(gw) and _synced(gw), 30, "the real gateway relaying", gw)
        assert "Traceback" not in gw.output()
    finally:
        c.close()


def test_a_peer_sent_to_a_web_server_says_so_and_exits(tmp_path: Path, forger: Any) -> None:
    done = subprocess.run([sys.executable, "-m", "lanscatter", "peer", f"{HOST}:{forger.server_address[1]}",
                           str(tmp_path / "p"), "--listen", HOST, "--port", "0", "--connect-timeout", "2",
                           "--state-dir", str(tmp_path / "ps")], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "LANSCATTER_SECRET": new_secret()})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "answered HTTP 200, not a lanscatter master" in done.stderr and "Traceback" not in done.stderr
