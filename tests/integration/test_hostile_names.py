"""File names the protocol cannot carry, names legal on POSIX hosts, and manifests a peer refuses:
nothing here stops a node or the rest of the folder."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from lanscatter.core import protocol as p
from lanscatter.core.auth import new_secret
from lanscatter.roles.master import MasterNode, MasterOptions
from lanscatter.roles.peer import PeerNode, PeerOptions
from tests.integration.fake_master import FakeMaster
from tests.integration.nodes import (
    HOST,
    Cluster,
    Node,
    any_port,
    make_tree,
    run_peer_until,
    tree_state,
    wait_for,
)

CHUNK = 256 * 1024


def _write_bytes_name(folder: Path, name: bytes, data: bytes) -> None:
    fd = os.open(os.fsencode(folder) + b"/" + name, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _carried(state: dict[str, Any]) -> dict[str, Any]:
    """A tree state without the names that are not UTF-8 (os.walk gives them as surrogates)."""
    out = {}
    for k, v in state.items():
        try:
            k.encode("utf-8")
        except UnicodeEncodeError:
            continue
        out[k] = v
    return out


def test_a_name_that_is_not_utf8_is_skipped_reported_once_and_the_rest_syncs(tmp_path: Path) -> None:
    source = tmp_path / "origin"
    make_tree(source)
    _write_bytes_name(source, b"bad\xff.txt", b"never sent")
    os.mkdir(os.fsencode(source) + b"/dir\xfe")
    _write_bytes_name(source, b"dir\xfe/inside.txt", b"never sent either")
    cluster = Cluster(tmp_path, source)
    try:
        master = cluster.start_master()
        assert master.status()["skipped_names"] == 2          # type: ignore[index]
        peer = cluster.start_peer("p1")
        wait_for(lambda: (st := master.status()) and st["synced"] and len(st["nodes"]) == 2, 30,
                 "the peer synced", master, peer)
        assert tree_state(tmp_path / "p1") == _carried(tree_state(source))
        # Later changes still go out: one more unreadable name (the watcher trips over it), then a
        # good file beside it.
        _write_bytes_name(source, b"later\xfe.bin", b"x")
        (source / "later.txt").write_bytes(b"new content\n")
        wait_for(lambda: (tmp_path / "p1" / "later.txt").exists(), 30, "the new file reached the peer",
                 master, peer)
        wait_for(lambda: master.status()["skipped_names"] == 3, 10, "the new name counted", master)  # type: ignore[index]
        wait_for(lambda: tree_state(tmp_path / "p1") == _carried(tree_state(source)), 30, "the peer synced again",
                 master, peer)
        out = master.output()
        events = [e["message"] for e in master.status()["events"]]     # type: ignore[index]
        assert any("cannot carry: 2 more left out, 2 in all" in m for m in events)
        assert any("cannot carry: 1 more left out, 3 in all" in m for m in events)
        assert not any("bad" in m for m in events)                 # the status carries no file names
        assert out.count("skipped 'bad\\xff.txt': name is not UTF-8") == 1   # once, however many rescans
        assert out.count("skipped 'dir\\xfe'") == 1
        assert out.count("skipped 'later\\xfe.bin'") == 1
        assert "Traceback" not in out and master.proc.poll() is None
    finally:
        cluster.close()


def test_posix_names_with_a_colon_sync(tmp_path: Path) -> None:
    source = tmp_path / "origin"
    source.mkdir()
    (source / "a:b.txt").write_bytes(b"colon in the middle\n")
    (source / "c:").mkdir()
    (source / "c:" / "x.txt").write_bytes(b"below a drive-letter-looking folder\n")
    (source / "d:e").write_bytes(b"d colon e\n")
    cluster = Cluster(tmp_path, source)
    try:
        master = cluster.start_master()
        peer = cluster.start_peer("p1", "--exit-when-synced")
        assert peer.proc.wait(timeout=30) == 0, peer.output()
        assert tree_state(tmp_path / "p1") == tree_state(source)
    finally:
        cluster.close()
    assert "drive letter" not in master.output() + peer.output()


# Manifests a master might send that a peer must refuse, one per connection.
_BAD_MANIFESTS: list[dict[str, Any]] = [
    {"format": 2, "chunking": "fixed", "chunk_size": 4, "dirs": [], "files": [["../evil", 1, 0, 0, ["0" * 64], [1]]]},
    {"format": 2, "chunking": "fixed", "chunk_size": 4, "dirs": [],
     "files": [["n" * 100_000, 1, 0, 0, ["0" * 64], [1]]]},
    {"format": 2, "chunking": "fixed", "chunk_size": 4, "dirs": [], "files": [["huge", 10**30, 0, 0, [], []]]},
    {"format": 2, "chunking": "cdc", "chunk_size": 4096, "dirs": [],
     "files": [["x", 2**40, 0, 0, ["0" * 64], [2**40]]]},        # one chunk far over the maximum
    {"format": 2, "chunking": "fixed", "chunk_size": 10**30, "dirs": [], "files": []},
]


async def test_a_malformed_manifest_from_a_master_is_refused_and_the_peer_joins_again(tmp_path: Path) -> None:
    """A fake master on loopback (it holds the secret and joins the peer properly) sends a bad
    manifest on every connection: the peer says so in one line, drops the connection, joins again,
    and never exits."""
    secret = new_secret()
    fake = FakeMaster(secret, [p.ManifestMsg(m) for m in _BAD_MANIFESTS])
    await fake.start()
    listen, port_file = any_port(tmp_path, "p1")
    peer = Node(["peer", f"{HOST}:{fake.port}", str(tmp_path / "p1"), "--listen", HOST, *listen,
                 "--name", "p1", "--state-dir", str(tmp_path / "state-p1"), "--connect-timeout", "20"],
                tmp_path / "p1.log", port_file, {"LANSCATTER_SECRET": secret})
    try:
        async with asyncio.timeout(40):
            while fake.joins <= len(_BAD_MANIFESTS):
                assert peer.proc.poll() is None, peer.output()
                await asyncio.sleep(0.1)
        assert peer.proc.poll() is None
    finally:
        peer.stop()
        await fake.stop()
    out = peer.output()
    assert "Traceback" not in out
    assert out.count("the master sent a manifest this node refuses") >= len(_BAD_MANIFESTS), out
    assert "n" * 200 not in out                        # names reach the log shortened


async def test_a_generation_too_deep_for_the_peers_folder_is_refused_and_the_peer_stays_up(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every path fits the protocol (and the origin's folder), but below this peer's longer folder
    path one is longer than the OS takes: the peer says so and stays up, never a traceback."""
    origin = tmp_path / "o"
    deep = origin
    for _ in range((4090 - len(str(origin)) - len("/f.txt")) // 251):    # as deep as the origin takes
        deep = deep / ("d" * 250)
    deep.mkdir(parents=True)
    (deep / "f.txt").write_bytes(b"deep down")
    master = MasterNode(MasterOptions(folder=origin, state_dir=tmp_path / "ms", host=HOST, port=0,
                                      chunk_size=CHUNK, watch=False))
    await master.start()
    assert master.manifest is not None and len(master.manifest.files) == 1
    peer = PeerNode(PeerOptions(master=HOST, master_port=master.port, folder=tmp_path / ("p" * 250) / ("p" * 250),
                                state_dir=tmp_path / "ps", host=HOST, port=0, name="p1"))
    try:
        await run_peer_until(peer, lambda: sum("cannot be stored in" in r.getMessage() for r in caplog.records) >= 2,
                             timeout=20)
    finally:
        await master.stop()
