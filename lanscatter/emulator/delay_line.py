"""One direction of an emulated WAN link in userspace: a fixed one-way delay and a loss share. Pure.

The forwarder feeds every packet it reads into `offer` with the time it arrived and writes out what
`due` returns. The delay is the same for every packet, so the queue is a FIFO and packets never
reorder. The queue is bounded: rate shaping happens before the forwarder (tc on the tun device),
so more than one delay's worth of packets in flight means the sender outran the cap, and those
packets are dropped as a full router queue would drop them.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class DelayLineStats:
    forwarded_packets: int = 0
    forwarded_bytes: int = 0
    lost_packets: int = 0          # dropped on purpose (the loss share)
    overflow_packets: int = 0      # dropped because the queue was full


@dataclass(slots=True)
class DelayLine:
    delay_s: float
    loss: float
    limit_packets: int
    rng: random.Random
    stats: DelayLineStats = field(default_factory=DelayLineStats)
    _queue: deque[tuple[float, bytes]] = field(default_factory=deque)

    def offer(self, packet: bytes, now: float) -> bool:
        """Take a packet that arrived at `now`; False when it is dropped (lost or queue full)."""
        if self.loss > 0 and self.rng.random() < self.loss:
            self.stats.lost_packets += 1
            return False
        if len(self._queue) >= self.limit_packets:
            self.stats.overflow_packets += 1
            return False
        self._queue.append((now + self.delay_s, packet))
        return True

    def due(self, now: float) -> list[bytes]:
        """Packets whose delay has passed by `now`, oldest first; they leave the line."""
        out: list[bytes] = []
        queue = self._queue
        while queue and queue[0][0] <= now:
            packet = queue.popleft()[1]
            out.append(packet)
            self.stats.forwarded_packets += 1
            self.stats.forwarded_bytes += len(packet)
        return out

    def next_deadline(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def __len__(self) -> int:
        return len(self._queue)
