"""Every problem is found, collected, and placed at the exact line and column."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lanscatter.topology import TopologyError, load_topology, yaml_positions

# A valid two-site tree; the cases below change one or two lines of it.
BASE = """\
dataset:
  source: /srv/data
  origin: o
sites:
  hq:
    hosts:
      o: 10.0.0.1
      p: 10.0.0.2
  br:
    gateway: g
    hosts:
      g: 10.0.1.1
      b: 10.0.1.2
wan:
  - between: [hq, br]
    bandwidth: 50Mbit
"""


def _edit(**lines: str) -> str:
    """BASE with numbered lines replaced: _edit(l3="  origin: x")."""
    rows = BASE.splitlines()
    for key, text in lines.items():
        rows[int(key[1:]) - 1] = text
    return "\n".join(rows) + "\n"


def _problems(tmp_path: Path, text: str) -> list[tuple[int, int, str]]:
    path = tmp_path / "site-tree.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    err = info.value
    for p in err.problems:
        assert str(p).startswith(f"{path}:{p.line}:{p.col}: error: ") and str(p).endswith(f"[{p.code}]")
    assert str(err) == "\n".join(str(p) for p in err.problems)
    return [(p.line, p.col, p.code) for p in err.problems]


def test_base_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(BASE)
    topo = load_topology(path)
    assert [s.name for s in topo.sites] == ["hq", "br"]


CASES = [
    # (id, text, expected problems (line, col, code), a fragment of the first message)
    ("unknown top key", BASE + "wann: []\n", [(17, 1, "unknown-key")], "did you mean 'wan'?"),
    ("unknown dataset key", _edit(l2="  sorce: /srv/data"),
     [(1, 1, "missing-key"), (2, 3, "unknown-key")], "needs 'source'"),
    ("unknown host key", _edit(l8="      p: {adress: 10.0.0.2}"), [(8, 11, "unknown-key")],
     "did you mean 'address'?"),
    ("unknown site key", _edit(l10="    gatway: g"), [(9, 3, "no-gateway"), (10, 5, "unknown-key")],
     "needs 'gateway: <host>'"),
    ("unknown origin", _edit(l3="  origin: oo"), [(3, 11, "unknown-host")], "did you mean 'o'?"),
    ("gateway not in its site", _edit(l10="    gateway: p"), [(10, 14, "unknown-host")],
     "it is in site 'hq'"),
    ("misspelt gateway", _edit(l10="    gateway: gg"), [(10, 14, "unknown-host")], "did you mean 'g'?"),
    ("no gateway", _edit(l10="    lan: 1Gbit"), [(9, 3, "no-gateway")], "one of: g, b"),
    ("gateway on the root site", _edit(l6="    gateway: o\n    hosts:"), [(6, 14, "root-gateway")], ""),
    ("unknown site in link", _edit(l15="  - between: [hq, brr]"),
     [(9, 3, "disconnected"), (15, 19, "unknown-site")], "not connected"),
    ("self link", _edit(l15="  - between: [hq, hq]"), [(9, 3, "disconnected"), (15, 14, "self-link")], ""),
    ("duplicate link", BASE + "  - between: [br, hq]\n    bandwidth: 1Gbit\n", [(17, 5, "duplicate-link")],
     "already linked (line 15)"),
    ("duplicate site", BASE.replace("wan:", "  hq:\n    hosts: [x]\nwan:"), [(14, 3, "duplicate-key")],
     "first on line 5"),
    ("duplicate host in a site", _edit(l13="      g: 10.0.1.2"), [(13, 7, "duplicate-key")], ""),
    ("duplicate host across sites", _edit(l13="      p: 10.0.1.2"), [(13, 7, "duplicate-name")],
     "already defined in site 'hq'"),
    ("unit-less lan", _edit(l6="    lan: 100\n    hosts:"), [(6, 10, "unit-missing")], "'100Mbit'"),
    ("unit-less bandwidth", _edit(l16="    bandwidth: 50"), [(16, 16, "unit-missing")], ""),
    ("zero bandwidth", _edit(l16="    bandwidth: 0Mbit"), [(16, 16, "bad-speed")], ""),
    ("misspelt unit", _edit(l16="    bandwidth: 50Mbti"), [(16, 16, "bad-unit")], "did you mean 'Mbit'?"),
    ("latency without unit", BASE + "    latency: 20\n", [(17, 14, "unit-missing")], ""),
    ("cap above bandwidth", BASE + "    up: 100Mbit\n", [(17, 9, "bad-cap")], ""),
    ("no bandwidth", _edit(l16="    latency: 20ms"), [(15, 5, "missing-key")], ""),
    ("port out of range", _edit(l8="      p: {address: 10.0.0.2, peer_port: 70000}"), [(8, 41, "bad-value")], ""),
    ("port as text", _edit(l8="      p: {address: 10.0.0.2, peer_port: http}"), [(8, 41, "wrong-type")], ""),
    ("two roles on one address and port",
     _edit(l8="      p: {address: 10.0.0.1, peer_port: 10564}"), [(8, 41, "port-conflict")],
     "already used by 'o' (master"),
    ("same address, default ports differ", _edit(l8="      p: 10.0.0.1"), [], ""),
    ("same address, two peers", _edit(l8="      p: 10.0.0.5", l7="      o: 10.0.0.9\n      q: 10.0.0.5"),
     [(9, 7, "port-conflict")], ""),
    ("bad address", _edit(l8="      p: 10.0.0.256"), [(8, 10, "bad-address")], ""),
    ("wildcard address", _edit(l8="      p: 0.0.0.0"), [(8, 10, "bad-address")], ""),
    ("bad host name", _edit(l8="      p/q: 10.0.0.2"), [(8, 7, "bad-name")], ""),
    ("chunk size without unit", _edit(l3="  origin: o\n  chunk_size: 16"), [(4, 15, "unit-missing")], ""),
    ("chunk size too small", _edit(l3="  origin: o\n  chunk_size: 1KiB"), [(4, 15, "bad-size")], ""),
    ("secret with two sources", _edit(l3="  origin: o\n  secret: {env: A, file: b}"), [(4, 11, "bad-secret")], ""),
    ("secret unknown kind", _edit(l3="  origin: o\n  secret: {vault: x}"),
     [(4, 11, "bad-secret"), (4, 12, "unknown-key")], ""),
    ("origin with its own folder", _edit(l7="      o: {address: 10.0.0.1, folder: /x}"), [(7, 38, "origin-folder")], ""),
    ("site without hosts", _edit(l11="    hosts: {}", l12="", l13=""), [(10, 14, "unknown-host"), (11, 12, "no-hosts")], ""),
    ("standby not in its site", _edit(l10="    gateway: [g, p]"), [(10, 18, "unknown-host")], "in site 'hq'"),
    ("gateway named twice", _edit(l10="    gateway: [g, g]"), [(10, 18, "duplicate-gateway")], ""),
    ("empty gateway list", _edit(l10="    gateway: []"), [(9, 3, "no-gateway"), (10, 14, "wrong-type")], ""),
    ("sites not a mapping", _edit(l4="sites: [hq]", **{f"l{i}": "" for i in range(5, 17)}),
     [(3, 11, "unknown-host"), (4, 8, "wrong-type")], ""),
    ("yaml syntax error", _edit(l15="  - between: [hq, br"), [(16, 14, "yaml-syntax")], ""),
    ("tab indentation", _edit(l16="\tbandwidth: 50Mbit"), [(16, 1, "yaml-syntax")], ""),
    ("two documents", BASE + "---\nx: 1\n", [(18, 1, "yaml-syntax")], ""),
    ("empty file", "# nothing\n", [(1, 1, "empty-file")], ""),
    ("version", "version: 2\n" + BASE, [(1, 10, "bad-value")], ""),
]


@pytest.fixture(params=["libyaml", "pure"])
def yaml_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Positions are the same whether PyYAML parses with libyaml or in Python."""
    if request.param == "pure":
        monkeypatch.setattr(yaml_positions, "_LOADER", yaml.SafeLoader)
    elif not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML built without libyaml")


