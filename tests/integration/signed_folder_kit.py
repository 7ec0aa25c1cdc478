"""What tests of a host's folder (PeerFolder, no master) share: an origin's key, versions written
and scanned, signed deltas at growing publish times, and the no-op hooks a PeerFolder takes."""

from __future__ import annotations

import itertools
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lanscatter.core import protocol as p
from lanscatter.core.chunking import FIXED, Chunking
from lanscatter.core.manifest import Manifest
from lanscatter.core.manifest_delta import make_delta
from lanscatter.core.signing import sign_version
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.scanner import scan_folder

KEY = Ed25519PrivateKey.generate()
_PUBLISHED = itertools.count(2)      # an origin's publish times grow (hosts refuse an older one)


def write_version(folder: Path, files: dict[str, bytes]) -> Manifest:
    """Write `files` into `folder` and scan it (1 KiB fixed chunks)."""
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return scan_folder(folder, Chunking(FIXED, 1024), HashCache(None))[0]


def signed_delta(base: Manifest, new: Manifest) -> p.ManifestDelta:
    """The delta from `base` to `new`, signed by KEY later than any before."""
    delta = make_delta(base, new)
    assert delta is not None
    signed = sign_version(new, KEY, published_ms=next(_PUBLISHED))
    return p.ManifestDelta(base.generation, new.generation, delta, signed.statement, signed.signature)


async def no_downloads() -> list[int]:
    return []


async def no_wait() -> None:
    pass
