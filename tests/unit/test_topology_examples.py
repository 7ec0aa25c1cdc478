"""Every shipped example (and the annotated one in the docs) validates and matches the JSON Schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from lanscatter.core.units import UnitError, parse_duration, parse_size, parse_speed
from lanscatter.topology import derive_plan, load_topology

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "topologies").glob("*.yaml"))
SCHEMA = json.loads((ROOT / "lanscatter" / "topology" / "site-tree.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _docs_examples() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "topology.md").read_text(), re.DOTALL)
    assert len(blocks) >= 2, "docs/topology.md has the annotated and the short example"
    return blocks


def test_the_examples_are_there() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"single-lan.yaml", "hub-two-branches.yaml", "three-level-chain.yaml", "rehearsal.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates_and_derives(path: Path, tmp_path: Path) -> None:
    topo = load_topology(path)
    for local in (False, True):
        plan = derive_plan(topo, local=local, workdir=tmp_path)
        assert len(plan.hosts) == sum(1 for _ in topo.hosts())


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_schema_accepts_example(path: Path) -> None:
    errors = [e.message for e in VALIDATOR.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize("index", [0, 1])
def test_docs_examples_validate_and_match_the_schema(tmp_path: Path, index: int) -> None:
    text = _docs_examples()[index]
    path = tmp_path / "site-tree.yaml"
    path.write_text(text)
    load_topology(path)
    assert [e.message for e in VALIDATOR.iter_errors(yaml.safe_load(text))] == []


def test_schema_is_valid_and_rejects_what_the_loader_rejects() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    good = yaml.safe_load((ROOT / "examples" / "topologies" / "hub-two-branches.yaml").read_text())
    bad_key = json.loads(json.dumps(good))
    bad_key["sites"]["hub"]["gatway"] = "x"
    no_unit = json.loads(json.dumps(good))
    no_unit["wan"][0]["bandwidth"] = "50"
    no_bandwidth = json.loads(json.dumps(good))
    del no_bandwidth["wan"][0]["bandwidth"]
    for doc in (bad_key, no_unit, no_bandwidth):
        assert list(VALIDATOR.iter_errors(doc))


def _accepts(parse: object, text: str) -> bool:
    try:
        parse(text)  # type: ignore[operator]
    except UnitError:
        return False
    return True


@pytest.mark.parametrize(("kind", "parse", "texts"), [
    ("speed", parse_speed, ["50Mbit", "50 Mbit/s", "1gbit", "10Gbps", "100MB/s", "12MiB/s", "8bit",
                            "50", "50Mbti", "50mb", "fast", "20ms", "1.5Gbit", "100KiB/s"]),
    ("size", parse_size, ["16MiB", "16MB", "64kB", "100B", "16", "16Mbit", "16Mo"]),
    ("duration", parse_duration, ["20ms", "1.5s", "300us", "2min", "20", "20mss", "soon"]),
])
def test_schema_unit_patterns_agree_with_the_parsers(kind: str, parse: object, texts: list[str]) -> None:
    pattern = re.compile(SCHEMA["$defs"][kind]["pattern"])
    for text in texts:
        assert bool(pattern.search(text)) == _accepts(parse, text), text


def test_rehearsal_has_the_promised_shape() -> None:
    plan = derive_plan(load_topology(ROOT / "examples" / "topologies" / "rehearsal.yaml"), local=True)
    depths = {s.name: s.depth for s in plan.sites}
    root = plan.sites[0]
    assert root.parent is None and plan.host(root.master).roles == frozenset({"master"})
    assert sorted(depths.values()) == [0, 1, 1, 2]             # hub, a direct branch, a region, its branch
    for site in plan.sites:
        assert sum(1 for h in plan.hosts if h.site == site.name) >= 2
    ports = [link.bytes_per_s for name, link in plan.link_map.links.items() if name.startswith(("up:", "down:"))]
    wans = [link.bytes_per_s for name, link in plan.link_map.links.items() if name.startswith("wan:")]
    assert max(wans) * 5 <= min(ports)
    assert all(h.address.startswith("127.0.0.") for h in plan.hosts)
