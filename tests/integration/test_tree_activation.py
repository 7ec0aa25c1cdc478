"""Tree activation with real processes on loopback: an origin, a relay's site and peers, all with
`--activate tree`. No host switches before every host holds the new version; then all switch
within a second; a host down at commit time switches when it comes back; a commit past its
deadline is reported and nobody switches; `lanscatter rollback --tree` switches every host back
(and a request without the secret, or malformed, changes nothing)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lanscatter.core.auth import Auth
from lanscatter.core.publish_request import MAC_HEADER, ROLLBACK_PATH, rollback_key
from tests.integration.nodes import HOST, Cluster, Node, tree_state, wait_for

TREE = ("--activate", "tree")


def _cli(c: Cluster, *argv: str, secret: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LANSCATTER_SECRET": secret or c.secret}
    return subprocess.run([sys.executable, "-m", "lanscatter", *argv], capture_output=True, text=True, check=False,
                          timeout=60, env=env)


def _active(node: Node) -> dict[str, Any] | None:
    st = node.status()
    return st.get("active") if st else None


def _shows(node: Node, generation: str) -> bool:
    a = _active(node)
    return bool(a and a["generation"] == generation)


def _publish(c: Cluster, master: Node, label: str) -> str:
    done = _cli(c, "publish", f"{HOST}:{master.port}", "--label", label)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("generation ")[1].split()[0]


def _new_release(c: Cluster, name: str, size: int) -> None:
    (c.source / name).write_bytes(os.urandom(size))


def test_no_host_switches_before_every_host_holds_the_version(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    master = c.start_master("--publish", "manual", *TREE)
    relay = c.start_relay("gw", master, *TREE)
    a1 = c.start_peer("a1", *TREE)
    b1 = c.start_peer_of("b1", relay, *TREE)
    slow = c.start_peer_of("b2", relay, *TREE, "--dl-rate", "8")        # 1 MB/s
    hosts = [relay, a1, b1, slow]
    gen1 = master.status()["generation"]  # type: ignore[index]
    wait_for(lambda: all(_shows(n, gen1) for n in hosts), 60, "every host on the first version", master, *hosts)
    first = {n: (tmp_path / name).resolve() for n, name in zip(hosts, ("gw", "a1", "b1", "b2"))}

    _new_release(c, "release.bin", 3 * 2**20)
    gen2 = _publish(c, master, "build 2")
    # The fast hosts hold it whole long before the slow one: they wait, staged, showing version 1.
    wait_for(lambda: all((s := n.status()) and s["staged"] and s["staged"]["whole"] for n in (a1, b1)), 60,
             "the fast hosts staged", master, a1, b1)
    while not _shows(slow, gen2):
        slow_staged = (slow.status() or {}).get("staged")
        shown = {n: (tmp_path / name).resolve() for n, name in zip(hosts, ("gw", "a1", "b1", "b2"))}
        if any(_shows(n, gen2) for n in hosts):
            # The first switch: the slow host held it whole by then.
            assert slow_staged is None or slow_staged["whole"] or _shows(slow, gen2)
            break
        assert shown == first, "a host switched before every host held the version"
        time.sleep(0.1)
    wait_for(lambda: all(_shows(n, gen2) for n in hosts), 30, "every host on version 2", master, *hosts)
    assert all(tree_state(tmp_path / name) == tree_state(c.source) for name in ("gw", "a1", "b1", "b2"))
    switched = [_active(n)["activated"] for n in hosts]  # type: ignore[index]
    assert max(switched) - min(switched) < 1.0, switched
    assert _active(a1)["label"] == "build 2"  # type: ignore[index]
    commit = master.status()["commit"]  # type: ignore[index]
    assert commit["state"] == "committed" and commit["hosts"] == 4 and commit["ready"] == 4


def test_a_host_down_at_commit_time_switches_when_it_comes_back(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    master = c.start_master("--publish", "manual", *TREE)
    a1 = c.start_peer("a1", *TREE)
    a2 = c.start_peer("a2", *TREE)
    gen1 = master.status()["generation"]  # type: ignore[index]
    wait_for(lambda: _shows(a1, gen1) and _shows(a2, gen1), 60, "both on version 1", master, a1, a2)
    a2.kill()
    _new_release(c, "release.bin", 2**20)
    gen2 = _publish(c, master, "build 2")
    wait_for(lambda: _shows(a1, gen2), 60, "the joined host on version 2", master, a1)
    assert (tmp_path / "a2").resolve().name == gen1[:16]          # the killed host's folder: version 1
    a2 = c.start_peer("a2", *TREE)
    wait_for(lambda: _shows(a2, gen2), 60, "the returning host on version 2", master, a2)
    assert tree_state(tmp_path / "a2") == tree_state(c.source)


def test_a_commit_past_its_deadline_is_reported_and_nobody_switches(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    master = c.start_master("--publish", "manual", *TREE, "--commit-deadline", "1")
    fast = c.start_peer("fast", *TREE)
    slow = c.start_peer("slow", *TREE, "--dl-rate", "8")          # 1 MB/s: 4 MiB take 4 s
    gen1 = master.status()["generation"]  # type: ignore[index]
    wait_for(lambda: _shows(fast, gen1) and _shows(slow, gen1), 60, "both on version 1", master, fast, slow)
    _new_release(c, "release.bin", 4 * 2**20)
    gen2 = _publish(c, master, "build 2")
    st = wait_for(lambda: (s := master.status()) and s["commit"]["state"] == "overdue" and s, 30,
                  "the overdue report", master)
    assert st["commit"]["waiting"] == ["slow"] and st["commit"]["ready"] == 1
    assert any(e["level"] == "error" and "not committed" in e["message"] and "slow" in e["message"]
               for e in st["events"])
    assert "not committed after" in master.output()
    assert _shows(fast, gen1) and _shows(slow, gen1)
    # The slow host gets there: the commit is made then, and both switch.
    wait_for(lambda: _shows(fast, gen2) and _shows(slow, gen2), 60, "both on version 2", master, fast, slow)


def _post_rollback(master: Node, body: bytes, key: bytes | None) -> tuple[int, str]:
    """POST a rollback request (`%s` in `body` replaced by a fresh nonce), MAC'd with `key` if any."""
    url = f"http://{HOST}:{master.port}{ROLLBACK_PATH}"
    with urllib.request.urlopen(url, timeout=5) as r:
        nonce = json.loads(r.read())["nonce"]
    real = body.replace(b"%s", nonce.encode())
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers[MAC_HEADER] = hmac.new(key, real, hashlib.sha256).hexdigest()
    req = urllib.request.Request(url, data=real, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_tree_rollback_switches_every_host_back_and_refuses_bad_requests(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    master = c.start_master("--publish", "manual", *TREE)
    relay = c.start_relay("gw", master, *TREE)
    a1 = c.start_peer("a1", *TREE)
    b1 = c.start_peer_of("b1", relay, *TREE)
    hosts = [relay, a1, b1]
    gen1 = _publish(c, master, "build 1")     # labelled: the first publish had no label
    wait_for(lambda: all(_shows(n, gen1) for n in hosts), 60, "every host on build 1", master, *hosts)
    state1 = tree_state(tmp_path / "a1")
    _new_release(c, "release.bin", 2**20)
    gen2 = _publish(c, master, "build 2")
    wait_for(lambda: all(_shows(n, gen2) for n in hosts), 60, "every host on build 2", master, *hosts)

    wrong = _cli(c, "rollback", "--tree", f"{HOST}:{master.port}", secret="not-the-secret-" + "x" * 40)
    assert wrong.returncode == 3 and "refused" in wrong.stderr
    assert _post_rollback(master, b'{"nonce":"%s","to":null}', None)[0] == 403
    key = rollback_key(Auth(c.secret))
    for body in (b'{"nonce":"%s","to":7}', b'{"nonce":"%s"}', b'[1]', b'{"nonce":"%s","to":"x\\n"}', b'{"no'):
        status, text = _post_rollback(master, body, key)
        assert status == 400 and "protocol error" in json.loads(text)["error"], (body, status, text)
    unknown = _cli(c, "rollback", "--tree", f"{HOST}:{master.port}", "--to", "build 99")
    assert unknown.returncode == 5 and "no committed version" in unknown.stderr
    assert all(_shows(n, gen2) for n in hosts)           # nothing changed

    back = _cli(c, "rollback", "--tree", f"{HOST}:{master.port}")
    assert back.returncode == 0 and gen1 in back.stdout, back.stderr
    wait_for(lambda: all(_shows(n, gen1) for n in hosts), 30, "every host back on build 1", master, *hosts)
    assert tree_state(tmp_path / "a1") == state1
    assert master.status()["commit"]["state"] == "rolled-back"  # type: ignore[index]
    # A restarted host joins the rolled-back tree and stays on build 1.
    a1.kill()
    a1 = c.start_peer("a1", *TREE)
    wait_for(lambda: (s := a1.status()) and s["synced"] and s["generation"] == gen2, 60, "a1 back", master, a1)
    time.sleep(1)
    assert _shows(a1, gen1)
    forward = _cli(c, "rollback", "--tree", f"{HOST}:{master.port}", "--to", "build 2")
    assert forward.returncode == 0, forward.stderr
    wait_for(lambda: all(_shows(n, gen2) for n in (relay, a1, b1)), 30, "every host forward on build 2",
             master, relay, a1, b1)
