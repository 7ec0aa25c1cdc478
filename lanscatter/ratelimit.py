"""Token buckets for bandwidth limits (per node and direction, and per transfer).

A bucket holds at most `burst` bytes of credit; `take(n)` waits until n bytes may pass. Several
buckets may apply to one stream (the node's upload limit and the transfer's rate cap): take from
each. Rate None means unlimited, and `take` then returns at once.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, rate: float | None, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else (max(rate / 10, 256 * 1024) if rate else 0)
        self._tokens = self.burst
        self._stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        assert self.rate is not None
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self, n: int) -> None:
        if not self.rate:
            return
        self._refill()
        self._tokens -= n    # may go negative: a debt paid by waiting, so big pieces still pass
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self.rate)


async def take_all(buckets: list[TokenBucket], n: int) -> None:
    for b in buckets:
        await b.take(n)
