"""Which of a site's gateways relays: the election, pure (the clock and every observation are
passed in; no sockets, no timers).

A site may name several gateways in order (`gateway: [gw-a, gw-b]`). All of them run all the time:
the *active* one relays (a peer of the upstream swarm, the master of its site); the others are
*standbys*, ordinary peers of the site's swarm (so they hold what the site holds), which watch
every gateway's claim (`/gateway`, MAC'd under the swarm secret over the asker's nonce) and probe
the upstream themselves.

Rules (`Election.decide`):
- A gateway is *alive* while it answered within DEAD_AFTER_S, *healthy* while alive and its own
  probe of the upstream succeeded within CUT_AFTER_S (it says so in its claim). This node counts
  its own probes the same way.
- Every gateway starts as a standby. A standby takes over when: no other gateway is active and
  healthy; it is healthy itself; it has heard from every other gateway or waited DEAD_AFTER_S since
  its start (it never takes over before it knows); and no alive standby comes before it in the
  list that says it reaches the upstream (one that never said so yet gets CUT_AFTER_S from its
  start, or from the upstream coming up, to probe). It takes a term one above every term it has seen.
- An active gateway steps down when it sees another active, healthy gateway with a higher term
  (the same term: the one earlier in the list stays), or when it has been cut off from the
  upstream for CUT_AFTER_S while another gateway is healthy (it would hold its site on a dead link).
- So a returning first gateway finds another active and stays a standby; a frozen gateway that
  resumes finds a newer term and steps down.
- Split brain (the gateways cannot see each other, both reach the upstream): both may be active.
  Each keeps its own folder, each site peer is joined to one of them, nothing is mixed; the
  upstream plans only for the newer term's relay (gateway_handover.py), so the WAN carries the
  data once; when they see each other again the older term steps down.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from lanscatter.core.errors import RemoteProtocolError

DEAD_AFTER_S = 3.0           # silent this long: the gateway is gone (a standby takes over)
CUT_AFTER_S = 3.0            # no successful probe of the upstream this long: cut off
MAX_TERM = 2**53             # bounds a claim's term (JSON integers beyond are not exact everywhere)
MAX_RANK = 64                # a site names at most this many gateways
NONCE_CHARS = 32             # hex characters of the asker's nonce
MAX_CLAIM_BYTES = 1024       # a /gateway answer longer than this is refused unread

ACTIVATE = "activate"
STEP_DOWN = "step-down"


@dataclass(frozen=True, slots=True)
class Claim:
    """What a gateway says about itself."""

    rank: int                # its place in the site's list, 0 first
    active: bool
    term: int                # the term it took when it last became active (0: never)
    upstream_ok: bool        # its own probe of the upstream succeeded within CUT_AFTER_S


def gateway_key(join_key: bytes) -> bytes:
    """The key claims are MAC'd with, derived from the swarm secret's join key."""
    return hmac.new(join_key, b"lanscatter gateway claim", hashlib.sha256).digest()


def _mac(key: bytes, nonce: str, claim: Claim) -> str:
    text = "\0".join(("gateway", nonce, str(claim.rank), "1" if claim.active else "0", str(claim.term),
                      "1" if claim.upstream_ok else "0"))
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def claim_to_dict(key: bytes, nonce: str, claim: Claim) -> dict[str, Any]:
    """The answer to one asker: the claim with its MAC over the asker's nonce."""
    return {"rank": claim.rank, "active": claim.active, "term": claim.term, "upstream_ok": claim.upstream_ok,
            "mac": _mac(key, nonce, claim)}


def check_nonce(nonce: str) -> bool:
    return len(nonce) == NONCE_CHARS and all(c in "0123456789abcdef" for c in nonce)


def claim_from_dict(key: bytes, nonce: str, obj: object, *, rank: int) -> Claim:
    """A claim read from the gateway at place `rank` in answer to `nonce`; anything malformed, out
    of bounds, not MAC'd under this swarm's key or from another place is `RemoteProtocolError`."""
    if not isinstance(obj, dict):
        raise RemoteProtocolError("the gateway claim is not an object")
    r, active, term, ok, mac = (obj.get(k) for k in ("rank", "active", "term", "upstream_ok", "mac"))
    if not (isinstance(r, int) and not isinstance(r, bool) and 0 <= r < MAX_RANK):
        raise RemoteProtocolError("the gateway claim's rank is missing or out of range")
    if not (isinstance(term, int) and not isinstance(term, bool) and 0 <= term < MAX_TERM):
        raise RemoteProtocolError("the gateway claim's term is missing or out of range")
    if not isinstance(active, bool) or not isinstance(ok, bool) or not isinstance(mac, str):
        raise RemoteProtocolError("the gateway claim is missing a field")
    claim = Claim(r, active, term, ok)
    if not hmac.compare_digest(mac.encode(), _mac(key, nonce, claim).encode()):
        raise RemoteProtocolError("the gateway claim is not from this swarm (wrong MAC)")
    if r != rank:
        raise RemoteProtocolError(f"the gateway says it is number {r + 1} of its site, the tree says {rank + 1}")
    return claim


