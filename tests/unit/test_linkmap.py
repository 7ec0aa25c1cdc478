from lanscatter.core.linkmap import Link, LinkMap


def _tree() -> LinkMap:
    links = {n: Link(n, 1e6) for n in ("wan:hq>r", "wan:r>hq", "wan:r>b", "wan:b>r", "switch:hq", "switch:b")}
    return LinkMap(links=links, node_site={"o": "hq", "x": "b", "y": "r"},
                   site_parent={"hq": None, "r": "hq", "b": "r"})


def test_route_goes_through_the_tree() -> None:
    m = _tree()
    assert m.site_route("hq", "b") == [("hq", "r"), ("r", "b")]
    assert m.site_route("b", "hq") == [("b", "r"), ("r", "hq")]
    assert m.site_route("b", "b") == []


def test_path_lists_only_known_links_in_order() -> None:
    m = _tree()
    assert m.path("o", "x") == ("switch:hq", "wan:hq>r", "wan:r>b", "switch:b")
    assert m.path("y", "o") == ("wan:r>hq", "switch:hq")
    assert m.crosses_wan("o", "x") and not m.crosses_wan("o", "o")
