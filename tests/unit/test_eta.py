"""The one ETA rule: nothing until progress has been measured a while, then the mean rate."""

from __future__ import annotations

import pytest

from lanscatter.core.eta import MeanRateEta


def test_no_estimate_from_the_first_seconds_then_the_mean_rate() -> None:
    eta = MeanRateEta(after_s=3.0)
    assert eta.update(0, 100, now=10.0) is None
    assert eta.update(1, 100, now=10.5) is None            # one early chunk would say 49.5 s... or 1h
    assert eta.update(20, 100, now=12.9) is None
    assert eta.update(30, 100, now=13.0) == pytest.approx(70 * 3.0 / 30)
    assert eta.update(100, 100, now=20.0) == 0.0


def test_a_new_generation_starts_the_measure_again() -> None:
    eta = MeanRateEta(after_s=1.0)
    eta.update(0, 10, now=0.0)
    assert eta.update(5, 10, now=2.0) == pytest.approx(2.0)
    assert eta.update(1, 10, now=3.0) is None              # progress fell: a new generation
    assert eta.update(4, 10, now=5.0) == pytest.approx(6 * 2.0 / 3)
