"""Publishing and the guards against wiping, with real processes on 127.0.0.1: a build copied
slowly into the source is published once, whole; a release symlink switch publishes the release
with its name; `lanscatter publish` publishes with a label, and only for a holder of the secret;
an emptied source is refused until --allow-shrink; a peer does not wipe a folder it never synced
unless --adopt; --dry-run lists and changes nothing."""

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
from lanscatter.core.publish_request import MAC_HEADER, publish_key
from tests.integration.nodes import HOST, Cluster, Node, make_tree, tree_state, wait_for


def _status(node: Node) -> dict[str, Any]:
    st = node.status()
    assert st is not None
    return st


def _synced_to(node: Node, generation: str) -> bool:
    st = node.status()
    return bool(st and st["synced"] and st["generation"] == generation)


def _publish(c: Cluster, *args: str, secret: str | None = None) -> subprocess.CompletedProcess[str]:
    assert c.master is not None
    env = {**os.environ, "LANSCATTER_SECRET": secret or c.secret}
    return subprocess.run([sys.executable, "-m", "lanscatter", "publish", f"{HOST}:{c.master.port}", *args],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def _write_build(root: Path, stamp: str, files: int, pause_s: float) -> None:
    """A build copied in file by file, every file carrying its stamp, the STAMP file last."""
    for i in range(files):
        path = root / "build" / f"part{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(stamp.encode() + os.urandom(50_000))
        time.sleep(pause_s)
    (root / "build" / "STAMP").write_text(stamp)


def _stamps(root: Path) -> set[str]:
    return {p.read_bytes()[:2].decode() for p in (root / "build").iterdir()}


def test_a_build_copied_slowly_is_published_once_whole(cluster: Cluster, tmp_path: Path) -> None:
    _write_build(cluster.source, "v1", 6, 0)
    master = cluster.start_master("--settle", "3")
    peer = cluster.start_peer("p1")
    first = _status(master)["generation"]
    wait_for(lambda: _synced_to(peer, first), 60, "the first build on the peer", master, peer)
    _write_build(cluster.source, "v2", 10, 0.5)       # 5 s of copying, never 3 s quiet
    wait_for(lambda: _status(master)["generation"] != first, 30, "the second build published", master)
    second = _status(master)["generation"]
    wait_for(lambda: _synced_to(peer, second), 60, "the second build on the peer", master, peer)
    assert _stamps(tmp_path / "p1") == {"v2"}
    generations = [e["message"] for e in _status(master)["events"] if e["message"].startswith("generation ")]
    assert len(generations) == 2, f"a partial build was published: {generations}"


def test_a_symlink_switch_publishes_the_release_with_its_name(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    make_tree(releases / "1234")
    current = tmp_path / "current"
    current.symlink_to(releases / "1234")
    c = Cluster(tmp_path, current)
    try:
        master = c.start_master()
        assert _status(master)["publish"]["mode"] == "on-switch"
        peer = c.start_peer("p1")
        first = _status(master)["generation"]
        wait_for(lambda: _synced_to(peer, first), 60, "release 1234 on the peer", master, peer)
        assert _status(peer)["published"]["label"] == "1234"
        make_tree(releases / "1235", seed=2)
        (releases / "1235" / "new.txt").write_text("only in 1235")
        time.sleep(1.5)                                  # written, not switched: nothing published
        assert _status(master)["generation"] == first
        (tmp_path / "next").symlink_to(releases / "1235")
        os.replace(tmp_path / "next", current)            # the switch, atomic
        wait_for(lambda: _status(master)["generation"] != first, 30, "release 1235 published", master)
        second = _status(master)["generation"]
        wait_for(lambda: _synced_to(peer, second), 60, "release 1235 on the peer", master, peer)
        st = _status(peer)["published"]
        assert st["label"] == "1235" and st["generation"] == second and st["published_ms"] > 0
        assert tree_state(tmp_path / "p1") == tree_state(releases / "1235")
    finally:
        c.close()


def test_publish_with_a_label_reaches_the_peers(cluster: Cluster, tmp_path: Path) -> None:
    master = cluster.start_master("--publish", "manual")
    peer = cluster.start_peer("p1")
    first = _status(master)["generation"]
    wait_for(lambda: _synced_to(peer, first), 60, "the peer in sync", master, peer)
    (cluster.source / "added.txt").write_text("release notes")
    wait_for(lambda: _status(master)["publish"]["pending"], 10, "the change seen, not published", master)
    assert _status(peer)["generation"] == first
    done = _publish(cluster, "--label", "build 42")
    assert done.returncode == 0, done.stderr
    assert "published generation" in done.stdout and "build 42" in done.stdout
    second = _status(master)["generation"]
    assert second != first and _status(master)["published"]["label"] == "build 42"
    wait_for(lambda: _synced_to(peer, second), 60, "the published version on the peer", master, peer)
    assert _status(peer)["published"]["label"] == "build 42"
    assert (tmp_path / "p1" / "added.txt").read_text() == "release notes"
    metrics = urllib.request.urlopen(f"http://{HOST}:{peer.port}/metrics", timeout=5).read().decode()
    assert 'label="build 42"' in metrics


def test_publish_without_the_secret_is_refused_and_changes_nothing(cluster: Cluster) -> None:
    master = cluster.start_master("--publish", "manual")
    first = _status(master)["generation"]
    (cluster.source / "added.txt").write_text("not yet")
    wrong = _publish(cluster, "--label", "intruder", secret="another secret of enough length")
    assert wrong.returncode == 3 and "refused" in wrong.stderr, wrong.stderr
    url = f"http://{HOST}:{master.port}/publish"

    def nonce() -> str:
        with urllib.request.urlopen(url, timeout=5) as r:
            return str(json.loads(r.read())["nonce"])

    def post(body: bytes, mac: str | None) -> tuple[int, str]:
        req = urllib.request.Request(url, data=body, method="POST", headers={MAC_HEADER: mac} if mac else {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    body = json.dumps({"nonce": nonce(), "label": "x", "allow_shrink": True}).encode()
    assert post(body, None)[0] == 403                                  # no secret at all
    key = publish_key(Auth(cluster.secret))
    malformed = b'{"nonce": 7, "label": "x"'
    status, text = post(malformed, hmac.new(key, malformed, hashlib.sha256).hexdigest())
    assert status == 400 and "protocol error" in text
    good = json.dumps({"nonce": nonce(), "label": "x", "allow_shrink": False}).encode()
    mac = hmac.new(key, good, hashlib.sha256).hexdigest()
    assert post(good, mac)[0] == 200
    assert post(good, mac)[0] == 403                                   # replayed
    assert _status(master)["published"]["label"] == "x"
    events = " ".join(e["message"] for e in _status(master)["events"])
    assert "refused a publish request" in events
    # Only the request with the secret published: one new generation.
    assert sum(e["message"].startswith("generation ") for e in _status(master)["events"]) == 2
    assert first != _status(master)["generation"]


def test_an_emptied_source_is_refused_until_allowed(cluster: Cluster, tmp_path: Path) -> None:
    master = cluster.start_master()
    peer = cluster.start_peer("p1")
    first = _status(master)["generation"]
    wait_for(lambda: _synced_to(peer, first), 60, "the peer in sync", master, peer)
    want = tree_state(tmp_path / "p1")
    for p in sorted(cluster.source.rglob("*"), reverse=True):      # an unmounted disk, say
        p.rmdir() if p.is_dir() else p.unlink()
    wait_for(lambda: _status(master)["publish"]["refused"], 30, "the empty source refused", master)
    st = _status(master)
    assert "source is empty" in st["publish"]["refused"] and st["generation"] == first
    assert any(e["level"] == "error" and "not published" in e["message"] for e in st["events"])
    time.sleep(1.0)
    assert tree_state(tmp_path / "p1") == want and _status(peer)["generation"] == first
    refused = _publish(cluster)
    assert refused.returncode == 5 and "source is empty" in refused.stderr and "--allow-shrink" in refused.stderr
    done = _publish(cluster, "--allow-shrink")
    assert done.returncode == 0, done.stderr
    second = _status(master)["generation"]
    wait_for(lambda: _synced_to(peer, second), 60, "the empty version on the peer", master, peer)
    assert not any(p.is_file() for p in (tmp_path / "p1").rglob("*"))


def test_a_peer_does_not_wipe_a_folder_it_never_synced(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    unrelated = tmp_path / "p1"
    (unrelated / "photos").mkdir(parents=True)
    for i in range(12):
        (unrelated / "photos" / f"img{i}.jpg").write_bytes(b"precious" * 100)
    before = tree_state(unrelated)
    peer = cluster.start_peer("p1")
    assert peer.proc.wait(timeout=60) == 2
    out = peer.output()
    assert "never synced" in out and "would delete 12 files" in out and "--adopt" in out
    assert tree_state(unrelated) == before
    adopted = cluster.start_peer("p1", "--adopt")
    wait_for(lambda: (st := adopted.status()) and st["synced"], 60, "the adopted folder in sync", adopted)
    assert tree_state(unrelated) == tree_state(cluster.source)


def test_a_peer_deletes_in_a_folder_it_synced_before(cluster: Cluster, tmp_path: Path) -> None:
    master = cluster.start_master()
    peer = cluster.start_peer("p1")
    first = _status(master)["generation"]
    wait_for(lambda: _synced_to(peer, first), 60, "the peer in sync", master, peer)
    peer.stop()
    (cluster.source / "text.txt").unlink()
    wait_for(lambda: _status(master)["generation"] != first, 30, "the smaller version published", master)
    again = cluster.start_peer("p1")
    second = _status(master)["generation"]
    wait_for(lambda: _synced_to(again, second), 60, "the restarted peer in sync", master, again)
    assert not (tmp_path / "p1" / "text.txt").exists()


def test_dry_run_lists_and_changes_nothing(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    folder = tmp_path / "p1"
    (folder / "d0").mkdir(parents=True)
    (folder / "d0" / "f0.bin").write_bytes(b"other content")     # the origin's f0.bin is empty
    (folder / "text.txt").write_bytes((cluster.source / "text.txt").read_bytes())
    (folder / "junk.log").write_text("mine")
    before = tree_state(folder)
    peer = cluster.start_peer("p1", "--dry-run")
    assert peer.proc.wait(timeout=60) == 0, peer.output()
    lines = peer.output().splitlines()
    assert "overwrite d0/f0.bin" in lines and "delete junk.log" in lines and "download tool.sh" in lines
    assert not any(line.endswith(" text.txt") for line in lines)       # same content: nothing to do
    assert tree_state(folder) == before


def test_the_watcher_comes_back_after_the_source_folder_was_moved_away_and_back(cluster: Cluster) -> None:
    """No periodic rescan: only the watcher can see the change made after the folder came back.
    It stops when its folder moves, fails to start while the folder is away, and watches again."""
    master = cluster.start_master("--rescan-interval", "3600")
    first = _status(master)["generation"]
    away = cluster.source.with_name("source-away")
    os.rename(cluster.source, away)
    wait_for(lambda: "file watcher restarted after" in master.output(), 15, "the watcher stopped", master)
    time.sleep(2.5)                     # (a restart or two fail meanwhile: the folder is missing)
    os.rename(away, cluster.source)
    restarts = master.output().count("file watcher restarted after")
    # Back in place, and watched again once a restart finds it (1, 2, 4 ... s apart).
    deadline = time.monotonic() + 30
    k = 0
    while _status(master)["generation"] == first:
        assert time.monotonic() < deadline, f"no new generation after the folder came back:\n{master.output()}"
        (cluster.source / f"after-{k}.txt").write_text(f"written after the folder came back {k}\n")
        k += 1
        quiet = time.monotonic() + 4            # (a write a second would keep it from settling)
        while time.monotonic() < quiet and _status(master)["generation"] == first:
            time.sleep(0.2)
    assert restarts >= 2, master.output()       # it stopped, and could not start while away
    assert "Traceback" not in master.output() and master.proc.poll() is None
