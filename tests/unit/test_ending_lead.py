"""How early a download says Ending: learnt from the gaps between a node's Endings and the first
bytes of the downloads that followed (core/ending_lead.py)."""

from __future__ import annotations

import pytest

from lanscatter.core.ending_lead import (
    LAN_LEAD_S,
    MAX_GAP_S,
    MAX_LEAD_S,
    MIN_LEAD_S,
    SAMPLES,
    WAN_LEAD_S,
    EndingLead,
)


def test_before_any_measurement_the_defaults_hold() -> None:
    assert EndingLead(over_wan=False).seconds == LAN_LEAD_S
    assert EndingLead(over_wan=True).seconds == WAN_LEAD_S


def test_the_lead_is_the_gap_from_an_ending_to_the_next_first_bytes() -> None:
    lead = EndingLead(over_wan=False)
    for k in range(5):
        lead.ended(10.0 * k)
        lead.began(10.0 * k + 0.004)
    assert lead.seconds == pytest.approx(0.004)


def test_each_download_that_begins_takes_the_oldest_ending() -> None:
    lead = EndingLead(over_wan=True)
    lead.ended(1.0)
    lead.ended(1.1)
    lead.began(1.15)          # 0.15 after the first Ending
    lead.began(1.3)           # 0.2 after the second
    lead.began(1.4)           # no Ending left: not counted
    assert lead.seconds == pytest.approx(0.15)    # the lower quartile: here the smaller


def test_a_download_begun_without_an_ending_before_it_teaches_nothing() -> None:
    lead = EndingLead(over_wan=False)
    lead.began(5.0)
    assert lead.seconds == LAN_LEAD_S


def test_an_ending_nothing_followed_for_long_is_not_paired_with_a_later_download() -> None:
    lead = EndingLead(over_wan=False)
    lead.ended(0.0)                           # the master had nothing to plan for this slot
    lead.began(MAX_GAP_S + 0.5)
    assert lead.seconds == LAN_LEAD_S
    lead.ended(3.0)
    lead.began(3.01)
    assert lead.seconds == pytest.approx(0.01)


def test_the_lower_quartile_of_the_last_gaps_resists_outliers_and_follows_a_change() -> None:
    lead = EndingLead(over_wan=False)
    t = 0.0
    for gap in (0.005, 0.005, 0.9, 0.005, 0.006):
        lead.ended(t)
        lead.began(t + gap)
        t += 2.0
    assert lead.seconds == pytest.approx(0.005)
    for _ in range(SAMPLES):                  # the network got slower (queues filled)
        lead.ended(t)
        lead.began(t + 0.08)
        t += 2.0
    assert lead.seconds == pytest.approx(0.08)


@pytest.mark.parametrize("gap, expected", [(0.0, MIN_LEAD_S), (0.0001, MIN_LEAD_S), (0.95, MAX_LEAD_S)])
def test_the_lead_stays_within_its_bounds(gap: float, expected: float) -> None:
    lead = EndingLead(over_wan=True)
    for k in range(3):
        lead.ended(5.0 * k)
        lead.began(5.0 * k + gap)
    assert lead.seconds == expected


def test_endings_kept_waiting_are_bounded() -> None:
    lead = EndingLead(over_wan=False)
    for k in range(100_000):
        lead.ended(k * 1e-6)                  # a misbehaving caller: no download ever begins
    assert len(lead._endings) <= 4 * SAMPLES
