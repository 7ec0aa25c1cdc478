"""Manifest: chunking edge cases, hostile paths, (de)serialisation, diff."""

from __future__ import annotations

import gc
import json
import weakref

import pytest

from lanscatter.core.chunking import CDC, fixed_sizes
from lanscatter.core.errors import ManifestError
from lanscatter.core.manifest import (
    MAX_CHUNK_SIZE,
    MAX_FILE_SIZE,
    MAX_FILES,
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    FileEntry,
    build_manifest,
    check_relpath,
    diff_manifests,
    manifest_from_dict,
    manifest_from_json,
    show_path,
)
from lanscatter.disk.hashing import hash_bytes

CS = 100
H = [hash_bytes(bytes([i])) for i in range(10)]


def _fe(path: str, size: int, mtime_ns: int, executable: bool, chunks: tuple[str, ...]) -> FileEntry:
    return FileEntry(path, size, mtime_ns, executable, chunks, fixed_sizes(size, CS))


@pytest.mark.parametrize(("size", "sizes"), [
    (0, ()), (1, (1,)), (CS - 1, (CS - 1,)), (CS, (CS,)), (CS + 1, (CS, 1)), (3 * CS, (CS, CS, CS)),
])
def test_fixed_chunking_edges(size: int, sizes: tuple[int, ...]) -> None:
    assert fixed_sizes(size, CS) == sizes
    entry = FileEntry("f", size, 0, False, tuple(H[:len(sizes)]), sizes)
    assert [(off, n) for _, _, off, n in entry.spans()] == [(k * CS, n) for k, n in enumerate(sizes)]


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
    m = build_manifest(CS, [_fe("b/x", 150, 5, True, (H[0], H[1])), _fe("a", 0, 7, False, ())],
                       ["empty"])
    again = manifest_from_json(m.to_json())
    assert again == m and again.generation == m.generation
    assert m.dirs == ("b", "empty")
    assert [f.path for f in m.files] == ["a", "b/x"]
    other = build_manifest(CS, [_fe("b/x", 150, 6, True, (H[0], H[1])), _fe("a", 0, 7, False, ())],
                           ["empty"])
    assert other.generation != m.generation


def test_identical_content_is_listed_once() -> None:
    m = build_manifest(CS, [_fe("x", 200, 0, False, (H[0], H[1])),
                            _fe("y", 100, 0, False, (H[0],))], [])
    assert [h for h, _ in m.chunk_table()] == [H[0], H[1]]
    assert m.total_bytes == 200 and m.file_bytes == 300
    assert len(m.locations()[H[0]]) == 2


def test_a_manifest_dropped_goes_at_once_with_its_derived_tables() -> None:
    """Its derived tables must not point back at it: a manifest of a million files caught in a
    cycle stays in memory until the collector's next full pass (a peer applying a version would
    hold the old one beside the new one)."""
    m = build_manifest(CS, [_fe("x", 200, 0, False, (H[0], H[1])), _fe("y", 100, 0, False, (H[0],))], [])
    m.chunk_table(), m.chunk_index(), m.locations(), m.locations().first(H[1])
    gone = weakref.ref(m)
    gc.disable()
    try:
        del m
        assert gone() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("mutate", [
    lambda d: d["files"].append(["../evil", 1, 0, 0, [H[0]], [1]]),
    lambda d: d["files"].append(["abs", 1, 0, 0, ["zz"], [1]]),
    lambda d: d["files"].append(["n", 250, 0, 0, [H[0]], [250]]),      # a chunk over the fixed size
    lambda d: d["files"].append(["n", 250, 0, 0, [H[0], H[1], H[2]], [100, 100, 49]]),   # short
    lambda d: d["files"].append(["n", 20, 0, 0, [H[0]], [20, 0]]),     # sizes and hashes unpaired
    lambda d: d["files"].append(["n", 20, 0, 0, [H[0]]]),              # no sizes
    lambda d: d["files"].append(["x", 10, 0, 0, [H[9]], [10]]),        # duplicate path
    lambda d: d["files"].append(["x/under-a-file", 1, 0, 0, [H[8]], [1]]),
    lambda d: d.update(generation="0" * 24),
    lambda d: d.update(chunk_size=-1),
    lambda d: d.update(format=99),
    lambda d: d.update(format=1),                                      # no chunk sizes in it
    lambda d: d.update(chunking="rolling"),
    lambda d: d.pop("chunking"),
    lambda d: d.pop("files"),
    lambda d: d["dirs"].append("/root"),
    lambda d: d["files"].append(["n" * 300, 1, 0, 0, [H[0]], [1]]),    # a name no file system takes
    lambda d: d["files"].append(["big", MAX_FILE_SIZE + 1, 0, 0, [], []]),
    lambda d: d["files"].append(["late", 1, 2**63, 0, [H[0]], [1]]),    # no OS takes that mtime
    lambda d: d["files"].append(["bool", True, 0, 0, [H[0]], [1]]),
    lambda d: d.update(chunk_size=MAX_CHUNK_SIZE + 1),
    lambda d: d.update(chunk_size=10**400),
    lambda d: d.update(files={"x": 1}),
    lambda d: d["files"].append(["n", 1, 0, 0, "h" * 64, [1]]),        # chunks not a list
    lambda d: d["files"].append(["n", 1, 0, 0, [H[0]], [True]]),       # a size that is no number
])
def test_malformed_manifests_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    m = build_manifest(CS, [_fe("x", 150, 0, False, (H[0], H[1]))], [])
    data = json.loads(m.to_json())
    mutate(data)
    with pytest.raises(ManifestError):
        manifest_from_dict(data)


