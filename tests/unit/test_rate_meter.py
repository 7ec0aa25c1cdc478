from lanscatter.core.rate_meter import RateMeter


def test_frequent_readers_do_not_shrink_the_window() -> None:
    m = RateMeter()
    for i in range(400):                       # polled every 10 ms for 4 s at 1,000,000 B/s
        t = i * 0.01
        m.sample(t, int(t * 1_000_000), 0)
    rx, tx = m.rates()
    assert abs(rx - 1_000_000) < 1_000 and tx == 0
    first, last = m.samples[0][0], m.samples[-1][0]
    assert last - first >= 3.0


def test_no_rate_before_two_samples() -> None:
    m = RateMeter()
    m.sample(0.0, 5, 5)
    assert m.rates() == (0.0, 0.0)
