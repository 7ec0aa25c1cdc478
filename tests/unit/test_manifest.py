"""Manifest: chunking edge cases, hostile paths, (de)serialisation, diff."""

from __future__ import annotations

import json

import pytest

from lanscatter.errors import ManifestError
from lanscatter.hashing import hash_bytes
from lanscatter.manifest import (
    MAX_CHUNK_SIZE,
    MAX_FILE_SIZE,
    MAX_FILES,
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    FileEntry,
    build_manifest,
    check_relpath,
    chunk_count,
    chunk_span,
    diff_manifests,
    manifest_from_dict,
    manifest_from_json,
    show_path,
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
    "", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", "a\\b", "a\x00b", ".", "..",
    "bad\udcff.txt",                                   # a name that was not UTF-8 on disk
    "\ud800",                                          # a lone surrogate, as JSON text can carry
    "n" * (MAX_NAME_BYTES + 1), "d/" + "é" * (MAX_NAME_BYTES // 2 + 1),   # bytes count, not letters
    "/".join(["d" * 200] * 21),                          # every name fine, the path too long
])
def test_hostile_paths_are_refused(path: str) -> None:
    with pytest.raises(ManifestError):
        check_relpath(path)


@pytest.mark.parametrize("path", [
    "a", "a/b/c.txt", ".hidden", "..x", "x..", "spaces in name", "ünï",
    # POSIX names with a colon: every host that writes a folder is POSIX, where no drive letter exists
    "a:b.txt", "c:", "C:/x", "c:x", "dir/d:e",
    "n" * MAX_NAME_BYTES, "/".join(["d" * 203] * 20)[:MAX_PATH_BYTES],
])
def test_ordinary_paths_pass(path: str) -> None:
    assert check_relpath(path) == path


def test_refusals_show_the_path_escaped_and_short() -> None:
    with pytest.raises(ManifestError) as info:
        check_relpath("bad\udcff\n" + "x" * 5000)
    message = str(info.value)
    assert "bad\\xff\\n" in message and len(message) < 200
    assert show_path("ok/ünï") == "ok/ünï"
    assert show_path("\x1b[31mred") == "\\x1b[31mred"
    assert show_path("lit\\xff") == "lit\\\\xff"          # a backslash in a name is doubled


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
    lambda d: d["files"].append(["n" * 300, 1, 0, 0, [H[0]]]),         # a name no file system takes
    lambda d: d["files"].append(["big", MAX_FILE_SIZE + 1, 0, 0, []]),
    lambda d: d["files"].append(["late", 1, 2**63, 0, [H[0]]]),         # no OS takes that mtime
    lambda d: d["files"].append(["bool", True, 0, 0, [H[0]]]),
    lambda d: d.update(chunk_size=MAX_CHUNK_SIZE + 1),
    lambda d: d.update(chunk_size=10**400),
    lambda d: d.update(files={"x": 1}),
    lambda d: d["files"].append(["n", 1, 0, 0, "h" * 64]),              # chunks not a list
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


def test_manifests_over_the_count_bounds_are_refused_before_their_entries_are_read() -> None:
    data = {"format": 1, "chunk_size": CS, "dirs": [], "files": [None] * (MAX_FILES + 1)}
    with pytest.raises(ManifestError, match="more than"):
        manifest_from_dict(data)
