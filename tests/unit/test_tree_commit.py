"""Tree activation's decisions (tree_commit.py): readiness summed up the relays, when the origin
commits, the deadline report, rollback and roll forward, what a host does with a commit, and the
commit record read back."""

from __future__ import annotations

import json

import pytest

from lanscatter.core import protocol as p
from lanscatter.core.errors import RemoteProtocolError
from lanscatter.core.tree_commit import (
    WAITING_NAMES,
    Commit,
    CommitBook,
    HostView,
    Member,
    Overdue,
    Readiness,
    RollbackRefused,
    Version,
    host_action,
    may_switch,
    subtree,
)

G1, G2, G3 = "a1" * 32, "b2" * 32, "c3" * 32


def test_subtree_counts_peers_and_takes_each_relays_summary() -> None:
    members = [Member("p1", relay=False, ready=True), Member("p2", relay=False, ready=False),
               Member("gw", relay=True, ready=True, summary=Readiness(G1, 4, 3, ("b2",)))]
    r = subtree(G1, members)
    assert (r.hosts, r.ready, r.waiting) == (6, 4, ("p2", "b2"))
    assert not r.all_ready
    # A relay counts itself in: its own readiness comes first.
    assert subtree(G1, [Member("p1", relay=False, ready=True)], own=("gw", True)) == Readiness(G1, 2, 2, ())


def test_a_relay_that_has_not_said_or_speaks_of_another_generation_is_one_host_waiting() -> None:
    silent = Member("gw", relay=True, ready=True)                       # holds it, site unknown
    stale = Member("gw2", relay=True, ready=True, summary=Readiness(G2, 9, 9))
    r = subtree(G1, [silent, stale])
    assert (r.hosts, r.ready, r.waiting) == (2, 0, ("gw", "gw2"))


def test_a_summary_never_claims_more_ready_hosts_than_it_has_and_names_are_bounded() -> None:
    liar = Member("gw", relay=True, ready=True, summary=Readiness(G1, 2, 50))
    assert subtree(G1, [liar]).ready == 2
    many = [Member(f"p{i}", relay=False, ready=False) for i in range(40)]
    assert len(subtree(G1, many).waiting) == WAITING_NAMES


def test_the_origin_commits_once_every_joined_host_holds_it() -> None:
    book = CommitBook(deadline_s=60)
    book.published(Version(G1, "1"), now=0)
    assert book.step(Readiness(G1, 3, 2, ("p3",)), now=1) is None
    assert book.state() == "staging"
    assert book.step(Readiness(G1, 3, 3), now=2) == Commit(G1)
    assert book.state() == "committed" and book.message() == Commit(G1)
    assert book.step(Readiness(G1, 3, 3), now=3) is None          # once
    # Nobody joined: nothing to wait for (hosts joining later switch when they hold it).
    book.published(Version(G2, "2"), now=4)
    assert book.step(Readiness(G2, 0, 0), now=4) == Commit(G2)
    # A readiness about another generation is not taken for the current one.
    book.published(Version(G3), now=5)
    assert book.step(Readiness(G2, 1, 1), now=6) is None


def test_a_commit_past_its_deadline_is_reported_once_and_still_made_when_all_hold_it() -> None:
    book = CommitBook(deadline_s=10)
    book.published(Version(G1), now=100)
    assert book.step(Readiness(G1, 2, 1, ("slow",)), now=105) is None
    late = book.step(Readiness(G1, 2, 1, ("slow",)), now=111)
    assert isinstance(late, Overdue) and late.readiness.waiting == ("slow",) and late.waited_s == 11
    assert book.state() == "overdue" and book.message() is None     # nothing committed: nobody switched
    assert book.step(Readiness(G1, 2, 1, ("slow",)), now=120) is None
    assert book.step(Readiness(G1, 2, 2), now=130) == Commit(G1)


