"""Time left, from the mean rate since progress was first seen: one rule for every display.

An instant rate taken from the first chunk or two says nothing of a distribution (it once gave
1h27m for a 20 s job), so no estimate is made until progress has been measured for `after_s`
seconds; a drop in progress (a new generation) starts the measure again. Pure: `now` is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

ETA_AFTER_S = 3.0


@dataclass(slots=True)
class MeanRateEta:
    after_s: float = ETA_AFTER_S
    start: tuple[float, float] | None = None       # (time, done) when progress was first seen
    last: float = 0.0

    def update(self, done: float, total: float, now: float) -> float | None:
        """Seconds left for `total - done` at the mean rate so far: 0 when done, None while unknown."""
        if self.start is None or done < self.last:
            self.start = (now, done)
        self.last = done
        if total > 0 and done >= total:
            return 0.0
        t0, d0 = self.start
        if now - t0 < self.after_s or done <= d0:
            return None
        return (total - done) * (now - t0) / (done - d0)
