"""A gateway's relay joining the upstream in place of another relay of its site: the rules
(core/gateway_handover.py) and the swarm session withdrawing the one replaced at once (in memory,
sim/harness.py, on a clock the test moves)."""

from __future__ import annotations

import json

import pytest

from lanscatter.core import protocol as p
from lanscatter.core.errors import RemoteProtocolError
from lanscatter.core.gateway_handover import Gateway, handover, standby_set
from lanscatter.core.session import SILENT_S
from lanscatter.sim.harness import SwarmHarness, synthetic_manifest

SITE = ("127.0.0.2:9000", "127.0.0.3:9000")       # the site's gateways, in the tree's order
OTHER = ("127.0.0.5:9000", "127.0.0.6:9000")      # another site's


def test_a_member_counts_as_a_gateway_only_as_a_relay_with_a_term_from_an_address_of_its_set() -> None:
    assert standby_set("relay", SITE, 1, "127.0.0.3", addr_proven=True) == SITE
    assert standby_set("relay", ["[::ffff:127.0.0.2]:9000", "127.0.0.3:9000"], 1, "127.0.0.2",
                       addr_proven=True) == SITE                      # one spelling per address
    assert standby_set("relay", ["[fe80::1]:9000", "10.0.0.1:9"], 2, "fe80::1", addr_proven=True) == \
        ("[fe80::1]:9000", "10.0.0.1:9")
    assert standby_set("peer", SITE, 1, "127.0.0.3", addr_proven=True) == ()
    assert standby_set("relay", SITE, 0, "127.0.0.3", addr_proven=True) == ()
    assert standby_set("relay", SITE, 1, "127.0.0.9", addr_proven=True) == ()      # not one of them
    assert standby_set("relay", SITE, 1, "127.0.0.3", addr_proven=False) == ()     # behind NAT
    assert standby_set("relay", SITE[:1], 1, "127.0.0.2", addr_proven=True) == ()  # no standby
    for bad in ("127.0.0.3", "127.0.0.3:0", "127.0.0.3:70000", ":9000", "127.0.0.3:x"):
        assert standby_set("relay", (SITE[0], bad), 1, "127.0.0.2", addr_proven=True) == ()


def test_a_newer_gateway_replaces_older_ones_of_its_set_and_an_older_one_is_superseded() -> None:
    members = [Gateway("gw-a", SITE, 1), Gateway("gw-x", OTHER, 1), Gateway("p", (), 0)]
    assert handover(Gateway("gw-b", SITE, 2), members) == (["gw-a"], None)
    assert handover(Gateway("gw-a2", SITE, 1), [Gateway("gw-b", SITE, 2)]) == ([], "gw-b")
    assert handover(Gateway("gw-b", SITE, 1), members) == ([], None)          # the same term: neither
    assert handover(Gateway("gw-y", OTHER[::-1], 5), members) == ([], None)   # another list
    assert handover(Gateway("p2", (), 9), members) == ([], None)              # no gateway


def _frozen_relay_holding_the_seed() -> tuple[SwarmHarness, set[int]]:
    """gw-a (relay of SITE, term 1) holds both of the seed's upload slots, then freezes."""
    h = SwarmHarness(synthetic_manifest(8), seed_slots=2)
    gw_a = h.join("gw-a", addr="127.0.0.2", role="relay", gateways=SITE, term=1, ul_slots=0)
    h.tick()
    held = {d.transfer for _, d in h.downloads()}
    assert len(held) == 2 and all(h.session.transfers[t].dest == "gw-a" for t in held)
    gw_a.frozen = True
    return h, held


def test_a_relay_of_the_same_site_with_a_newer_term_withdraws_the_frozen_one_at_once() -> None:
    h, held = _frozen_relay_holding_the_seed()
    h.advance(1.0)
    h.join("gw-b", addr="127.0.0.3", role="relay", gateways=SITE, term=2, ul_slots=0)
    assert "gw-a" in h.closed and "gw-a" not in h.session.peers and not h.session.peers.get("gw-a")
    assert not held & set(h.session.transfers)              # its transfers are gone, now
    assert h.session.gone["gw-a"].online is False
    assert any("gw-a withdrawn: replaced by gw-b" in e.message for e in h.events)
    h.tick()                                                # the same second: no silence waited for
    assert len([1 for name, _ in h.downloads() if name == "gw-b"]) == 2
    h.run_to_sync()
    assert h.peers["gw-b"].held == {c for c, _ in h.manifest.chunk_table()}


def test_a_relay_of_another_site_a_peer_or_an_unproven_address_evicts_nobody() -> None:
    h, held = _frozen_relay_holding_the_seed()
    h.join("gw-x", addr="127.0.0.5", role="relay", gateways=OTHER, term=9, ul_slots=0)    # another site
    h.join("p", addr="127.0.0.3", gateways=SITE, term=9)                 # a peer (role) of that address
    h.join("liar", addr="127.0.0.7", role="relay", gateways=SITE, term=9, ul_slots=0)  # not at a gateway
    h.join("natted", addr="127.0.0.3", role="relay", gateways=SITE, term=9, ul_slots=0, addr_proven=False)
    h.tick()
    assert not h.closed and "gw-a" in h.session.peers
    assert held <= set(h.session.transfers)                 # gw-a keeps them until its silence rule
    h.advance(SILENT_S + 1.0)
    assert h.session.peers["gw-a"].silent


def test_a_relay_with_an_older_term_joining_again_gets_nothing_and_evicts_nobody() -> None:
    """A frozen gateway woken after it was replaced may rejoin before its election stands it down."""
    h, _held = _frozen_relay_holding_the_seed()
    h.join("gw-b", addr="127.0.0.3", role="relay", gateways=SITE, term=2, ul_slots=0)
    h.tick()
    b_transfers = {d.transfer for name, d in h.downloads() if name == "gw-b"}
    h.join("gw-a", addr="127.0.0.2", role="relay", gateways=SITE, term=1, ul_slots=0)
    h.advance(2.0)
    assert "gw-b" not in h.closed and b_transfers <= set(h.session.transfers)
    assert not [1 for name, _ in h.downloads() if name == "gw-a"]
    assert h.session.peers["gw-a"].dl_slots == 0
    assert any("gw-a relays for the site of gw-b" in e.message for e in h.events)


def test_the_hello_carries_the_set_and_the_term_and_an_older_hello_means_none() -> None:
    hello = p.Hello("gw-b", 8, 6, "x", "0" * 32, "127.0.0.3", 0, 2, 0, role="relay", gateways=list(SITE), term=2)
    assert p.decode(p.encode(hello)) == hello
    old = json.loads(p.encode(hello))
    del old["gateways"], old["term"]
    assert p.decode(json.dumps(old)) == p.Hello("gw-b", 8, 6, "x", "0" * 32, "127.0.0.3", 0, 2, 0, role="relay")
    for bad in ({"gateways": ["127.0.0.1:1"] * 65}, {"gateways": ["a b:1", "c:2"]}, {"gateways": [""]},
                {"term": -1}, {"term": 2**60}):
        with pytest.raises(RemoteProtocolError):
            p.decode(json.dumps({**old, **bad}))
