"""Only the origin's key makes hosts write a version: a master signs, peers and relays check (relays
pass the origin's statement down as it came, and keep it across a restart), and a node that holds
the swarm secret but not the origin's key cannot make a peer delete or rewrite anything."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lanscatter.core import protocol as p
from lanscatter.core.chunking import FIXED, Chunking
from lanscatter.core.manifest import FileEntry, Manifest, build_manifest
from lanscatter.core.signing import public_key_of, sign_version
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.hashing import hash_bytes
from lanscatter.disk.scanner import scan_folder
from lanscatter.disk.signing_keys import (
    LAST_SIGNED_FILE,
    PRIVATE_KEY_FILE,
    create_signing_key,
    load_signing_key,
)
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
    synced,
    tree_state,
    wait_for,
)

SECRET = "swarm-secret-for-these-tests"
CHUNK = 256 * 1024


def _keys(*argv: str) -> str:
    """`lanscatter keys ...`; the `origin_key:` value it prints."""
    out = subprocess.run([sys.executable, "-m", "lanscatter", "keys", *argv], check=True,
                         capture_output=True, text=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("origin_key: "))
    return line.split(": ", 1)[1]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    make_tree(tmp_path / "origin")
    c = Cluster(tmp_path, tmp_path / "origin", secret=SECRET)
    try:
        yield c
    finally:
        c.close()


def test_a_signed_version_is_written_and_another_key_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    origin_key = _keys("new", "--dir", str(tmp_path / "keys"))
    other_key = _keys("new", "--dir", str(tmp_path / "other"))
    master = cluster.start_master("--signing-key", str(tmp_path / "keys" / "origin.key"))
    assert f"signing versions with origin_key: {origin_key}" in master.output()
    good = cluster.start_peer("good", "--origin-key", origin_key)
    wrong = cluster.start_peer("wrong", "--origin-key", other_key)
    wait_for(lambda: synced(good), 60, "the peer with the origin's key in sync", master, good)
    assert tree_state(tmp_path / "good") == tree_state(cluster.source)
    wait_for(lambda: wrong.output().count("refused a version") >= 2, 30, "refusals, reconnecting", wrong)
    assert wrong.proc.poll() is None and not synced(wrong)
    assert tree_state(tmp_path / "wrong") == {}
    assert "not by the origin's key" in wrong.output()


def test_a_relay_chain_passes_the_origins_signature_down_and_keeps_it(cluster: Cluster, tmp_path: Path) -> None:
    master = cluster.start_master()          # no --signing-key: its own key, made in its state folder
    origin_key = _keys("show", str(tmp_path / "state-master"))
    assert "created the origin's key" in master.output()
    relay = cluster.start_relay("gw", master, "--origin-key", origin_key)
    leaf = cluster.start_peer_of("leaf", relay, "--origin-key", origin_key)
    wait_for(lambda: synced(relay) and synced(leaf), 60, "relay and leaf in sync", master, relay, leaf)
    want = tree_state(cluster.source)
    assert tree_state(tmp_path / "leaf") == want
    saved = json.loads((tmp_path / "state-gw" / "relay-manifest.json").read_text())
    assert saved["statement"] and saved["signature"] and json.loads(saved["statement"])["key"] == origin_key

    # The relay restarted while the origin is away serves its saved version, still verifiable.
    master.stop()
    relay.kill()
    relay2 = relay.restarted({"LANSCATTER_SECRET": SECRET})
    cluster.nodes.append(relay2)
    wait_for(lambda: relay2.status() is not None, 30, "relay back", relay2)
    late = cluster.start_peer_of("late", relay2, "--origin-key", origin_key)
    wait_for(lambda: synced(late), 60, "a new site peer in sync from the saved version", relay2, late)
    assert tree_state(tmp_path / "late") == want


def _pwned_manifest() -> Manifest:
    """bin/run.sh replaced by `echo PWNED`, mode 755, and everything else deleted."""
    script = b"echo PWNED\n"
    entry = FileEntry("bin/run.sh", len(script), 1_700_000_000_000_000_000, True, (hash_bytes(script),),
                      (len(script),))
    return build_manifest(CHUNK, [entry], [])


async def test_the_swarm_secret_without_the_origins_key_changes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "host"
    make_tree(folder)
    (folder / "bin").mkdir()
    (folder / "bin" / "run.sh").write_bytes(b"#!/bin/sh\necho ok\n")
    before = tree_state(folder)
    origin = create_signing_key(tmp_path / "keys" / "origin.key")
    intruder = Ed25519PrivateKey.generate()
    empty = build_manifest(CHUNK, [], [])
    pwned_m = _pwned_manifest()
    pwned = pwned_m.to_dict()
    forged = sign_version(pwned_m, intruder, published_ms=0)
    replayed = sign_version(empty, origin, published_ms=0)     # the origin's real signature, other content
    messages = [
        p.ManifestMsg(empty.to_dict()),                                            # unsigned, empty
        p.ManifestMsg(pwned, statement=forged.statement, signature=forged.signature),  # another key
        p.ManifestMsg(pwned, statement=replayed.statement, signature=replayed.signature),
        p.ManifestMsg(pwned),                                                      # unsigned
    ]
    fake = FakeMaster(SECRET, messages)
    await fake.start()
    listen, port_file = any_port(tmp_path, "host")
    peer = Node(["peer", f"{HOST}:{fake.port}", str(folder), "--listen", HOST, *listen,
                 "--name", "host", "--state-dir", str(tmp_path / "state"), "--connect-timeout", "20",
                 "--origin-key", public_key_of(origin).text], tmp_path / "host.log", port_file,
                {"LANSCATTER_SECRET": SECRET})
    try:
        # Refused each one and reconnected each time; a peer that obeyed would have changed its
        # folder at the first manifest (and stayed joined).
        async with asyncio.timeout(60):
            while fake.joins <= len(messages) and tree_state(folder) == before:
                await asyncio.sleep(0.1)
        assert tree_state(folder) == before
        assert peer.proc.poll() is None, peer.output()
        out = peer.output()
        assert out.count("refused a version") >= len(messages)
        assert "is not signed by the origin" in out and "not by the origin's key" in out
        assert "not what the origin signed" in out or "names generation" in out
        assert not (tmp_path / "state" / "origin-key.pin").exists()
    finally:
        peer.stop()
        await fake.stop()


@pytest.mark.allow_error_logs
async def test_a_pinned_key_refuses_a_second_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_tree(tmp_path / "origin")
    first = MasterNode(MasterOptions(folder=tmp_path / "origin", state_dir=tmp_path / "m1", host=HOST, port=0,
                                     chunk_size=CHUNK, watch=False))
    await first.start()

    def peer_of(master: MasterNode) -> PeerNode:     # no origin key given: trust on first use
        return PeerNode(PeerOptions(master=HOST, master_port=master.port, folder=tmp_path / "p",
                                    state_dir=tmp_path / "ps", host=HOST, port=0, name="p"))
    peer = peer_of(first)
    task = asyncio.create_task(peer.run())
    try:
        async with asyncio.timeout(30):
            while not peer.complete():
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await peer.stop()
        await first.stop()
    pin = (tmp_path / "ps" / "origin-key.pin").read_text()
    assert pin.strip() == _keys("show", str(tmp_path / "m1"))
    synced = tree_state(tmp_path / "p")

    # Another master (another key: its own state folder) with other content.
    (tmp_path / "origin" / "new.txt").write_text("new\n")
    second = MasterNode(MasterOptions(folder=tmp_path / "origin", state_dir=tmp_path / "m2", host=HOST, port=0,
                                      chunk_size=CHUNK, watch=False))
    await second.start()
    peer = peer_of(second)
    caplog.set_level(logging.ERROR, "lanscatter.roles.peer")
    task = asyncio.create_task(peer.run())
    try:
        async with asyncio.timeout(30):
            while sum("refused a version" in r.getMessage() for r in caplog.records) < 2:
                await asyncio.sleep(0.05)
        assert not task.done()                         # refused, reconnecting: not stopped
        assert tree_state(tmp_path / "p") == synced
        assert (tmp_path / "ps" / "origin-key.pin").read_text() == pin
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await peer.stop()
        await second.stop()


@pytest.mark.allow_error_logs
async def test_an_older_version_signed_by_the_origin_is_not_taken_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A relay, or anyone holding the swarm secret, that kept an older version the origin really
    signed (here: an empty folder, published before the one the host has) cannot roll the host
    back to it, across a restart of the host too; the origin publishing anew still goes through."""
    make_tree(tmp_path / "origin")
    master = MasterNode(MasterOptions(folder=tmp_path / "origin", state_dir=tmp_path / "m", host=HOST, port=0,
                                      chunk_size=CHUNK, watch=False))
    await master.start()

    def peer_of(port: int) -> PeerNode:
        return PeerNode(PeerOptions(master=HOST, master_port=port, folder=tmp_path / "p",
                                    state_dir=tmp_path / "ps", host=HOST, port=0, name="p"))

    try:
        peer = peer_of(master.port)
        await run_peer_until(peer, peer.complete)
        published_ms = master.published_ms
    finally:
        await master.stop()
    synced = tree_state(tmp_path / "p")
    assert synced == tree_state(tmp_path / "origin") and published_ms > 1000
    origin = load_signing_key(tmp_path / "m" / PRIVATE_KEY_FILE)
    empty = build_manifest(CHUNK, [], [])
    older = sign_version(empty, origin, published_ms=published_ms - 1000, label="an older build")
    fake = FakeMaster(None, [p.ManifestMsg(empty.to_dict(), statement=older.statement,
                                                                signature=older.signature)])
    await fake.start()
    caplog.set_level(logging.ERROR, "lanscatter.roles.peer")
    try:
        for _restart in range(2):      # the host restarted: it still knows what it took
            caplog.clear()
            joins = fake.joins
            await run_peer_until(peer_of(fake.port), lambda joins=joins: tree_state(tmp_path / "p") != synced or (
                fake.joins >= joins + 2 and any("refused a version" in r.getMessage() for r in caplog.records)))
            assert tree_state(tmp_path / "p") == synced
            refusals = [r.getMessage() for r in caplog.records if "refused a version" in r.getMessage()]
            assert any("published before" in m for m in refusals), refusals
    finally:
        await fake.stop()

    # The origin publishing that content anew signs it anew (a later time): hosts take it.
    for entry in sorted((tmp_path / "origin").rglob("*"), reverse=True):
        entry.unlink() if entry.is_file() else entry.rmdir()
    master = MasterNode(MasterOptions(folder=tmp_path / "origin", state_dir=tmp_path / "m", host=HOST, port=0,
                                      chunk_size=CHUNK, watch=False, allow_shrink=True))
    await master.start()
    try:
        peer = peer_of(master.port)
        await run_peer_until(peer, lambda: peer.complete() and tree_state(tmp_path / "p") == tree_state(tmp_path / "origin"))
    finally:
        await master.stop()


