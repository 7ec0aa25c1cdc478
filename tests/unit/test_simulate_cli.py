"""`lanscatter simulate --size`: a data set cut the way the engine cuts it by default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lanscatter.cli import run
from lanscatter.core.chunking import auto_chunk_size

MIB = 2**20


def _figures(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert run(["simulate", "--nodes", "4", "--json", *argv]) == 0
    figures: dict[str, object] = json.loads(capsys.readouterr().out)
    return figures


def test_size_is_cut_at_the_chunk_size_the_engine_picks(capsys: pytest.CaptureFixture[str]) -> None:
    size = 3 * 2**30
    assert auto_chunk_size(size) == MIB
    figures = _figures(["--size", "3GiB"], capsys)
    assert figures["dataset_bytes"] == size          # 3,072 chunks of the engine's 1 MiB
    assert figures["transfers"] == 4 * 3072


def test_a_chunk_size_given_wins_and_the_last_chunk_is_rounded_up(capsys: pytest.CaptureFixture[str]) -> None:
    figures = _figures(["--size", "100MiB", "--chunk-mib", "16"], capsys)
    assert figures["dataset_bytes"] == 7 * 16 * MIB               # 100 MiB in 16 MiB chunks: 7


def test_a_site_trees_own_chunk_size_wins_over_auto(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "tree.yaml"
    tree.write_text("dataset: {source: src, origin: o, name: d, chunk_size: 4MiB}\n"
                    "sites:\n  lan:\n    hosts: [o, a, b]\n")
    assert run(["simulate", "--topology", str(tree), "--size", "40MiB", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset_bytes"] == 10 * 4 * MIB


def test_a_size_of_nothing_or_without_a_unit_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("0MiB", "100"):
        with pytest.raises(SystemExit):
            run(["simulate", "--size", bad])
    err = capsys.readouterr().err
    assert "above zero" in err and "has no unit" in err


def test_a_masters_cost_a_transfer_is_given_in_microseconds(capsys: pytest.CaptureFixture[str]) -> None:
    figures = _figures(["--chunks", "20", "--chunk-mib", "1", "--master-us", "20000"], capsys)
    assert isinstance(figures["transfers"], int) and isinstance(figures["makespan"], float)
    assert figures["makespan"] >= figures["transfers"] * 0.02          # one core, 50 transfers a second
    assert run(["simulate", "--master-us", "-1"]) == 2
