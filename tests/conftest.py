"""Suite-wide rules: an unexpected ERROR log record fails the test that produced it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def fail_on_error_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests that expect ERROR logs mark themselves with @pytest.mark.allow_error_logs."""
    collector = _ErrorCollector()
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        yield
    finally:
        root.removeHandler(collector)
    if collector.records and request.node.get_closest_marker("allow_error_logs") is None:
        lines = "\n".join(f"{r.name}: {r.getMessage()}" for r in collector.records)
        pytest.fail(f"unexpected ERROR log records:\n{lines}")
