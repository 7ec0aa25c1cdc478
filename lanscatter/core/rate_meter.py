"""Transfer rates from cumulative byte counters sampled now and then.

Counters may come from the network (a peer's Stats): they are clamped to [0, COUNTER_MAX] and
rates computed in floats, so no counter, however large or backwards, can make a rate overflow."""

from __future__ import annotations

from collections import deque

SPACING_S = 0.5     # samples closer than this replace the newest one: readers may poll very often
COUNTER_MAX = 2**63  # bytes: more than any link moves in a lifetime
WINDOW_S = 4.0      # a rate covers the samples of the last few seconds: it falls to 0 soon after a transfer
STALE_S = 3.0       # a counter not heard from for this long moves nothing now
IDLE_S = 0.9        # a counter that has not moved over this long (one peer report apart) is idle: rate 0


class RateMeter:
    """Bytes/s over the last WINDOW_S seconds, from cumulative counters sampled whenever a reader
    asks or a report arrives. A counter that stopped moving reads 0 after IDLE_S (one report)."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int, int]] = deque(maxlen=16)

    def sample(self, now: float, rx: int, tx: int) -> None:
        rx, tx = min(max(rx, 0), COUNTER_MAX), min(max(tx, 0), COUNTER_MAX)
        if len(self.samples) >= 2 and now - self.samples[-2][0] < SPACING_S:
            self.samples[-1] = (now, rx, tx)
        else:
            self.samples.append((now, rx, tx))

    def span(self) -> float:
        """Seconds the rates cover (0 before two samples): a short span can show a burst."""
        return self.samples[-1][0] - self.samples[0][0] if len(self.samples) >= 2 else 0.0

    def rates(self, now: float | None = None, *, idle_zero: bool = True) -> tuple[float, float]:
        """(rx, tx) bytes/s; `now` (the samples' clock) drops what is older than the window.
        `idle_zero=False`: the window's average even where a counter just stood still (a rate
        limiter lets bytes through in lumps)."""
        if now is not None:
            if self.samples and now - self.samples[-1][0] > STALE_S:
                return 0.0, 0.0
            while len(self.samples) > 2 and now - self.samples[1][0] >= WINDOW_S:
                self.samples.popleft()
        if len(self.samples) < 2:
            return 0.0, 0.0
        (t0, rx0, tx0), (t1, rx1, tx1) = self.samples[0], self.samples[-1]
        dt = max(t1 - t0, 1e-6)
        # A counter that went backwards (the peer restarted) gives no rate rather than a negative one.
        rx, tx = max(0.0, float(rx1 - rx0) / dt), max(0.0, float(tx1 - tx0) / dt)
        # The window's average lags the end of a transfer by WINDOW_S: a direction that moved nothing
        # since the newest sample IDLE_S before the last one transfers nothing now (0 at `done`).
        before = next((s for s in reversed(self.samples) if t1 - s[0] >= IDLE_S), None)
        if before is not None and idle_zero:
            rx = 0.0 if rx1 == before[1] else rx
            tx = 0.0 if tx1 == before[2] else tx
        return rx, tx
