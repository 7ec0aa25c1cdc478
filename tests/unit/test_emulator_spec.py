"""The emulator's site spec: what it accepts and how it says what it refuses."""

from __future__ import annotations

import re

import pytest

from lanscatter.core.errors import ConfigError
from lanscatter.emulator.spec import Host, NetSpec, Site, WanLink

MBIT = 1e6 / 8


def tree(**link_kw: float) -> NetSpec:
    return NetSpec(
        sites=(
            Site("hq", 100 * MBIT, (Host("o"), Host("a"))),
            Site("b1", 100 * MBIT, (Host("x"),), parent="hq"),
            Site("b2", 100 * MBIT, (Host("y"),), parent="b1"),
        ),
        wan_links=(
            WanLink("hq", "b1", 20 * MBIT, 10 * MBIT, **link_kw),
            WanLink("b1", "b2", 20 * MBIT, 10 * MBIT),
        ),
        tag="t1",
    )


def test_a_valid_tree_answers_questions_about_itself() -> None:
    spec = tree(delay_s=0.04)
    assert spec.children("hq") == ("b1",)
    assert spec.subtree("hq") == ("hq", "b1", "b2")
    assert spec.link_to_parent("b2") == spec.wan_links[1]
    assert spec.link_to_parent("hq") is None
    assert [h.name for h in spec.hosts] == ["o", "a", "x", "y"]
    assert spec.wan_links[0].name == "hq<->b1"
    assert spec.wan_links[0].needs_delay_or_loss and not spec.wan_links[1].needs_delay_or_loss


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"tag": "Bad-Tag"}, "tag"),
        ({"sites": ()}, "no sites"),
        ({"sites": (Site("hq", 1, (Host("o"),)), Site("hq", 1, ()))}, "site names repeat"),
        ({"sites": (Site("hq", 1, (Host("o"),)), Site("b", 1, (Host("o"),), parent="hq")),
              "wan_links": (WanLink("hq", "b", 1, 1),)}, "host names repeat"),
        ({"sites": (Site("a", 1, ()), Site("b", 1, ()))}, "exactly one root"),
        ({"sites": (Site("a", 0, ()),)}, "LAN rate"),
        ({"sites": (Site("a", 1, (), switch_bytes_per_s=0),)}, "switch rate"),
        ({"sites": (Site("a", 1, (Host("o", up_bytes_per_s=-1),)),)}, "rates must be positive"),
        ({"sites": (Site("a", 1, ()), Site("b", 1, (), parent="zz"))}, "is not a site"),
        ({"sites": (Site("a", 1, ()), Site("b", 1, (), parent="c"), Site("c", 1, (), parent="b"))},
         "one tree"),
        ({"sites": (Site("a", 1, ()), Site("b", 1, (), parent="a")), "wan_links": ()}, "without a WAN link"),
        ({"sites": (Site("a", 1, ()), Site("b", 1, (), parent="a")),
              "wan_links": (WanLink("b", "a", 1, 1),)}, "does not join"),
        ({"sites": (Site("a", 1, ()), Site("b", 1, (), parent="a")),
              "wan_links": (WanLink("a", "b", 1, 1), WanLink("a", "b", 1, 1))}, "more than one"),
        ({"sites": (Site("a", 1, ()), Site("b", 1, (), parent="a")),
              "wan_links": (WanLink("a", "b", 1, 1, loss=1.0),)}, "loss in [0, 1)"),
        ({"sites": (Site("a", 1, ()), Site("b", 1, (), parent="a")),
              "wan_links": (WanLink("a", "b", 0, 1),)}, "rates must be positive"),
    ],
)
def test_bad_specs_are_refused_with_the_reason(change: dict[str, object], words: str) -> None:
    base = {"sites": tree().sites, "wan_links": tree().wan_links, "tag": "t1"}
    base.update(change)
    with pytest.raises(ConfigError, match="network spec: .*" + re.escape(words)):
        NetSpec(**base)  # type: ignore[arg-type]
