"""The busy-window use of a WAN link, from counter samples."""

from __future__ import annotations

import pytest

from lanscatter.emulator.link_use import busy_use


def test_use_counts_only_the_busy_window() -> None:
    # idle 1 s, then 4 s at 90 % of 1000 B/s (one interval at half), then idle again
    samples = [(0.0, 0), (0.5, 10), (1.0, 20), (2.0, 920), (3.0, 1820), (4.0, 2270), (5.0, 3170),
               (6.0, 3175), (7.0, 3180)]
    seconds, use = busy_use(samples, 1000.0)
    assert seconds == pytest.approx(4.0)
    assert use == pytest.approx(3150 / 4000)


def test_never_busy_or_unknown_capacity() -> None:
    assert busy_use([(0.0, 0), (1.0, 10)], 1000.0) is None
    assert busy_use([(0.0, 0), (1.0, 10_000)], float("inf")) is None
    assert busy_use([(0.0, 0)], 1000.0) is None
