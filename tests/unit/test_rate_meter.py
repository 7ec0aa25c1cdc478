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


def test_a_transfer_that_ended_reads_zero_at_the_next_report_not_a_window_later() -> None:
    m = RateMeter()
    for i in range(4):                         # a peer's reports, a second apart, 1,000,000 B/s down
        m.sample(float(i), i * 1_000_000, 5)
    assert abs(m.rates(3.0)[0] - 1_000_000) < 1 and m.rates(3.0)[1] == 0.0   # tx never moved
    m.sample(4.0, 3_000_000, 5)                # the next report: nothing more arrived
    assert m.rates(4.0) == (0.0, 0.0)


def test_a_moving_counter_sampled_often_keeps_its_rate() -> None:
    m = RateMeter()
    for i in range(300):                       # read every 10 ms while bytes keep arriving
        t = i * 0.01
        m.sample(t, int(t * 500_000), 0)
        if t >= 1.0:
            assert m.rates(t)[0] > 400_000
