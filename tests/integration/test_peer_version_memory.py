"""A peer applying a new version holds one manifest while it reconciles: the one it showed goes as
soon as the new one is checked (a million files are some 150 MB a manifest), and a version that
fails half-way leaves the folder showing the old version, the node not in sync, and the next
version applied on top of the one that failed."""

from __future__ import annotations

import asyncio
import gc
import shutil
import weakref
from collections import deque
from pathlib import Path

import pytest

from lanscatter.core import protocol as p
from lanscatter.core.chunking import FIXED
from lanscatter.core.errors import RemoteProtocolError
from lanscatter.core.manifest import FileEntry, Manifest, build_manifest
from lanscatter.core.manifest_wire import to_wire
from lanscatter.core.signing import public_key_of, sign_version
from lanscatter.roles.peer_folder import PeerFolder
from lanscatter.roles.peer_options import PeerOptions
from tests.integration.nodes import tree_state
from tests.integration.signed_folder_kit import KEY, no_downloads, no_wait, signed_delta, write_version


async def _peer(tmp_path: Path, v1: Manifest, source: Path) -> PeerFolder:
    """A host-activation peer whose folder holds `v1` (adopted): v1 is its active version."""
    (tmp_path / "peer").mkdir()
    for f in v1.files:
        (tmp_path / "peer" / f.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "peer" / f.path).write_bytes((source / f.path).read_bytes())

    opts = PeerOptions("127.0.0.1", 1, tmp_path / "peer", tmp_path / "state", origin_key=public_key_of(KEY),
                       adopt=True, activate="host")
    folder = PeerFolder(opts, post=lambda msg: None, room=no_wait, cancel_downloads=no_downloads, stats=lambda: None,
                        master_text=lambda: "the master")
    signed = sign_version(v1, KEY, published_ms=1)
    await folder.take_manifest(p.ManifestMsg(to_wire(v1), statement=signed.statement, signature=signed.signature))
    assert folder.complete() and folder.active_version() is not None
    return folder


async def test_applying_a_delta_the_old_manifest_is_gone_while_the_folder_is_reconciled(tmp_path: Path) -> None:
    source = tmp_path / "src"
    files = {f"d{k % 3}/f{k:02d}": b"content %d" % k for k in range(30)}
    v1 = write_version(source, files)
    folder = await _peer(tmp_path, v1, source)
    v2 = write_version(source, {"d0/f00": b"content 7", "d1/new": b"content 8"})    # held here already: copied
    old = weakref.ref(folder.manifest)  # type: ignore[arg-type]
    old_alive_in_reconcile: list[bool] = []
    reconcile = folder.store.reconcile

    staged_in_reconcile = []

    def watched(manifest: Manifest) -> object:
        staged_in_reconcile.append(folder.staged_version(folder.active_version()))
        stats = reconcile(manifest)
        old_alive_in_reconcile.append(old() is not None)
        return stats

    folder.store.reconcile = watched  # type: ignore[method-assign]
    gc.disable()              # freed as soon as it is let go, not by a pass of the collector
    try:
        async with asyncio.timeout(60):
            await folder.take_delta(signed_delta(v1, v2))
    finally:
        gc.enable()
        folder.store.close()
    assert old_alive_in_reconcile == [False]
    # Meanwhile the node showed the version it stages, none of it counted yet, and the old one active.
    assert [(v.generation, v.progress, v.whole) for v in staged_in_reconcile if v] == [(v2.generation, 0.0, False)]
    assert folder.manifest is not None and folder.manifest.generation == v2.generation
    assert folder.complete() and folder.active_version().generation == v2.generation  # type: ignore[union-attr]
    assert tree_state(tmp_path / "peer") == tree_state(source)


