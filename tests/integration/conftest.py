"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.up_runs import UpRun


@pytest.fixture
def runs() -> Iterator[list[UpRun]]:
    """`lanscatter up` runs a test starts; each is stopped (with every role it left) at the end."""
    started: list[UpRun] = []
    try:
        yield started
    finally:
        for run in started:
            run.close()
