"""How a swarm session's planned transfers start, are paced and are withdrawn (pure).

The base of SwarmSession (session.py), which feeds it; this part owns the books of transfers
under way and these decisions:
- which URL and token a download uses: the seed is reached as the downloader reaches it, a peer at
  the chunk server it announced;
- who paces a transfer: its source at its fair rate (the seed, told by SeedRates, or a peer, told
  by Rates), a WAN link's source for the link's transfers as a group;
- when fair rates are re-shared: a released transfer (Ending) leaves its share once its last byte
  is due, a new one takes its share once its first bytes arrive (Receiving); only rates that moved
  by more than RATE_STEP are sent; sharing is held to at most 1 / (1 + SHARE_DUTY) of the time,
  measured on the work clock it is given;
- a member silent for SILENT_S gets no new downloads and serves no new ones (it would answer no
  request), and its overdue downloads are withdrawn with no verdict on their source.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from lanscatter.core import protocol as p
from lanscatter.core.auth import TOKEN_TTL_S, Auth
from lanscatter.core.manifest import Manifest
from lanscatter.core.planner import Planner, Transfer
from lanscatter.core.session_types import Event, Now, Output, PeerState, SeedCut, SeedRates, Send

PLAN_TICK_S = 0.5
SILENT_S = 5.0      # peers send Stats every second: this long without a word, one is frozen or cut off
QUIET_S = 2.5       # this long, and a transfer to it that times out is its own stall, not its source's
RATE_STEP = 0.02    # a fair rate that moved less than this share is not worth a message
SHARE_DUTY = 3.0    # after sharing for t seconds, wait SHARE_DUTY * t before sharing again


class SessionRounds:
    def __init__(self, *, name: str, auth: Auth, planner: Planner, work_clock: Callable[[], float]) -> None:
        self.name = name
        self.auth = auth
        self.planner = planner
        self._work_clock = work_clock
        self.manifest: Manifest | None = None
        self.peers: dict[str, PeerState] = {}
        self.transfers: dict[int, Transfer] = {}
        self.waiting: set[int] = set()     # transfers whose first bytes have not arrived
        self.fed: set[int] = set()         # transfers from a source that was still receiving the chunk
        self._rates_sent: dict[int, float] = {}   # transfer id -> the rate its source was last given
        self._ends: dict[int, float] = {}  # released transfers -> when their last byte is due (monotonic)
        self._shared_at: tuple[int, int, int] = (-1, -1, -1)   # (flights epoch, waiting, ended) at the last share
        self._share_next = 0.0             # no sharing before this (monotonic): see _share
        self.share_pending = False         # shares moved while sharing had to wait
        self._silence_checked = 0.0
        self._out: list[Output] = []

    def wake_in(self, now: float) -> float:
        """Seconds (monotonic) until the session wants its next tick: PLAN_TICK_S at most, sooner
        when a released transfer's share falls free or a share waits."""
        due = [at - now for at in self._ends.values() if at > now]
        if self.share_pending:
            due.append(self._share_next - now)
        return min(PLAN_TICK_S, max(0.001, min(due))) if due else PLAN_TICK_S

    # ---- planning ----------------------------------------------------------------------------
    def _share(self, now: Now, new: list[Transfer]) -> None:
        """Start the new transfers at their fair shares and tell sources the shares that moved.

        A released transfer past its last byte's due time leaves its share to the others (its
        report is on its way). A new transfer starts at its share among all; the others give it
        that share only once its bytes arrive (until then its request is on its way and they can
        use it). Sharing takes milliseconds in a swarm of a thousand peers: it runs at most
        1 / (1 + SHARE_DUTY) of the time, new transfers starting at their booked rate meanwhile."""
        for t in new:
            if t.dest in self.peers:
                self.waiting.add(t.id)
        ended = {tid for tid, at in self._ends.items() if at <= now.mono}
        # (between plans waiting only shrinks and ended only grows: their sizes tell whether they
        # changed)
        shared = (self.planner.flights_epoch, len(self.waiting), len(ended))
        if now.mono < self._share_next:
            for t in new:
                self._start(t, now, t.rate_cap if t.rate_cap is not None else math.inf)
            self.share_pending = shared != self._shared_at
            return
        began = self._work_clock()
        first = self.planner.fair_rates((self.waiting - {t.id for t in new}) | ended) if new else {}
        for t in new:
            self._start(t, now, first.get(t.id, math.inf))
        if shared != self._shared_at:
            self._shared_at = shared
            self._send_rates(self.planner.fair_rates(self.waiting | ended))
        self.share_pending = False
        self._share_next = now.mono + SHARE_DUTY * (self._work_clock() - began)

    def _mind_silent_peers(self, now: float) -> None:
        """A peer that has said nothing for SILENT_S (frozen, suspended, cut off) gets no new
        downloads and is no source of new ones until it speaks again (receive undoes both). Its
        uploads under way are withdrawn at once: a member that says nothing serves nothing either,
        and each of its downloaders would otherwise wait for its stall timer (30 s) before trying
        another source. Its downloads go once past their deadline (Planner.deadline: a timeout
        guessed before anything was measured gives way to the swarm's measured speed). Neither
        is a verdict on the other end: the stall is the silent member's, where expire() would
        charge the source as slow."""
        if now - self._silence_checked < PLAN_TICK_S:
            return
        self._silence_checked = now
        for link in self.peers.values():
            if link.planned and not link.silent and now - link.heard_at >= SILENT_S:
                link.silent = True
                self.planner.set_dl_slots(link.name, 0)
                self.planner.set_silent(link.name, True)
                self._event("warning", f"{link.name} has said nothing for {SILENT_S:.0f} s: no transfers to "
                                       "or from it until it speaks")
        for t in list(self.transfers.values()):
            source = self.peers.get(t.source)
            if source is not None and source.silent:
                self._withdraw(t, f"{t.source} is silent: chunk {t.chunk[:8]} to {t.dest} withdrawn")
                continue
            dest = self.peers.get(t.dest)
            if dest is None or not dest.silent:
                continue
            deadline = self.planner.deadline(t.id)
            if now >= (t.started + t.timeout_s if deadline is None else deadline):
                self._withdraw(t, f"{t.dest} is silent: chunk {t.chunk[:8]} from {t.source} withdrawn")

    def _withdraw(self, t: Transfer, why: str) -> None:
        """End a transfer with no verdict on either end (the planner may have dropped it already),
        and tell its downloader."""
        self.planner.cancel(t.id)
        self.transfers.pop(t.id, None)
        self._untrack(t)
        self._event("warning", why)
        self._send(t.dest, p.Cancel(t.id))
        if t.source == self.name:
            self._out.append(SeedCut((t.id,)))

    def _paced_here(self, t: Transfer) -> bool:
        """Whether t's source takes new rates while it sends: both ends are here (the downloader
        names the transfer in its request; the source is us or takes Rates). A WAN link's
        transfers are paced together by their source instead."""
        if t.pace_group is not None:
            return False
        return t.dest in self.peers and (t.source == self.name or t.source in self.peers)

    def _send_rates(self, rates: dict[int, float]) -> None:
        """Tell sources the new fair rates of their uploads where these moved by more than
        RATE_STEP (a transfer started or ended somewhere on their path)."""
        out: dict[str, tuple[list[int], list[float]]] = {}
        for tid, sent in self._rates_sent.items():
            rate = rates.get(tid, math.inf)
            if math.isfinite(rate) and abs(rate - sent) > RATE_STEP * sent:
                t = self.transfers[tid]
                ids, values = out.setdefault(t.source, ([], []))
                ids.append(tid)
                values.append(rate)
        for source, (ids, values) in out.items():
            self._rates_sent.update(zip(ids, values))
            if source == self.name:
                self._out.append(SeedRates(dict(zip(ids, values))))
            elif source in self.peers:
                self._send(source, p.Rates(ids, values))

    def _start(self, t: Transfer, now: Now, fair: float = math.inf) -> None:
        """Send the Download: the URL the downloader reaches its source at, a token for it, and
        the rate the source keeps (its fair share where it is paced here)."""
        dest = self.peers.get(t.dest)
        source_link = self.peers.get(t.source)
        if dest is not None and t.source == self.name:
            source_url, source = dest.seed_url, dest.seed_source
        elif source_link is not None:
            source_url, source = source_link.url, source_link.source
        else:
            source_url = source = ""
        if dest is None or not source_url:
            self.planner.finish(t.id, now.mono, ok=False)
            return
        self.transfers[t.id] = t
        self._track(t)
        if t.source != self.name and self.planner.is_arriving(t.source, t.chunk):
            self.fed.add(t.id)
        group, group_rate = t.pace_group or (None, None)
        rate = t.pace_cap
        if math.isfinite(fair) and self._paced_here(t):
            rate = self._rates_sent[t.id] = fair
        token = self.auth.chunk_token(t.chunk, dest.addr, source, int(now.wall) + TOKEN_TTL_S)
        self._send(dest.name, p.Download(t.id, t.chunk, t.size, t.source, source_url, t.timeout_s,
                                         rate, group, group_rate, token))

    def _track(self, t: Transfer) -> None:
        idx = self.manifest.chunk_index().get(t.chunk) if self.manifest else None
        if (dest := self.peers.get(t.dest)) is not None:
            dest.downloads += 1
            if idx is not None:
                dest.inflight.set(idx)

    def _untrack(self, t: Transfer, delivered: bool = False) -> None:
        """Forget a transfer that ended; unless `delivered`, its chunk is no longer arriving at
        its destination (which was planned as a source of it, SERVES_ARRIVING)."""
        if not delivered and t.dest in self.peers and self.peers[t.dest].planned:
            self.planner.drop_arriving(t.dest, t.chunk)
        self._rates_sent.pop(t.id, None)
        self.fed.discard(t.id)
        self.waiting.discard(t.id)
        self._ends.pop(t.id, None)
        idx = self.manifest.chunk_index().get(t.chunk) if self.manifest else None
        if (dest := self.peers.get(t.dest)) is not None:
            dest.downloads = max(0, dest.downloads - 1)
            if idx is not None:
                dest.inflight.clear(idx)

    # ---- outputs -----------------------------------------------------------------------------
    def _send(self, peer: str, msg: p.Message) -> None:
        self._out.append(Send(peer, msg))

    def _event(self, level: str, message: str) -> None:
        self._out.append(Event(level, message))

    def _flush(self) -> list[Output]:
        out, self._out = self._out, []
        return out