async def test_the_holdings_go_to_the_master_as_the_link_takes_them(tmp_path: Path) -> None:
    """After a reconcile the Have pieces (512 chunks each) are queued as the link takes them, not
    all at once (a million chunks were 2,000 frames, some 70 MB of text, queued in one go)."""
    source = tmp_path / "src"
    v1 = write_version(source, {f"d{k // 100}/f{k}": b"content %d" % k for k in range(3000)})
    shutil.copytree(source, tmp_path / "peer")          # held whole: 3,000 chunks to announce
    queue: deque[p.Message] = deque()
    sent: list[p.Message] = []
    most = 0

    def post(msg: p.Message) -> None:
        nonlocal most
        queue.append(msg)
        most = max(most, len(queue))

    async def room() -> None:
        while len(queue) >= 2:
            await asyncio.sleep(0.001)

    async def link() -> None:
        while True:
            await asyncio.sleep(0.002)
            if queue:
                sent.append(queue.popleft())

    opts = PeerOptions("127.0.0.1", 1, tmp_path / "peer", tmp_path / "state", origin_key=public_key_of(KEY),
                       adopt=True)
    folder = PeerFolder(opts, post=post, room=room, cancel_downloads=no_downloads, stats=lambda: None,
                        master_text=lambda: "the master")
    sending = asyncio.create_task(link())
    signed = sign_version(v1, KEY, published_ms=1)
    try:
        async with asyncio.timeout(60):
            await folder.take_manifest(p.ManifestMsg(to_wire(v1), statement=signed.statement,
                                                     signature=signed.signature))
            while queue:
                await asyncio.sleep(0.01)
    finally:
        sending.cancel()
        folder.store.close()
    haves = [m for m in sent if isinstance(m, p.Have)]
    assert len(haves) == 6 and haves[0].replace and not any(m.replace for m in haves[1:])
    assert most <= 2
    assert set().union(*(m.chunks for m in haves)) == {h for h, _ in v1.chunk_table()}


class _Columns(dict):  # type: ignore[type-arg]
    """The wire form of a manifest, as a dict one can hold a weak reference to."""


async def test_a_whole_manifest_s_columns_are_not_held_while_it_is_applied(tmp_path: Path) -> None:
    source = tmp_path / "src"
    v1 = write_version(source, {f"f{k}": b"content %d" % k for k in range(10)})
    opts = PeerOptions("127.0.0.1", 1, tmp_path / "peer", tmp_path / "state", origin_key=public_key_of(KEY))

    folder = PeerFolder(opts, post=lambda msg: None, room=no_wait, cancel_downloads=no_downloads, stats=lambda: None,
                        master_text=lambda: "the master")
    wire = _Columns(to_wire(v1))
    columns = weakref.ref(wire)
    signed = sign_version(v1, KEY, published_ms=1)
    taking = folder.take_manifest(p.ManifestMsg(wire, statement=signed.statement, signature=signed.signature))
    del wire                  # handed over, as the peer's handler does
    held_in_reconcile: list[bool] = []
    reconcile = folder.store.reconcile

    def watched(manifest: Manifest) -> object:
        held_in_reconcile.append(columns() is not None)
        return reconcile(manifest)

    folder.store.reconcile = watched  # type: ignore[method-assign]
    gc.disable()
    try:
        async with asyncio.timeout(60):
            await taking
    finally:
        gc.enable()
        folder.store.close()
    assert held_in_reconcile == [False]
    assert folder.manifest is not None and folder.manifest.generation == v1.generation


async def test_a_version_that_fails_half_way_leaves_the_old_one_shown_and_the_next_one_applies(
        tmp_path: Path) -> None:
    source = tmp_path / "src"
    v1 = write_version(source, {f"f{k}": b"content %d" % k for k in range(10)})
    before = tree_state(source)
    folder = await _peer(tmp_path, v1, source)
    # A path the protocol takes but that is too long below this peer's folder: staging fails.
    deep = "/".join(["d" * 250] * 16) + "/f"
    f = v1.files[0]
    v2 = build_manifest(v1.chunk_size, [*v1.files, FileEntry(deep, f.size, f.mtime_ns, False, f.chunks, f.sizes)],
                        v1.dirs, FIXED)
    try:
        async with asyncio.timeout(60):
            with pytest.raises(RemoteProtocolError, match="cannot be stored"):
                await folder.take_delta(signed_delta(v1, v2))
            # The folder still shows the old version, whole, and the node is not in sync.
            assert not folder.complete()
            assert folder.active_version().generation == v1.generation  # type: ignore[union-attr]
            assert tree_state(tmp_path / "peer") == before
            # The master's next version comes as a delta from the one that failed (the one held).
            v3 = write_version(source, {"f0": b"content 5"})
            await folder.take_delta(signed_delta(v2, v3))
        assert folder.complete() and folder.active_version().generation == v3.generation  # type: ignore[union-attr]
        assert tree_state(tmp_path / "peer") == tree_state(source)
    finally:
        folder.store.close()
