"""Manifest deltas: a delta rebuilds exactly the new generation, is checked like a whole manifest,
and one that builds anything else is caught (by its generation id, or by the signed digest)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from lanscatter.core import protocol as p
from lanscatter.core.chunking import CDC, FIXED
from lanscatter.core.errors import ManifestError, RemoteProtocolError
from lanscatter.core.manifest import FileEntry, Manifest, build_manifest
from lanscatter.core.manifest_delta import apply_delta, make_delta
from lanscatter.core.signing import describes, sign_version

H = [f"{k:064x}" for k in range(1, 200)]


def _entry(path: str, k: int, size: int = 100) -> FileEntry:
    return FileEntry(path, size, 1_700_000_000 * 10**9 + k, False, (H[k],), (size,))


def _versions() -> tuple[Manifest, Manifest]:
    old = build_manifest(4096, [_entry(f"d{k % 4}/f{k}", k) for k in range(100)], ["empty"], CDC)
    files = {f.path: f for f in old.files}
    for k in range(0, 50, 5):                                    # ten changed
        files[f"d{k % 4}/f{k}"] = _entry(f"d{k % 4}/f{k}", k + 100)
    del files["d1/f1"]                                           # one gone
    files["new/dir/g"] = _entry("new/dir/g", 150)                # one added, in new folders
    return old, build_manifest(4096, files.values(), ["other"], CDC)


def test_a_delta_rebuilds_the_new_generation() -> None:
    old, new = _versions()
    delta = make_delta(old, new)
    assert delta is not None
    assert len(delta["files"]) == 11 and sorted(delta["removed"])[:1] == ["d0/f0"]
    assert delta["dirs_removed"] == ["empty"] and delta["dirs_added"] == ["new", "new/dir", "other"]
    rebuilt = apply_delta(old, delta)
    assert rebuilt == new and rebuilt.generation == new.generation
    assert apply_delta(new, make_delta(new, new)) == new        # a rejoin: no change at all


def test_no_delta_where_the_whole_manifest_is_as_cheap() -> None:
    old, _ = _versions()
    other_chunking = build_manifest(4096, old.files, old.dirs, FIXED)
    assert make_delta(old, other_chunking) is None
    most_changed = build_manifest(4096, [_entry(f.path, 150) for f in old.files], old.dirs, CDC)
    assert make_delta(old, most_changed) is None


def _tampered(delta: dict[str, Any], **change: Any) -> dict[str, Any]:
    return {**delta, **change}


@pytest.mark.parametrize("change", [
    {"base": "0" * 24},                                           # for another generation
    {"removed": ["../etc/passwd"]},
    {"files": [["a/../b", 1, 0, 0, [H[0]], [1]]]},
    {"files": [["x", 5, 0, 0, [H[0]], [4]]]},                     # sizes do not add up
    {"dirs_added": "new"},
    {"format": 2},
    {"generation": ""},
    {"removed": []},             # the changed files' old entries stay: each path twice
], ids=["base", "removed", "path", "sizes", "dirs", "format", "no-generation", "twice"])
def test_a_malformed_delta_is_refused(change: dict[str, Any]) -> None:
    old, new = _versions()
    delta = make_delta(old, new)
    assert delta is not None
    with pytest.raises(ManifestError):
        apply_delta(old, _tampered(delta, **change))


def test_a_delta_to_other_content_is_caught_by_its_id_or_by_the_signed_digest() -> None:
    old, new = _versions()
    other = build_manifest(4096, [*new.files, _entry("planted", 160)], new.dirs, CDC)
    signed = sign_version(new, Ed25519PrivateKey.generate(), published_ms=1)
    wrong = make_delta(old, other)
    assert wrong is not None
    with pytest.raises(ManifestError, match="generation id"):
        apply_delta(old, _tampered(wrong, generation=new.generation))
    rebuilt = apply_delta(old, wrong)           # consistent with itself, but not what was signed
    assert not describes(rebuilt, signed)
    assert describes(apply_delta(old, make_delta(old, new)), signed)  # type: ignore[arg-type]


# A version as (path number, content number, chunks) per file: contents shared between files,
# between versions, and chunks that only a removed file held come back in a new one.
_files = st.dictionaries(st.integers(0, 40), st.tuples(st.integers(0, 30), st.integers(1, 3)), max_size=30)


def _version(files: dict[int, tuple[int, int]]) -> Manifest:
    return build_manifest(10, [FileEntry(f"d{k % 3}/f{k:02d}", 10 * n, 1_700_000_000 * 10**9 + c, c % 2 == 1,
                                           tuple(H[(c + x) % len(H)] for x in range(n)), (10,) * n)
                                 for k, (c, n) in files.items()], [], FIXED)


@settings(max_examples=300, deadline=None)
@given(_files, st.dictionaries(st.integers(0, 40), st.none() | st.tuples(st.integers(0, 30), st.integers(1, 3)),
                               max_size=6))
def test_a_delta_applied_by_columns_gives_the_whole_new_manifest(
        old: dict[int, tuple[int, int]], edits: dict[int, tuple[int, int] | None]) -> None:
    """The new table is spliced from runs of the old one's columns and the new entries: it must be
    the very table (columns, chunk numbers, hashes) of the whole new manifest."""
    new = {k: v for k, v in {**old, **edits}.items() if v is not None}
    base, want = _version(old), _version(new)
    delta = make_delta(base, want)
    if delta is None:
        return
    rebuilt = apply_delta(base, delta)
    assert rebuilt.files.columns == want.files.columns and rebuilt.generation == want.generation
    assert rebuilt.chunk_table() == want.chunk_table()


def test_a_version_that_changes_files_in_place_shares_the_columns_it_leaves_as_they_were() -> None:
    """Ten files of a hundred get other content of the same size: the new table holds the old
    one's paths, their ends, flags, chunk counts, references and sizes (one object for both), and new
    mtimes and hashes."""
    old = _version({k: (k, 1) for k in range(100)})
    new = _version({k: (k + 50 if k % 10 == 0 else k, 1) for k in range(100)})
    delta = make_delta(old, new)
    assert delta is not None
    rebuilt = apply_delta(old, delta)
    assert rebuilt == new and rebuilt.generation == new.generation
    a, b = old.files.columns, rebuilt.files.columns
    assert [name for name in ("paths", "path_ends", "sizes", "mtimes", "executable", "ref_ends", "refs", "lengths",
                              "hashes") if getattr(a, name) is getattr(b, name)] == [
        "paths", "path_ends", "sizes", "executable", "ref_ends", "refs", "lengths"]


def test_delta_messages_are_bounded_at_decode() -> None:
    msg = p.ManifestDelta("a" * 24, "b" * 24, {"format": 1})
    assert p.decode(p.encode(msg)) == msg
    with pytest.raises(RemoteProtocolError, match="base"):
        p.decode(p.encode(p.ManifestDelta("a" * 200, "b" * 24, {})))
    with pytest.raises(RemoteProtocolError, match="delta"):
        p.decode('{"t":"manifest_delta","base":"a","generation":"b","delta":[1]}')
    with pytest.raises(RemoteProtocolError, match="generation"):
        p.decode(p.encode(p.ManifestWanted("x" * 129)), limit=p.MAX_FRAME)
