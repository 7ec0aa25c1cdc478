"""A peer decodes a whole manifest off its event loop: at a million files the decoding took tens of
seconds, the loop sent nothing meanwhile, and the master took the peer for gone (its heartbeat)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lanscatter.core import protocol as p
from lanscatter.core.chunking import FIXED, Chunking
from lanscatter.core.manifest_wire import to_wire
from lanscatter.core.signing import public_key_of, sign_version
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.scanner import scan_folder
from lanscatter.roles import peer_folder
from lanscatter.roles.peer_folder import PeerFolder
from lanscatter.roles.peer_options import PeerOptions


async def test_a_peer_decodes_a_whole_manifest_in_a_worker_thread(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for k in range(20):
        (src / f"f{k:02d}").write_bytes(b"%d" % k)
    manifest, _ = scan_folder(src, Chunking(FIXED, 1024), HashCache(None))
    key = Ed25519PrivateKey.generate()
    signed = sign_version(manifest, key, published_ms=1)
    on_loop: list[bool] = []
    decode = peer_folder.decode_manifest

    def watched(data: object) -> object:
        on_loop.append(threading.current_thread() is threading.main_thread())
        return decode(data)

    monkeypatch.setattr(peer_folder, "decode_manifest", watched)

    async def no_downloads() -> list[int]:
        return []

    async def no_wait() -> None:
        pass

    opts = PeerOptions("127.0.0.1", 1, tmp_path / "peer", tmp_path / "state", origin_key=public_key_of(key),
                       adopt=True)
    folder = PeerFolder(opts, post=lambda msg: None, room=no_wait, cancel_downloads=no_downloads, stats=lambda: None,
                        master_text=lambda: "the master")
    try:
        async with asyncio.timeout(60):
            await folder.take_manifest(p.ManifestMsg(to_wire(manifest), statement=signed.statement,
                                                     signature=signed.signature))
        assert on_loop == [False] and folder.manifest is not None
        assert folder.manifest.generation == manifest.generation
    finally:
        folder.store.close()
