"""The pure part of versions: which files are shared, which versions are dropped, the index."""

from __future__ import annotations

import pytest

from lanscatter.core.manifest import FileEntry, Manifest
from lanscatter.core.version_plan import (
    NAME_MAX,
    Hold,
    IndexError_,
    VersionIndex,
    VersionRecord,
    beside_name,
    index_from_dict,
    link_plan,
    strays,
    to_drop,
    version_name,
)


def _f(path: str, chunks: tuple[str, ...], mtime: int = 1, exe: bool = False) -> FileEntry:
    return FileEntry(path, 10 * len(chunks), mtime, exe, chunks, (10,) * len(chunks))


def _m(*files: FileEntry) -> Manifest:
    return Manifest(chunk_size=10, files=tuple(files), dirs=())


def _links(active: list[FileEntry], new: Manifest) -> dict[str, str | None]:
    """The plan as new path -> active path."""
    plan, files = link_plan(active, new), new.files
    return {files.path(j): plan.source(files, j) for j in range(len(files)) if plan.linked(j)}


def test_link_plan_shares_only_files_equal_in_content_and_metadata() -> None:
    active = [_f("same", ("a",)), _f("edited", ("b",)), _f("touched", ("c",)), _f("exe", ("d",)),
              _f("old-name", ("e",))]
    new = _m(_f("same", ("a",)), _f("edited", ("x",)), _f("touched", ("c",), mtime=2),
             _f("exe", ("d",), exe=True), _f("new-name", ("e",)), _f("fresh", ("y",)))
    assert _links(active, new) == {"same": "same", "new-name": "old-name"}


def test_link_plan_prefers_the_same_path() -> None:
    active = [_f("a", ("h",)), _f("b", ("h",))]
    assert _links(active, _m(_f("b", ("h",)), _f("c", ("h",)))) == {"b": "b", "c": "a"}


def test_link_plan_finds_moved_files_by_content_the_first_active_one_each() -> None:
    active = [_f(f"old/{k:03d}", (f"h{k % 7}",), mtime=k % 3) for k in range(60)]
    new = _m(*[_f(f"new/{k:03d}", (f"h{k % 7}",), mtime=k % 5) for k in range(60)])
    expect = {}
    for k in range(60):
        first = next((a.path for a in active if a.chunks == (f"h{k % 7}",) and a.mtime_ns == k % 5), None)
        if first is not None:
            expect[f"new/{k:03d}"] = first
    assert len(expect) > 10 and _links(active, new) == expect


def test_link_plan_links_many_identical_moved_files_to_the_first_active_copy() -> None:
    # thousands of identical files (empty ones sharing an mtime, as an archive extracts them):
    # every new one is linked to the first active copy, each active copy looked at once
    active = [_f(f"old/{k:04d}", ("e",)) for k in range(3000)]
    new = _m(*[_f(f"new/{k:04d}", ("e",)) for k in range(3000)])
    assert _links(active, new) == {f"new/{k:04d}": "old/0000" for k in range(3000)}


def _index(active: str | None, *names: str) -> VersionIndex:
    return VersionIndex(active, tuple(VersionRecord(n, "", 0.0) for n in names))


def test_to_drop_keeps_the_active_and_the_most_recent() -> None:
    assert to_drop(_index("c", "c", "b", "a"), keep=2) == ["a"]
    assert to_drop(_index("c", "c", "b", "a"), keep=1) == ["b", "a"]
    # After a rollback the active one is not the most recent: it stays anyway.
    assert to_drop(_index("a", "c", "b", "a"), keep=2) == ["b"]
    assert to_drop(_index("c", "c", "b", "a"), keep=1, exclude=("b",)) == ["a"]
    assert to_drop(_index(None, "b", "a"), keep=1) == ["a"]


def test_strays_are_unknown_entries_of_the_versions_folder() -> None:
    idx = _index("b", "b", "a")
    assert strays(["a", "b", "c", "index.json", "lock", "d"], idx, exclude=("d",)) == ["c"]


def test_rollback_target_and_lookup() -> None:
    idx = VersionIndex("c", (VersionRecord("c", "cc" * 8, 3), VersionRecord("b", "bb" * 8, 2)))
    assert idx.previous() == idx.versions[1]
    assert idx.find("bbbb") == idx.versions[1] and idx.find("b") == idx.versions[1]
    assert idx.find("zz") is None
    moved = idx.with_active("b", "bb" * 8, 4.0)
    assert moved.active == "b" and [v.name for v in moved.versions] == ["b", "c"]


def test_a_version_is_found_by_the_origin_s_label_and_keeps_it() -> None:
    idx = VersionIndex(None).with_active("aa", "aa" * 8, 1.0, "release 1.2").with_active("bb", "bb" * 8, 2.0, "")
    assert idx.find("release 1.2") == idx.record("aa") and idx.find("") is None
    assert idx.with_active("aa", "aa" * 8, 3.0).record("aa") == VersionRecord("aa", "aa" * 8, 3.0, "release 1.2")


def test_index_round_trips_and_refuses_malformed_input() -> None:
    idx = VersionIndex("ab", (VersionRecord("ab", "ab" * 10, 1.5, "v2"),), Hold(("cd" * 10,)))
    assert index_from_dict(idx.to_dict()) == idx
    for bad in ([], {"format": 2}, {"format": 1, "versions": "x"},
                {"format": 1, "versions": [{"name": "../x", "generation": "ab", "activated": 1}]},
                {"format": 1, "versions": [], "active": "a/b"},
                {"format": 1, "versions": [], "hold": {"skip": ["not hex"]}},
                {"format": 1, "versions": [{"name": "a", "generation": "ab", "activated": True}]},
                {"format": 1, "versions": [{"name": "a", "generation": "ab", "activated": 1, "label": "x" * 201}]}):
        with pytest.raises(IndexError_):
            index_from_dict(bad)


def test_version_name_is_a_generation_prefix() -> None:
    assert version_name("ab" * 32) == "ab" * 8
    with pytest.raises(ValueError):
        version_name("../etc")


def test_names_beside_the_folder_fit_in_a_name() -> None:
    assert beside_name("build", ".lsc-versions") == "build.lsc-versions"
    long_a, long_b = "é" * 120 + "a", "é" * 120 + "b"          # 241 bytes each
    a, b = beside_name(long_a, ".lsc-versions"), beside_name(long_b, ".lsc-versions")
    assert a != b and a.endswith(".lsc-versions") and len(a.encode()) <= NAME_MAX
    assert a == beside_name(long_a, ".lsc-versions")

