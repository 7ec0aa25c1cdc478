"""The gateway election (core/gateway_election.py): who relays, on a clock the test turns."""

from __future__ import annotations

import pytest

from lanscatter.core.errors import RemoteProtocolError
from lanscatter.core.gateway_election import (
    ACTIVATE,
    CUT_AFTER_S,
    DEAD_AFTER_S,
    STEP_DOWN,
    Claim,
    Election,
    claim_from_dict,
    claim_to_dict,
    gateway_key,
)

KEY = gateway_key(b"k" * 32)
NONCE = "0123456789abcdef" * 2


class Site:
    """n gateways that hear each other (unless cut), each probing the upstream."""

    def __init__(self, n: int) -> None:
        self.now = 0.0
        self.gw = [Election(r, n, self.now) for r in range(n)]
        self.up = [True] * n          # process running
        self.probe = [True] * n       # reaches the upstream
        self.cut: set[frozenset[int]] = set()

    def step(self, seconds: float = 1.0) -> list[str | None]:
        self.now += seconds
        claims = [g.claim(self.now) for g in self.gw]
        for a, g in enumerate(self.gw):
            if not self.up[a]:
                continue
            for b, c in enumerate(claims):
                if b != a and self.up[b] and frozenset((a, b)) not in self.cut:
                    g.heard(c, self.now)
            g.probed(self.probe[a], self.now)
        return [g.decide(self.now) if self.up[a] else None for a, g in enumerate(self.gw)]

    def run(self, seconds: float) -> None:
        for _ in range(int(seconds)):
            self.step()

    def active(self) -> list[int]:
        return [r for r, g in enumerate(self.gw) if g.active and self.up[r]]

    def restart(self, r: int) -> None:
        self.up[r] = True
        self.gw[r] = Election(r, len(self.gw), self.now)


def test_the_first_gateway_relays_and_the_others_wait() -> None:
    site = Site(3)
    assert site.step() == [ACTIVATE, None, None]
    site.run(10)
    assert site.active() == [0]


def test_an_upstream_that_comes_up_late_is_taken_by_the_first_gateway_alone() -> None:
    site = Site(3)
    site.probe = [False, False, False]
    site.run(10)
    assert site.active() == []
    site.probe = [True, True, True]
    for _ in range(10):
        assert STEP_DOWN not in site.step()
    assert site.active() == [0]


def test_a_lone_gateway_waits_before_it_takes_over_then_does() -> None:
    site = Site(2)
    site.up[1] = False
    site.step()
    assert site.active() == []            # it has not heard from gw 1 yet: maybe that one is active
    site.run(DEAD_AFTER_S)
    assert site.active() == [0]


def test_a_dead_gateway_is_replaced_within_a_few_seconds_and_stays_standby_when_back() -> None:
    site = Site(3)
    site.run(3)
    site.up[0] = False
    took = 0
    while site.active() != [1]:
        site.step()
        took += 1
        assert took <= DEAD_AFTER_S + 1
    assert site.gw[1].term == 2
    site.restart(0)
    site.run(10)
    assert site.active() == [1]


def test_a_gateway_cut_off_from_upstream_hands_over_to_a_healthy_one() -> None:
    site = Site(2)
    site.run(3)
    site.probe[0] = False
    took = 0
    while site.active() != [1]:
        site.step()
        took += 1
        assert took <= CUT_AFTER_S + 2         # no second wait for the one that was cut off
    site.probe[0] = True                   # its link is back: it stays standby
    site.run(10)
    assert site.active() == [1]


def test_no_takeover_when_the_upstream_is_down_for_every_gateway() -> None:
    site = Site(2)
    site.run(3)
    site.probe = [False, False]
    site.run(10)
    assert site.active() == [0]            # it keeps serving its site what it has
    assert site.gw[1].term == 0


def test_split_brain_both_pull_then_the_older_term_steps_down() -> None:
    site = Site(2)
    site.run(3)
    site.cut.add(frozenset((0, 1)))
    site.run(6)
    assert site.active() == [0, 1]         # at worst both pull, each into its own folder
    site.cut.clear()
    decisions = site.step()
    assert decisions == [STEP_DOWN, None]
    assert site.active() == [1]


def test_a_frozen_gateway_that_resumes_finds_a_newer_term_and_steps_down() -> None:
    site = Site(2)
    site.run(3)
    site.up[0] = False                     # SIGSTOP: it keeps its state
    site.run(6)
    assert site.active() == [1]
    site.up[0] = True
    assert site.step()[0] == STEP_DOWN
    site.run(5)
    assert site.active() == [1]


def test_a_claim_round_trips_and_anything_else_is_refused() -> None:
    claim = Claim(1, True, 7, False)
    assert claim_from_dict(KEY, NONCE, claim_to_dict(KEY, NONCE, claim), rank=1) == claim
    good = claim_to_dict(KEY, NONCE, claim)
    bad = [
        "x", {}, {**good, "term": -1}, {**good, "term": 2**60}, {**good, "rank": True},
        {**good, "active": 1}, {**good, "term": 8},                       # MAC no longer matches
        claim_to_dict(gateway_key(b"other" * 8), NONCE, claim),           # another swarm
    ]
    for obj in bad:
        with pytest.raises(RemoteProtocolError):
            claim_from_dict(KEY, NONCE, obj, rank=1)
    with pytest.raises(RemoteProtocolError, match="replayed|MAC"):
        claim_from_dict(KEY, "f" * 32, good, rank=1)                      # an old answer replayed
    with pytest.raises(RemoteProtocolError, match="number 2"):
        claim_from_dict(KEY, NONCE, good, rank=0)


def test_an_earlier_gateway_that_stood_down_cut_off_is_not_waited_for() -> None:
    gb = Election(1, 2, 0.0)
    for t in range(4):
        gb.heard(Claim(0, True, 1, True), float(t))
        gb.probed(True, float(t))
        assert gb.decide(float(t)) is None
    gb.heard(Claim(0, False, 1, False), 4.0)     # it stood down: its link to the upstream is cut
    gb.probed(True, 4.0)
    assert gb.decide(4.0) == ACTIVATE and gb.term == 2


def test_the_gateway_field_of_the_status_round_trips_and_is_bounded() -> None:
    from lanscatter.core.status import GatewayStatus, StatusDoc, StatusError, read_status, to_json

    doc = StatusDoc(role="relay", name="gw-b", gateway=GatewayStatus(1, True, 3, "10.0.0.2:10564", True, 1))
    assert read_status(to_json(doc)) == doc
    assert "gateway" not in to_json(StatusDoc(role="peer"))
    for bad in ({"rank": 65, "active": True}, {"rank": 0, "active": "yes"}, {"rank": 0, "active": True, "term": -1}):
        with pytest.raises(StatusError):
            read_status({**to_json(doc), "gateway": bad})