@pytest.mark.allow_error_logs
async def test_an_older_signed_version_is_refused_after_the_hosts_state_folder_is_lost(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The state folder (with its newest-version record, its pinned key and its first-sync marker)
    is gone, say the host was rebuilt with its data volume kept: the versions kept beside the folder
    still say what it took, so an older build the origin signed, of the same files (which the
    first-sync check lets through: it deletes nothing), is refused all the same."""
    make_tree(tmp_path / "origin")
    master = MasterNode(MasterOptions(folder=tmp_path / "origin", state_dir=tmp_path / "m", host=HOST, port=0,
                                      chunk_size=CHUNK, watch=False))
    await master.start()
    try:
        peer = PeerNode(PeerOptions(master=HOST, master_port=master.port, folder=tmp_path / "p",
                                    state_dir=tmp_path / "ps", host=HOST, port=0, name="p"))
        await run_peer_until(peer, peer.complete)
        published_ms = master.published_ms
    finally:
        await master.stop()
    shutil.rmtree(tmp_path / "ps")
    make_tree(tmp_path / "older", seed=2)                      # the same paths, other content
    older = scan_folder(tmp_path / "older", Chunking(FIXED, CHUNK), HashCache(None))[0]
    signed = sign_version(older, load_signing_key(tmp_path / "m" / PRIVATE_KEY_FILE),
                          published_ms=published_ms - 1000, label="an older build")
    fake = FakeMaster(None, [p.ManifestMsg(older.to_dict(), statement=signed.statement, signature=signed.signature)])
    await fake.start()
    caplog.set_level(logging.ERROR, "lanscatter.roles.peer")
    try:
        peer = PeerNode(PeerOptions(master=HOST, master_port=fake.port, folder=tmp_path / "p",
                                    state_dir=tmp_path / "ps", host=HOST, port=0, name="p"))
        await run_peer_until(peer, lambda: (peer.manifest is not None and peer.manifest.generation == older.generation)
                         or (fake.joins >= 2 and any("refused a version" in r.getMessage() for r in caplog.records)))
    finally:
        await fake.stop()
    assert peer.manifest is None or peer.manifest.generation != older.generation, "the older build was taken"
    refusals = [r.getMessage() for r in caplog.records if "refused a version" in r.getMessage()]
    assert any("published before" in m for m in refusals), refusals
    assert tree_state(tmp_path / "p") == tree_state(tmp_path / "origin")


async def test_the_origins_publish_times_only_grow_across_restarts(tmp_path: Path) -> None:
    """A master restarted with its clock behind its last publish (a clock set back, a snapshot
    restored) still publishes later than that, or hosts would refuse every new version."""
    make_tree(tmp_path / "origin")
    state = tmp_path / "m"
    state.mkdir()
    ahead = int(time.time() * 1000) + 10 * 86_400_000
    (state / LAST_SIGNED_FILE).write_text(f"{ahead}\n")
    master = MasterNode(MasterOptions(folder=tmp_path / "origin", state_dir=state, host=HOST, port=0,
                                      chunk_size=CHUNK, watch=False))
    await master.start()
    try:
        assert master.published_ms == ahead + 1
        assert int((state / LAST_SIGNED_FILE).read_text()) >= ahead + 1   # (and its commit's, after it)
    finally:
        await master.stop()
    (state / LAST_SIGNED_FILE).write_text("garbage\n")     # damaged: the clock's time, and a warning
    (tmp_path / "origin" / "new.txt").write_text("new\n")
    master = MasterNode(MasterOptions(folder=tmp_path / "origin", state_dir=state, host=HOST, port=0,
                                      chunk_size=CHUNK, watch=False))
    await master.start()
    try:
        assert abs(master.published_ms - time.time() * 1000) < 60_000
    finally:
        await master.stop()
