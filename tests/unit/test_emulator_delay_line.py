"""The forwarder's delay line: fixed delay, FIFO order, a loss share, a bounded queue."""

from __future__ import annotations

import random

from lanscatter.emulator.delay_line import DelayLine
from lanscatter.emulator.shaping import queue_bytes


def test_packets_leave_after_the_delay_in_arrival_order() -> None:
    line = DelayLine(delay_s=0.04, loss=0.0, limit_packets=10, rng=random.Random(1))
    assert line.offer(b"a", now=1.0) and line.offer(b"bb", now=1.01)
    assert line.next_deadline() == 1.04
    assert line.due(1.0399) == []
    assert line.due(1.04) == [b"a"]
    assert line.due(2.0) == [b"bb"]
    assert line.next_deadline() is None
    assert (line.stats.forwarded_packets, line.stats.forwarded_bytes) == (2, 3)


def test_loss_drops_about_the_share_and_is_reproducible() -> None:
    def run(seed: int) -> int:
        line = DelayLine(delay_s=0.0, loss=0.1, limit_packets=100_000, rng=random.Random(seed))
        for i in range(20_000):
            line.offer(b"x", now=float(i))
        return line.stats.lost_packets

    lost = run(7)
    assert 1800 <= lost <= 2200
    assert run(7) == lost


def test_a_full_queue_drops_and_counts() -> None:
    line = DelayLine(delay_s=1.0, loss=0.0, limit_packets=3, rng=random.Random(0))
    accepted = [line.offer(b"p", now=0.0) for _ in range(5)]
    assert accepted == [True, True, True, False, False]
    assert line.stats.overflow_packets == 2 and len(line) == 3


def test_queue_holds_a_round_trip_of_data_plus_50ms() -> None:
    rate = 2.5e6                       # 20 Mbit/s
    assert queue_bytes(rate, 0.04) >= rate * 0.08
    assert queue_bytes(rate, 0.0) >= 64 * 1500     # never smaller than a burst of frames
