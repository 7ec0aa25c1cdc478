"""`lanscatter validate` and `lanscatter plan` through the real command line entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lanscatter.cli import run

ROOT = Path(__file__).resolve().parents[2]
REHEARSAL = ROOT / "examples" / "topologies" / "rehearsal.yaml"
BROKEN = """\
dataset:
  source: /srv/x
  origin: o
sites:
  hq:
    hosts: [o]
  br:
    hosts: [b]
wan:
  - between: [hq, br]
    bandwidth: 50
"""


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    return path


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["validate", str(REHEARSAL)]) == 0
    assert capsys.readouterr().out == f"{REHEARSAL}: ok: 4 sites, 11 hosts, 3 WAN links\n"


def test_validate_reports_every_problem(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["validate", str(broken)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        (f"{broken}:7:3: error: site 'br' needs 'gateway: <host>', the host that relays from its parent "
         "site (one of: b) [no-gateway]"),
        (f"{broken}:11:16: error: bandwidth: speed '50' has no unit; write e.g. '50Mbit' (bits) or '50MB/s' "
         "(bytes) [unit-missing]"),
        f"{broken}: 2 problems",              # on stdout too: one stream holds the whole answer
    ]
    assert err == ""


def test_plan_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan", str(REHEARSAL)]) == 0
    out = capsys.readouterr().out
    assert "site hub  [LAN 1 Gbit/s ports; origin site]" in out
    assert "        site branch  [LAN 1 Gbit/s ports; WAN from region: 30 Mbit/s, 20 ms]" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("branch-gw"))
    assert row.split()[:4] == ["branch-gw", "relay", "branch-gw:10564", "(peer"]
    assert "<- region-gw:10564" in row
    assert out.rstrip().endswith("4 sites, 11 hosts, 3 WAN links")


def test_plan_counts_one_wan_link_in_the_singular(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "two.yaml"
    tree.write_text("dataset: {source: d, origin: o}\nsites:\n  hq: {lan: 1Gbit, hosts: [o]}\n"
                    "  br: {lan: 1Gbit, gateway: g, hosts: [g]}\nwan:\n  - {between: [hq, br], bandwidth: 50Mbit}\n")
    assert run(["plan", str(tree)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("2 sites, 2 hosts, 1 WAN link")


def test_plan_json_local(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan", "--json", "--local", "--workdir", str(tmp_path), str(REHEARSAL)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == 1 and doc["local"] is True
    assert [s["name"] for s in doc["sites"]] == ["hub", "vpn-branch", "region", "branch"]
    gw = next(h for h in doc["hosts"] if h["name"] == "branch-gw")
    region_gw = next(h for h in doc["hosts"] if h["name"] == "region-gw")
    assert gw["roles"] == ["relay"] and gw["upstream"] == [region_gw["address"], 10564]
    assert gw["folder"] == str(tmp_path / "branch" / "branch-gw")
    assert {"name": "wan:region>branch", "bytes_per_s": 3.75e6, "latency_s": 0.02} in doc["links"]
    assert doc["dataset"]["secret"] == {"kind": "value", "ref": None}  # an inline secret is never printed


def test_plan_of_a_broken_file(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan", str(broken)]) == 1
    assert "[unit-missing]" in capsys.readouterr().out


def test_schema_command_prints_the_shipped_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Lanscatter site tree"