@dataclass(slots=True)
class _Heard:
    at: float                # when it last answered
    claim: Claim
    first: float             # when it first answered (since it last went silent)
    ok_at: float | None      # when it last said it reached the upstream


class Election:
    """One gateway's view of its site's gateways, and what it should do now."""

    def __init__(self, rank: int, count: int, now: float) -> None:
        if not 0 <= rank < count <= MAX_RANK:
            raise ValueError(f"rank {rank} of {count} gateways")
        self.rank = rank
        self.count = count
        self.active = False
        self.term = 0
        self._started = now
        self._heard: dict[int, _Heard] = {}
        self._probe_ok_at: float | None = None
        self._ok_since = now                 # start of this node's current run of good probes
        self._max_term = 0

    # ---- observations ------------------------------------------------------------------------
    def heard(self, claim: Claim, now: float) -> None:
        """A checked claim from another gateway (`claim.rank` is where it was asked)."""
        if claim.rank == self.rank:
            return
        last = self._heard.get(claim.rank)
        first = last.first if last is not None and now - last.at < DEAD_AFTER_S else now
        ok_at = now if claim.upstream_ok else (last.ok_at if last is not None else None)
        self._heard[claim.rank] = _Heard(now, claim, first, ok_at)
        self._max_term = max(self._max_term, claim.term)

    def probed(self, ok: bool, now: float) -> None:
        """This node's own probe of the upstream succeeded (or not)."""
        if ok:
            if not self.upstream_ok(now):
                self._ok_since = now
            self._probe_ok_at = now

    def claim(self, now: float) -> Claim:
        return Claim(self.rank, self.active, self.term, self.upstream_ok(now))

    def upstream_ok(self, now: float) -> bool:
        return self._probe_ok_at is not None and now - self._probe_ok_at < CUT_AFTER_S

    # ---- the rules ---------------------------------------------------------------------------
    def _alive(self, now: float) -> dict[int, Claim]:
        return {r: h.claim for r, h in self._heard.items() if now - h.at < DEAD_AFTER_S}

    def _may_lead(self, rank: int, now: float) -> bool:
        """An alive standby before this one goes first while it says it reaches the upstream; one
        that never said so yet is given CUT_AFTER_S from its start, or from the upstream coming
        up for this one, to probe. One that said so before and no longer does is cut off."""
        h = self._heard[rank]
        if h.claim.upstream_ok:
            return True
        return h.ok_at is None and (now - h.first < CUT_AFTER_S or now - self._ok_since < CUT_AFTER_S)

    def active_rank(self, now: float) -> int | None:
        """The gateway that relays as far as this one knows (itself included), None when none."""
        if self.active:
            return self.rank
        live = [(c.term, -r, r) for r, c in self._alive(now).items() if c.active]
        return max(live)[2] if live else None

    def decide(self, now: float) -> str | None:
        """ACTIVATE, STEP_DOWN or None; the state (active, term) is updated with it."""
        alive = self._alive(now)
        healthy = {r: c for r, c in alive.items() if c.upstream_ok}
        if self.active:
            for r, c in healthy.items():
                if c.active and (c.term, -r) > (self.term, -self.rank):
                    self.active = False
                    return STEP_DOWN
            if healthy and not self.upstream_ok(now):
                self.active = False
                return STEP_DOWN
            return None
        if any(c.active for c in healthy.values()) or not self.upstream_ok(now):
            return None
        waited = now - self._started >= DEAD_AFTER_S
        if not waited and len(self._heard) < self.count - 1:
            return None
        if any(r < self.rank and not c.active and self._may_lead(r, now) for r, c in alive.items()):
            return None
        self.active = True
        self.term = max(self._max_term, self.term) + 1
        self._max_term = self.term
        return ACTIVATE
