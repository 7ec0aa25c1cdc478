"""Tree commits are the origin's word: a host of tree activation switches, or rolls back, only on a
commit the origin signed, and never on one older than the newest it followed, so a relay (or anyone
holding the swarm secret) can neither make up a rollback nor send an old commit again."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lanscatter.core import protocol as p
from lanscatter.core.manifest import Manifest
from lanscatter.core.manifest_wire import to_wire
from lanscatter.core.signing import public_key_of, sign_commit, sign_version
from lanscatter.roles.peer_folder import PeerFolder
from lanscatter.roles.peer_options import PeerOptions
from tests.integration.signed_folder_kit import KEY, no_downloads, no_wait, signed_delta, write_version


def _commit(generation: str, instead: str = "", *, at: int, key: Ed25519PrivateKey = KEY) -> p.Commit:
    signed = sign_commit(key, generation, instead, signed_ms=at)
    return p.Commit(generation, instead, signed.statement, signed.signature)


def _active(folder: PeerFolder) -> str | None:
    version = folder.active_version()
    return version.generation if version is not None else None


async def _tree_host(tmp_path: Path, v1: Manifest, source: Path) -> PeerFolder:
    """A host of tree activation whose folder holds `v1`, taken and committed."""
    (tmp_path / "peer").mkdir()
    for f in v1.files:
        (tmp_path / "peer" / f.path).write_bytes((source / f.path).read_bytes())
    opts = PeerOptions("127.0.0.1", 1, tmp_path / "peer", tmp_path / "state", origin_key=public_key_of(KEY),
                       adopt=True, activate="tree")
    folder = PeerFolder(opts, post=lambda msg: None, room=no_wait, cancel_downloads=no_downloads,
                        stats=lambda: None, master_text=lambda: "the relay")
    signed = sign_version(v1, KEY, published_ms=1)
    await folder.take_manifest(p.ManifestMsg(to_wire(v1), statement=signed.statement, signature=signed.signature))
    await folder.take_commit(_commit(v1.generation, at=10))
    assert folder.complete() and _active(folder) == v1.generation
    return folder


@pytest.mark.allow_error_logs
async def test_a_host_follows_only_the_commits_the_origin_signed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "src"
    v1 = write_version(source, {f"f{k}": b"content %d" % k for k in range(6)})
    folder = await _tree_host(tmp_path, v1, source)
    try:
        v2 = write_version(source, {"f0": b"content 5"})              # held here already: staged by a copy
        await folder.take_delta(signed_delta(v1, v2))
        assert folder.complete() and _active(folder) == v1.generation   # staged whole, not committed yet
        await folder.take_commit(_commit(v2.generation, at=20))
        assert _active(folder) == v2.generation
        caplog.set_level(logging.ERROR, "lanscatter.roles.peer")
        intruder = Ed25519PrivateKey.generate()
        forged = _commit(v1.generation, v2.generation, at=30)
        refused = [
            (p.Commit(v1.generation, v2.generation), "is not signed by the origin"),      # made up by a relay
            (_commit(v1.generation, v2.generation, at=30, key=intruder), "not by the origin's key"),
            (p.Commit(v1.generation, v2.generation, forged.statement, forged.signature[:-4] + "AAA="),
             "signature does not match"),
            (p.Commit(v1.generation, "", forged.statement, forged.signature), "the message of generation"),
            (_commit(v1.generation, at=10), "signed before the newest commit"),            # the old one again
            (_commit(v1.generation, v2.generation, at=20), "signed before the newest commit"),  # same time, other
        ]
        for commit, why in refused:
            caplog.clear()
            await folder.take_commit(commit)
            assert _active(folder) == v2.generation, why
            assert any("refused a tree commit" in r.getMessage() and why in r.getMessage()
                       for r in caplog.records), (why, [r.getMessage() for r in caplog.records])
        await folder.take_commit(_commit(v2.generation, at=20))   # the newest again (a rejoin): followed
        assert _active(folder) == v2.generation
        await folder.take_commit(forged)                          # the origin's own rollback: followed
        assert _active(folder) == v1.generation
    finally:
        folder.store.close()
    # A restart remembers the newest commit followed.
    folder = PeerFolder(PeerOptions("127.0.0.1", 1, tmp_path / "peer", tmp_path / "state",
                                    origin_key=public_key_of(KEY), adopt=True, activate="tree"),
                        post=lambda msg: None, room=no_wait, cancel_downloads=no_downloads, stats=lambda: None,
                        master_text=lambda: "the relay")
    try:
        caplog.clear()
        await folder.take_commit(_commit(v2.generation, at=20))
        assert any("signed before the newest commit" in r.getMessage() for r in caplog.records)
    finally:
        folder.store.close()


@pytest.mark.allow_error_logs
async def test_an_old_commit_is_refused_after_the_hosts_state_folder_is_lost(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The state folder (with `newest-commit`) is gone, say the host was rebuilt with its data
    volume kept: the copy kept with the versions beside the folder still says which commit it
    followed last, so an old rollback the origin once signed, sent again, is refused."""
    source = tmp_path / "src"
    v1 = write_version(source, {f"f{k}": b"content %d" % k for k in range(6)})
    folder = await _tree_host(tmp_path, v1, source)
    try:
        v2 = write_version(source, {"f0": b"content 5"})
        await folder.take_delta(signed_delta(v1, v2))
        old_rollback = _commit(v1.generation, v2.generation, at=15)
        await folder.take_commit(_commit(v2.generation, at=20))
        assert _active(folder) == v2.generation
    finally:
        folder.store.close()
    shutil.rmtree(tmp_path / "state")
    folder = PeerFolder(PeerOptions("127.0.0.1", 1, tmp_path / "peer", tmp_path / "state",
                                    origin_key=public_key_of(KEY), adopt=True, activate="tree"),
                        post=lambda msg: None, room=no_wait, cancel_downloads=no_downloads, stats=lambda: None,
                        master_text=lambda: "the relay")
    try:
        caplog.set_level(logging.ERROR, "lanscatter.roles.peer")
        await folder.take_commit(old_rollback)
        assert _active(folder) == v2.generation, "the old rollback was followed"
        assert any("signed before the newest commit" in r.getMessage() for r in caplog.records)
    finally:
        folder.store.close()
