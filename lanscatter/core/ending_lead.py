"""When a download says it is ending (the Ending notice that frees its slot for the next transfer).

Pure (times passed in), shared by the engine's downloader (roles/master_link.py, net/chunk_fetch.py)
and the simulator (sim/simulator.py), so that what is simulated is what runs.

The lead should be what arranging the slot's next transfer takes: the Ending's way to the master,
a plan, the Download's way back, the request to the source and its first bytes. Said later, the
port idles for the difference; said earlier, the next transfer runs beside this one for the
difference, so each chunk arrives later, the swarm spreads more slowly and the origin sends more
copies (simulated, a 40-host LAN: 0.909 efficiency without the notice and no latency to hide,
0.842 with a fixed 0.1 s lead). That time depends on the network (well under 10 ms on a quiet
LAN, round trips of up to 100 ms and more over a WAN link or through full queues), so each node
measures it: the time from an Ending it said to the first bytes of the next download it began,
the median of the last few, within bounds. Until it has measured, it uses the defaults below.
"""

from __future__ import annotations

from collections import deque

WAN_LEAD_S = 0.3      # default: a transfer over a WAN link (paced in its link's group)
LAN_LEAD_S = 0.1      # default: a transfer inside a site
MIN_LEAD_S = 0.002    # never less: a notice has to be sent and read
MAX_LEAD_S = 0.6      # never more: a gap longer than this is not the time to arrange a transfer
# A download begun this long or longer after an Ending is not counted as its slot's next
# transfer: the master had nothing to plan there at once.
MAX_GAP_S = 1.0
SAMPLES = 9           # the median of the last this many gaps
# The rate the lead is judged by is measured over at least this long after the first bytes: the
# first read can be a burst the source's pacing let out at once.
RATE_WINDOW_S = 0.03


def ending_lead(over_wan: bool) -> float:
    """Default seconds before its last byte a download says it is ending, before any measurement."""
    return WAN_LEAD_S if over_wan else LAN_LEAD_S


class EndingLead:
    """The lead of one node's downloads of one kind (inside a site, or over a WAN link), learnt
    from the gaps between the Endings it said and the first bytes of the downloads that followed.

    Each download that begins is paired with the oldest Ending still unpaired (the slot it most
    likely took); Endings older than MAX_GAP_S are dropped unpaired."""

    __slots__ = ("_default", "_endings", "_gaps")

    def __init__(self, over_wan: bool) -> None:
        self._default = ending_lead(over_wan)
        self._endings: deque[float] = deque()
        self._gaps: deque[float] = deque(maxlen=SAMPLES)

    def ended(self, now: float) -> None:
        """A download of this kind said Ending at `now`."""
        self._endings.append(now)
        if len(self._endings) > 4 * SAMPLES:        # bounded, whatever the caller does
            self._endings.popleft()

    def began(self, now: float) -> None:
        """A download of this kind received its first bytes at `now`."""
        endings = self._endings
        while endings and now - endings[0] >= MAX_GAP_S:
            endings.popleft()
        if endings:
            self._gaps.append(max(0.0, now - endings.popleft()))

    @property
    def seconds(self) -> float:
        """How long before its last byte the next download of this kind should say Ending."""
        if not self._gaps:
            return self._default
        ordered = sorted(self._gaps)
        return min(MAX_LEAD_S, max(MIN_LEAD_S, ordered[(len(ordered) - 1) // 4]))