def test_same_chunk_with_two_sizes_is_refused() -> None:
    data = json.loads(build_manifest(CS, [_fe("x", 150, 0, False, (H[0], H[1])),
                                          _fe("y", 100, 0, False, (H[2],))], []).to_json())
    data["files"][1][4] = [H[1]]       # H[1] is 50 bytes in x, would be 100 in y
    data.pop("generation")
    with pytest.raises(ManifestError, match="two different sizes"):
        manifest_from_dict(data)


def test_diff() -> None:
    a = build_manifest(CS, [_fe("x", 100, 0, False, (H[0],)), _fe("y", 100, 0, False, (H[1],))], [])
    b = build_manifest(CS, [_fe("x", 100, 1, False, (H[2],)), _fe("z", 100, 0, False, (H[1],))], [])
    d = diff_manifests(a, b)
    assert (d.added, d.removed, d.changed, d.new_chunks, d.new_bytes) == (("z",), ("y",), ("x",), 1, 100)


def test_manifests_over_the_count_bounds_are_refused_before_their_entries_are_read() -> None:
    data = {"format": 2, "chunking": "fixed", "chunk_size": CS, "dirs": [], "files": [None] * (MAX_FILES + 1)}
    with pytest.raises(ManifestError, match="more than"):
        manifest_from_dict(data)


def _cdc_manifest_dict(sizes: list[int], target: int = 4096) -> dict:  # type: ignore[type-arg]
    m = build_manifest(target, [FileEntry("v", sum(sizes), 0, False, tuple(H[:len(sizes)]), tuple(sizes))],
                       [], CDC)
    return m.to_dict()


def test_variable_chunks_round_trip_and_feed_the_generation() -> None:
    data = _cdc_manifest_dict([1024, 16384, 5000, 7])
    m = manifest_from_dict(data)
    assert m.chunking_kind == CDC and m.file("v").sizes == (1024, 16384, 5000, 7)  # type: ignore[union-attr]
    assert [off for _, _, off, _ in m.file("v").spans()] == [0, 1024, 17408, 22408]  # type: ignore[union-attr]
    assert manifest_from_json(m.to_json()) == m
    other = manifest_from_dict(_cdc_manifest_dict([1024, 16384, 5001, 6]))
    assert other.generation != m.generation          # same hashes and file size, other boundaries


@pytest.mark.parametrize("sizes", [
    [1023, 16384],            # a chunk under the minimum (target / 4) that is not the last
    [1024, 16385],            # over the maximum (target x 4), even as the last
    [0, 1024],                # an empty chunk
])
def test_variable_chunks_out_of_bounds_are_refused(sizes: list[int]) -> None:
    data = _cdc_manifest_dict([1024, 1024])
    data["files"][0][1] = sum(sizes)
    data["files"][0][5] = sizes
    data.pop("generation")
    with pytest.raises(ManifestError):
        manifest_from_dict(data)


def test_variable_chunk_sizes_must_add_up_to_the_file() -> None:
    data = _cdc_manifest_dict([2048, 2048])
    data["files"][0][1] = 4097
    data.pop("generation")
    with pytest.raises(ManifestError, match="add up"):
        manifest_from_dict(data)


def test_cdc_chunk_size_must_be_a_power_of_two() -> None:
    data = _cdc_manifest_dict([2048, 2048])
    data["chunk_size"] = 5000
    data.pop("generation")
    with pytest.raises(ManifestError, match="power of two"):
        manifest_from_dict(data)
