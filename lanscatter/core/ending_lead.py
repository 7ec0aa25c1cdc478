"""When a download says it is ending (the Ending notice that frees its slot for the next transfer).

Pure constants, shared by the engine's downloader (net/chunk_fetch.py) and the simulator
(sim/simulator.py), so that what is simulated is what runs.

The lead is about what arranging the slot's next transfer takes (a report, a plan, a command, a
request). Over a WAN link (a piped transfer) that is round trips of up to 100 ms; inside a site a
few milliseconds, queues included, and a notice 0.3 s early ran the slot's next transfer beside
this one for most of a 1 MiB chunk (one LAN, 128 MiB: 12.29 and 12.47 s with 0.3 s everywhere,
11.86 and 11.97 s with 0.1 s inside the site).
"""

from __future__ import annotations

WAN_LEAD_S = 0.3      # a transfer over a WAN link (paced in its link's group)
LAN_LEAD_S = 0.1      # a transfer inside a site
# The rate the lead is judged by is measured over at least this long after the first bytes: the
# first read can be a burst the source's pacing let out at once.
RATE_WINDOW_S = 0.03


def ending_lead(over_wan: bool) -> float:
    """Seconds before its last byte a download says it is ending."""
    return WAN_LEAD_S if over_wan else LAN_LEAD_S


def judged_at_told_rate(size: int, told_rate: float | None) -> bool:
    """Whether a download is too short to measure its rate (under RATE_WINDOW_S at the rate its
    source was told): it says Ending once half of it came, judged at that rate, and from protocol
    11 on no Receiving (its Ending says that too)."""
    return told_rate is not None and told_rate > 0 and size / told_rate < RATE_WINDOW_S
