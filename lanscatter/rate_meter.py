"""Transfer rates from cumulative byte counters sampled now and then."""

from __future__ import annotations

from collections import deque


class RateMeter:
    """Bytes/s over the last few seconds, from cumulative counters sampled now and then."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int, int]] = deque(maxlen=8)

    def sample(self, now: float, rx: int, tx: int) -> None:
        self.samples.append((now, rx, tx))

    def rates(self) -> tuple[float, float]:
        if len(self.samples) < 2:
            return 0.0, 0.0
        (t0, rx0, tx0), (t1, rx1, tx1) = self.samples[0], self.samples[-1]
        dt = max(t1 - t0, 1e-6)
        return (rx1 - rx0) / dt, (tx1 - tx0) / dt
