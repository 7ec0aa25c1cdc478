"""The publish policy: which scans may be published, and the default mode."""

from __future__ import annotations

from lanscatter.core.manifest import FileEntry, Manifest, build_manifest
from lanscatter.core.publish_policy import check_publish, default_mode

H = "ab" * 32


def _m(*paths: str) -> Manifest:
    return build_manifest(1024, [FileEntry(p, 1, 0, False, (H,), (1,)) for p in paths], [])


def test_an_empty_source_is_refused_first_and_later() -> None:
    first = check_publish(None, _m(), allow_shrink=False)
    assert first is not None and "empty" in first.reason and "--allow-shrink" in first.hint
    later = check_publish(_m("a", "b"), _m(), allow_shrink=False)
    assert later is not None and "all 2 files" in later.reason


def test_a_source_that_loses_more_than_half_of_the_files_is_refused() -> None:
    old = _m("a", "b", "c", "d")
    assert check_publish(old, _m("a", "b"), allow_shrink=False) is None             # half: allowed
    refused = check_publish(old, _m("a", "x", "y"), allow_shrink=False)             # 3 of 4 gone
    assert refused is not None and "3 of the 4 files" in refused.reason


def test_growth_and_the_first_version_pass() -> None:
    assert check_publish(None, _m("a"), allow_shrink=False) is None
    assert check_publish(_m("a"), _m("a", "b"), allow_shrink=False) is None


def test_allow_shrink_lets_everything_through() -> None:
    assert check_publish(_m("a", "b"), _m(), allow_shrink=True) is None
    assert check_publish(None, _m(), allow_shrink=True) is None


def test_default_mode_follows_the_kind_of_source() -> None:
    assert default_mode(source_is_link=True) == "on-switch"
    assert default_mode(source_is_link=False) == "on-change"
