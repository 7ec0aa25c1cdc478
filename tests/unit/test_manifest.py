"""Manifest: chunking edge cases, hostile paths, (de)serialisation, diff."""

from __future__ import annotations

import json

import pytest

from lanscatter.errors import ManifestError
from lanscatter.hashing import hash_bytes
from lanscatter.manifest import (
    FileEntry,
    build_manifest,
    check_relpath,
    chunk_count,
    chunk_span,
    diff_manifests,
    manifest_from_dict,
    manifest_from_json,
)

CS = 100
H = [hash_bytes(bytes([i])) for i in range(10)]


@pytest.mark.parametrize(("size", "count", "last"), [
    (0, 0, None), (1, 1, (0, 1)), (CS - 1, 1, (0, CS - 1)), (CS, 1, (0, CS)), (CS + 1, 2, (CS, 1)),
    (3 * CS, 3, (2 * CS, CS)),
])
def test_chunking_edges(size: int, count: int, last: tuple[int, int] | None) -> None:
    assert chunk_count(size, CS) == count
    if last is not None:
        assert chunk_span(size, CS, count - 1) == last


@pytest.mark.parametrize("path", [
    "", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", "C:/x", "c:x", "a\\b", "a\x00b", ".", "..",
])
def test_hostile_paths_are_refused(path: str) -> None:
    with pytest.raises(ManifestError):
        check_relpath(path)


@pytest.mark.parametrize("path", ["a", "a/b/c.txt", ".hidden", "..x", "x..", "spaces in name", "ünï"])
def test_ordinary_paths_pass(path: str) -> None:
    assert check_relpath(path) == path


def _m(*files: FileEntry, dirs: tuple[str, ...] = ()) -> object:
    return build_manifest(CS, files, dirs)


def test_round_trip_and_generation_is_content_derived() -> None:
    m = build_manifest(CS, [FileEntry("b/x", 150, 5, True, (H[0], H[1])), FileEntry("a", 0, 7, False, ())],
                       ["empty"])
    again = manifest_from_json(m.to_json())
    assert again == m and again.generation == m.generation
    assert m.dirs == ("b", "empty")
    assert [f.path for f in m.files] == ["a", "b/x"]
    other = build_manifest(CS, [FileEntry("b/x", 150, 6, True, (H[0], H[1])), FileEntry("a", 0, 7, False, ())],
                           ["empty"])
    assert other.generation != m.generation


def test_identical_content_is_listed_once() -> None:
    m = build_manifest(CS, [FileEntry("x", 200, 0, False, (H[0], H[1])),
                            FileEntry("y", 100, 0, False, (H[0],))], [])
    assert [h for h, _ in m.chunk_table()] == [H[0], H[1]]
    assert m.total_bytes == 200 and m.file_bytes == 300
    assert len(m.locations()[H[0]]) == 2


@pytest.mark.parametrize("mutate", [
    lambda d: d["files"].append(["../evil", 1, 0, 0, [H[0]]]),
    lambda d: d["files"].append(["abs", 1, 0, 0, ["zz"]]),
    lambda d: d["files"].append(["n", 250, 0, 0, [H[0]]]),             # wrong chunk count
    lambda d: d["files"].append(["x", 10, 0, 0, [H[9]]]),              # duplicate path
    lambda d: d["files"].append(["x/under-a-file", 1, 0, 0, [H[8]]]),
    lambda d: d.update(generation="0" * 24),
    lambda d: d.update(chunk_size=-1),
    lambda d: d.update(format=99),
    lambda d: d.pop("files"),
    lambda d: d["dirs"].append("/root"),
])
def test_malformed_manifests_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    m = build_manifest(CS, [FileEntry("x", 150, 0, False, (H[0], H[1]))], [])
    data = json.loads(m.to_json())
    mutate(data)
    with pytest.raises(ManifestError):
        manifest_from_dict(data)


def test_same_chunk_with_two_sizes_is_refused() -> None:
    data = json.loads(build_manifest(CS, [FileEntry("x", 150, 0, False, (H[0], H[1])),
                                          FileEntry("y", 100, 0, False, (H[2],))], []).to_json())
    data["files"][1][4] = [H[1]]       # H[1] is 50 bytes in x, would be 100 in y
    data.pop("generation")
    with pytest.raises(ManifestError, match="two different sizes"):
        manifest_from_dict(data)


def test_diff() -> None:
    a = build_manifest(CS, [FileEntry("x", 100, 0, False, (H[0],)), FileEntry("y", 100, 0, False, (H[1],))], [])
    b = build_manifest(CS, [FileEntry("x", 100, 1, False, (H[2],)), FileEntry("z", 100, 0, False, (H[1],))], [])
    d = diff_manifests(a, b)
    assert (d.added, d.removed, d.changed, d.new_chunks, d.new_bytes) == (("z",), ("y",), ("x",), 1, 100)
