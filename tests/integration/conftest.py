"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.nodes import Cluster, make_tree
from tests.integration.up_runs import UpRun


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Processes on loopback around an origin (`tmp_path/origin`, holding `make_tree`'s folder),
    with a swarm secret made for it; everything started in it is stopped at the end."""
    make_tree(tmp_path / "origin")
    c = Cluster(tmp_path, tmp_path / "origin")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def runs() -> Iterator[list[UpRun]]:
    """`lanscatter up` runs a test starts; each is stopped (with every role it left) at the end."""
    started: list[UpRun] = []
    try:
        yield started
    finally:
        for run in started:
            run.close()
