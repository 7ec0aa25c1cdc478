"""Where a node gets its swarm secret, and that it never runs open unless told so (and then says so
everywhere): real `lanscatter` processes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

from lanscatter.core.auth import check_secret
from tests.integration.nodes import HOST, Node, any_port, make_tree, wait_for


def _run(*argv: str, secret: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LANSCATTER_SECRET"}
    if secret is not None:
        env["LANSCATTER_SECRET"] = secret
    return subprocess.run([sys.executable, "-m", "lanscatter", *argv], capture_output=True, text=True,
                          timeout=30, check=False, env=env)


def test_secret_new_prints_a_secret_the_nodes_accept(tmp_path: Path) -> None:
    r = _run("secret", "new")
    assert r.returncode == 0
    secret = r.stdout.strip()
    check_secret(secret)
    assert _run("secret", "new").stdout.strip() != secret
    out = tmp_path / "secret"
    assert _run("secret", "new", "-o", str(out)).returncode == 0
    check_secret(out.read_text().strip())
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    again = _run("secret", "new", "-o", str(out))                 # never overwrites
    assert again.returncode != 0 and "error: cannot create" in again.stderr
    # A node takes it from the file (it gets as far as the missing folder).
    r = _run("master", str(tmp_path / "nope"), "--secret-file", str(out))
    assert "does not exist" in r.stderr and "swarm secret" not in r.stderr


def test_a_node_without_a_secret_refuses_to_start() -> None:
    for argv in (["master", "/nonexistent"], ["peer", "127.0.0.1:1", "/nonexistent"],
                 ["proxy", "127.0.0.1:1", "/nonexistent"]):
        r = _run(*argv)
        assert r.returncode == 2, r.stderr
        assert "error: no swarm secret" in r.stderr and "--insecure" in r.stderr and "Traceback" not in r.stderr


def test_a_weak_secret_is_refused_wherever_it_comes_from(tmp_path: Path) -> None:
    (tmp_path / "weak").write_text("s3cret\n")
    for r in (_run("master", "/nonexistent", secret="s3cret"),
              _run("master", "/nonexistent", "--secret-file", str(tmp_path / "weak"))):
        assert r.returncode == 2 and "at least 16" in r.stderr and "secret new" in r.stderr


def test_secret_on_the_command_line_warns_that_ps_shows_it() -> None:
    r = _run("master", "/nonexistent", "--secret", "a-long-enough-secret-for-this")
    assert "visible to every user of this host (ps)" in r.stderr
    assert "does not exist" in r.stderr                          # and it still works


def test_insecure_says_so_on_every_status_surface(tmp_path: Path) -> None:
    make_tree(tmp_path / "origin")
    listen, port_file = any_port(tmp_path, "master")
    env = {k: v for k, v in os.environ.items() if k != "LANSCATTER_SECRET"}
    node = Node(["master", str(tmp_path / "origin"), "--listen", HOST, *listen, "--state-dir",
                 str(tmp_path / "s"), "--insecure"], tmp_path / "master.log", port_file, env)
    try:
        st = wait_for(node.status, 30, "master up", node)
        port = node.port
        assert st["insecure"] is True
        page = urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=5).read().decode()
        assert "INSECURE" in page
        metrics = urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5).read().decode()
        assert "lanscatter_insecure 1.0" in metrics
        assert "INSECURE: running with no swarm secret" in node.output()
    finally:
        node.stop()
    listen, port_file = any_port(tmp_path, "secure")
    secure = Node(["master", str(tmp_path / "origin"), "--listen", HOST, *listen,
                   "--state-dir", str(tmp_path / "s2")], tmp_path / "secure.log", port_file,
                  {"LANSCATTER_SECRET": "a-long-enough-secret-for-this"})
    try:
        st = wait_for(secure.status, 30, "master up", secure)
        secure_port = secure.port
        assert st["insecure"] is False
        assert "INSECURE" not in urllib.request.urlopen(f"http://{HOST}:{secure_port}/", timeout=5).read().decode()
        assert json.dumps(st).count("a-long-enough-secret") == 0
    finally:
        secure.stop()


def test_roles_given_the_stretched_key_join_those_given_the_secret(tmp_path: Path) -> None:
    """What `lanscatter up` hands its roles (role_env: the key stretched once, no secret) works
    with nodes that stretch the secret themselves; a key of another secret is refused."""
    from lanscatter.core.auth import SWARM_KEY_ENV
    from lanscatter.topology.roles import role_env
    from tests.integration.nodes import Cluster, synced, tree_state

    make_tree(tmp_path / "origin")
    cluster = Cluster(tmp_path, tmp_path / "origin")
    try:
        master = cluster.start_master()
        env = role_env(cluster.secret)
        assert env["LANSCATTER_SECRET"] == "" and cluster.secret not in env[SWARM_KEY_ENV]
        listen, port_file = any_port(tmp_path, "relay")
        relay = Node(["proxy", f"{HOST}:{master.port}", str(tmp_path / "relay"), "--listen", HOST, *listen,
                      "--peer-port", "0", "--name", "relay", "--state-dir", str(tmp_path / "s-relay"),
                      "--connect-timeout", "20"], tmp_path / "relay.log", port_file, env)
        cluster.nodes.append(relay)
        leaf = cluster.start_peer_of("leaf", relay)
        wait_for(lambda: synced(relay) and synced(leaf), 60, "the relay's site in sync", master, relay, leaf)
        assert tree_state(tmp_path / "leaf") == tree_state(tmp_path / "origin")
        listen, port_file = any_port(tmp_path, "other")
        other = Node(["peer", f"{HOST}:{master.port}", str(tmp_path / "other"), "--listen", HOST, *listen,
                      "--state-dir", str(tmp_path / "s-other"), "--connect-timeout", "20"],
                     tmp_path / "other.log", port_file, role_env("another-secret-of-enough-length"))
        cluster.nodes.append(other)
        assert other.proc.wait(timeout=30) != 0
        assert "secret" in other.output()
    finally:
        cluster.close()


def test_a_stretched_key_is_refused_when_malformed_or_beside_a_secret() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LANSCATTER_SECRET"}
    for extra, says in (({"LANSCATTER_SWARM_KEY": "not-hex"}, "$LANSCATTER_SWARM_KEY is not a stretched swarm key"),
                        ({"LANSCATTER_SWARM_KEY": "ab" * 32, "LANSCATTER_SECRET": "a-long-enough-secret-for-this"},
                         "both LANSCATTER_SECRET and LANSCATTER_SWARM_KEY are set")):
        r = subprocess.run([sys.executable, "-m", "lanscatter", "master", "/nonexistent"], capture_output=True,
                           text=True, timeout=30, check=False, env={**env, **extra})
        assert r.returncode == 2 and f"error: {says}" in r.stderr and "Traceback" not in r.stderr, r.stderr
