"""Whatever the file holds, loading ends in a model or in positioned problems, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lanscatter.topology import TopologyError, derive_plan, load_topology

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "examples" / "topologies" / n for n in ("hub-two-branches.yaml", "three-level-chain.yaml")]
JUNK = ["", "[]", "{}", "null", "-1", "x y", "'", "*nothing", "{a: [b}"]


def _variants(text: str) -> list[str]:
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        out.append("\n".join(lines[:i] + lines[i + 1:]))                     # line removed
        key = re.match(r"^(\s*(?:- )?[^:#]+:)", line)
        if key:
            for junk in JUNK:                                               # value replaced
                out.append("\n".join(lines[:i] + [f"{key.group(1)} {junk}"] + lines[i + 1:]))
    return out


@pytest.mark.parametrize("source", SOURCES, ids=[p.name for p in SOURCES])
def test_mutated_files_never_crash(source: Path, tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    accepted = rejected = 0
    for text in _variants(source.read_text()):
        path.write_text(text)
        try:
            derive_plan(load_topology(path), local=True, workdir=tmp_path)
            accepted += 1
        except TopologyError as exc:
            assert exc.problems and all(p.line >= 1 and p.col >= 1 for p in exc.problems)
            rejected += 1
    assert accepted and rejected


@pytest.mark.parametrize("text", [
    "- a\n- b\n", "just text\n", "dataset: 3\nsites: 4\n", "dataset: {}\nsites: {hq: }\n",
    "dataset: {source: s, origin: o}\nsites: {hq: {hosts: [o, [x]]}}\n",
    "dataset: {source: s, origin: o, secret: 5}\nsites: {hq: {hosts: {o: {<<: 3}}}}\n",
    "dataset: {source: s, origin: o}\nsites: {hq: {hosts: [o]}}\nwan: [3, {between: 3}]\n",
    "dataset: {source: s, origin: o}\nsites: {hq: {hosts: [o]}}\nwan: {between: [a, b]}\n",
    "dataset: {source: /, origin: o}\nsites: {hq: {hosts: [o]}}\n",
    "{? [a]: b}\n", "!!python/object:os.system x\n", "\xef\xbb\xbf\x00\n",
])
def test_odd_documents_are_problems(tmp_path: Path, text: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert info.value.problems
