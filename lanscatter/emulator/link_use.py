"""How much of a WAN link's rate a run used while the link was busy: pure, from counter samples.

The report's efficiency charges a run for everything between the origin's first serve and the last
host done, start-up across the WAN included. This answers the narrower question of how full a
link was kept once data flowed over it: the busy window runs from the first to the last sample
interval that carried more than `idle_share` of the link's rate, and the use is the TCP payload
in that window over what the link's rate allows in it. With samples every 0.25 s the window's
edges are known to a sample interval, so short runs read a little low, never high.
"""

from __future__ import annotations

from collections.abc import Sequence


def busy_use(samples: Sequence[tuple[float, int]], capacity: float,
             idle_share: float = 0.05) -> tuple[float, float] | None:
    """(busy seconds, payload / (capacity * busy seconds)) from (time, payload bytes) samples in
    time order; None when the link never carried data or its capacity is unknown."""
    if capacity <= 0 or capacity == float("inf") or len(samples) < 2:
        return None
    busy = [i for i in range(1, len(samples))
            if samples[i][1] - samples[i - 1][1] > idle_share * capacity * (samples[i][0] - samples[i - 1][0])]
    if not busy:
        return None
    start, end = samples[busy[0] - 1], samples[busy[-1]]
    seconds = end[0] - start[0]
    return seconds, (end[1] - start[1]) / (capacity * seconds)