def test_rollback_names_a_version_committed_before_and_holds_the_current_one() -> None:
    book = CommitBook()
    assert isinstance(book.rollback(None), RollbackRefused)
    for t, (gen, label) in enumerate([(G1, "build 1"), (G2, "build 2")]):
        book.published(Version(gen, label), now=t)
        assert book.step(Readiness(gen, 1, 1), now=t) == Commit(gen)
    assert book.rollback(None) == Commit(G1, instead=G2)
    assert book.state() == "rolled-back" and book.message() == Commit(G1, instead=G2)
    # The current version is not committed again by itself ...
    assert book.step(Readiness(G2, 1, 1), now=5) is None
    # ... until a roll forward (a rollback "to" it) or a new version.
    assert book.rollback("build 2") == Commit(G2)
    assert book.rollback(G1[:8]) == Commit(G1, instead=G2)
    refused = book.rollback("no such build")
    assert isinstance(refused, RollbackRefused) and "build 1" in refused.hint
    book.published(Version(G3), now=9)
    assert book.step(Readiness(G3, 1, 1), now=9) == Commit(G3)


def test_the_commit_record_reads_back_and_a_damaged_one_is_refused() -> None:
    book = CommitBook()
    for gen in (G1, G2):
        book.published(Version(gen, "x", 5), now=0)
        book.step(Readiness(gen, 0, 0), now=0)
    book.rollback(None)
    again = CommitBook().restored(json.loads(json.dumps(book.to_dict())))
    assert again.committed == book.committed and again.held == G2 and again.history == book.history
    again.published(Version(G2), now=0)
    assert again.step(Readiness(G2, 1, 1), now=0) is None          # a restarted origin keeps the rollback
    for bad in ({"format": 2}, {"format": 1, "history": "x", "held": ""},
                {"format": 1, "history": [{"generation": "ZZ", "label": "", "published_ms": 0}], "held": ""},
                {"format": 1, "history": [], "held": "../x"}):
        with pytest.raises(ValueError):
            CommitBook().restored(bad)


def _view(*, tree: bool = True, current: str | None = G2, whole: bool = True, active: str | None = G1,
          kept: tuple[str, ...] = (G1,)) -> HostView:
    return HostView(tree=tree, current=current, staged_whole=whole, active=active, kept=frozenset(kept))


def test_what_a_host_does_with_a_commit() -> None:
    assert host_action(_view(), Commit(G2)) == ("switch", G2)
    assert host_action(_view(whole=False), Commit(G2)) == ("none", "")     # switches once it holds it
    assert host_action(_view(active=G2), Commit(G2)) == ("none", "")
    assert host_action(_view(), None) == ("none", "")
    # A rollback of the current version: to a kept one, or said to be missing.
    assert host_action(_view(active=G2, kept=(G1, G2)), Commit(G1, G2)) == ("rollback", G1)
    assert host_action(_view(active=G2, kept=(G2,)), Commit(G1, G2)) == ("missing", G1)
    # A rollback of a version this host already left behind: a host-activated host keeps its newer
    # version; a tree-activated one shows what the tree shows.
    assert host_action(_view(tree=False, current=G3, active=G3, kept=(G1, G3)), Commit(G1, G2)) == ("none", "")
    assert host_action(_view(current=G3, active=G2, kept=(G1, G2)), Commit(G1, G2)) == ("rollback", G1)
    # An older commit while a newer version is staged: nothing to do yet.
    assert host_action(_view(current=G3), Commit(G2)) == ("none", "")


def test_a_host_switches_at_the_end_of_staging_only_when_the_tree_committed_it() -> None:
    assert may_switch(False, None, G1)
    assert not may_switch(True, None, G1)
    assert not may_switch(True, Commit(G1), G2)
    assert may_switch(True, Commit(G2), G2)


def test_the_tree_messages_are_bounded_where_they_are_decoded() -> None:
    staged = p.Staged(G1, 5, 4, ["b2"])
    assert p.decode(p.encode(staged)) == staged
    assert p.decode(p.encode(p.Commit(G1, G2))) == p.Commit(G1, G2)
    assert p.decode(json.dumps({"t": "commit", "generation": G1})) == p.Commit(G1)
    summary = {"t": "staged", "generation": G1, "hosts": 2, "ready": 1, "waiting": []}
    stats = {"t": "stats", "rx_bytes": 0, "tx_bytes": 0, "uploads": 0, "complete": True}
    for bad in ({**summary, "hosts": -1}, {**summary, "waiting": ["x"] * 17}, {**summary, "waiting": ["x" * 256]},
                {**summary, "ready": 2**21}, {"t": "commit", "generation": "a" * 129},
                {**stats, "active_label": "x" * 201}, {**stats, "active_at": -1.0}):
        with pytest.raises(RemoteProtocolError):
            p.decode(json.dumps(bad))