@pytest.mark.parametrize(("text", "expected", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.usefixtures("yaml_loader")
def test_problem_positions(tmp_path: Path, text: str, expected: list[tuple[int, int, str]],
                           fragment: str) -> None:
    if not expected:
        path = tmp_path / "t.yaml"
        path.write_text(text)
        load_topology(path)
        return
    path = tmp_path / "site-tree.yaml"
    problems = _problems(tmp_path, text)
    assert problems == expected
    if fragment:
        path.write_text(text)
        with pytest.raises(TopologyError) as info:
            load_topology(path)
        assert fragment in info.value.problems[0].message


def test_cycle_is_reported_at_the_closing_link(tmp_path: Path) -> None:
    text = BASE.replace("wan:", "  c:\n    gateway: h\n    hosts: [h]\nwan:") + (
        "  - between: [br, c]\n    bandwidth: 1Gbit\n"
        "  - between: [c, hq]\n    bandwidth: 1Gbit\n")
    assert _problems(tmp_path, text) == [(22, 5, "cycle")]
    with pytest.raises(TopologyError) as info:
        load_topology(tmp_path / "site-tree.yaml")
    assert "c - br - hq - c" in info.value.problems[0].message


def test_every_problem_is_collected_in_one_run(tmp_path: Path) -> None:
    text = _edit(l3="  origin: oo", l8="      p: {adress: x}", l10="    gateway: gg", l16="    bandwidth: 5")
    codes = [c for _, _, c in _problems(tmp_path, text)]
    assert codes == ["unknown-host", "unknown-key", "unknown-host", "unit-missing"]


def test_names_keep_their_text_where_yaml_would_read_booleans(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(BASE.replace("b: 10.0.1.2", "no: 10.0.1.2").replace("p: 10.0.0.2", "on:"))
    topo = load_topology(path)
    assert [h.name for h in topo.hosts()] == ["o", "on", "g", "no"]
    assert topo.host("on") is not None and topo.host("on").address == "on"  # type: ignore[union-attr]


def test_merge_keys_apply_and_own_keys_win(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(BASE.replace("      b: 10.0.1.2", "      b: {<<: *w, address: 10.0.1.2}").replace(
        "      g: 10.0.1.1", "      g: &w {address: 10.0.1.1, slots: 3, peer_port: 9000}"))
    topo = load_topology(path)
    b = topo.host("b")
    assert b is not None and (b.address, b.settings.slots, b.settings.peer_port) == ("10.0.1.2", 3, 9000)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as info:
        load_topology(tmp_path / "missing.yaml")
    assert info.value.problems[0].code == "unreadable"
