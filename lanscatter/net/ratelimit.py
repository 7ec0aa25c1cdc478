"""Token buckets for bandwidth limits (per node and direction, and per transfer).

A bucket holds at most `burst` bytes of credit. `reserve(n)` books n bytes and says how long the
caller must wait before sending or after receiving them; it is thread-safe, so the asyncio side
(`await take(n)`) and download threads (`time.sleep(reserve(n))`) can share one bucket. Credit may
go negative: a debt paid by waiting, so pieces larger than the burst still pass. Rate None means
unlimited.
"""

from __future__ import annotations

import asyncio
import threading
import time


class TokenBucket:
    def __init__(self, rate: float | None, burst: float | None = None, *, start_full: bool = True) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else (max(rate / 10, 256 * 1024) if rate else 0)
        # A bucket made for one transfer starts empty: a full start would let every short transfer
        # through at wire speed, and many of them add up to far more than the cap.
        self._tokens = self.burst if start_full else 0.0
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def reserve(self, n: int) -> float:
        """Book n bytes; returns the seconds to wait (0.0 when within the credit)."""
        if not self.rate:
            return 0.0
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    async def take(self, n: int) -> None:
        wait = self.reserve(n)
        if wait > 0:
            await asyncio.sleep(wait)


async def take_all(buckets: list[TokenBucket], n: int) -> None:
    for b in buckets:
        await b.take(n)


def wait_all(buckets: list[TokenBucket], n: int) -> float:
    """Seconds a thread must wait for n bytes to pass every bucket."""
    return max((b.reserve(n) for b in buckets), default=0.0)
