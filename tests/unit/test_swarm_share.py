"""The swarm's re-sharing of port rates takes at most a bounded part of its planner loop."""

from __future__ import annotations

import time

import pytest

from lanscatter.core.auth import Auth
from lanscatter.roles.swarm import SHARE_DUTY, Swarm


async def test_sharing_waits_in_proportion_to_what_it_took(monkeypatch: pytest.MonkeyPatch) -> None:
    swarm = Swarm(name="m", auth=Auth(None), seed_slots=2)

    def slow_rates(skip: object = ()) -> dict[int, float]:
        time.sleep(0.02)                  # as a swarm of a thousand peers takes
        return {}
    monkeypatch.setattr(swarm.planner, "fair_rates", slow_rates)
    sent: list[dict[int, float]] = []
    monkeypatch.setattr(swarm, "_send_rates", sent.append)
    now = 100.0
    swarm._share(now, [])                 # the transfers changed since the start: shared
    assert len(sent) == 1
    swarm.planner.flights_epoch += 1      # they change again at once
    swarm._share(now + 0.5 * SHARE_DUTY * 0.02, [])
    assert len(sent) == 1 and swarm._share_pending       # too soon: left for later
    swarm._share(now + 3 * SHARE_DUTY * 0.02, [])
    assert len(sent) == 2 and not swarm._share_pending
    swarm._share(now + 10.0, [])          # nothing changed: nothing to share
    assert len(sent) == 2
