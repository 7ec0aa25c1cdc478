"""Whole swarms in memory: the master's session (core/session.py) with simulated peers
(sim/harness.py), on a clock the test moves."""

from __future__ import annotations

import pytest

from lanscatter.core import protocol as p
from lanscatter.core.errors import RemoteProtocolError
from lanscatter.core.linkmap import Link, LinkMap
from lanscatter.core.manifest import FileEntry, Manifest, build_manifest
from lanscatter.core.manifest_delta import make_delta
from lanscatter.core.manifest_wire import decode_manifest
from lanscatter.core.session import SILENT_S, prepare_delta
from lanscatter.sim.harness import SEED, SwarmHarness, synthetic_manifest

DOWN = 1_500_000.0            # a peer's download port, bytes/s


def _links(**caps: float) -> LinkMap:
    return LinkMap(links={name.replace("_", ":"): Link(name.replace("_", ":"), cap) for name, cap in caps.items()})


def test_a_swarm_syncs_and_says_so() -> None:
    h = SwarmHarness(synthetic_manifest(24))
    for name in ("a", "b", "c", "d"):
        h.join(name)
    h.run_to_sync()
    every = {c for c, _ in h.manifest.chunk_table()}
    assert all(peer.held == every for peer in h.peers.values())
    assert h.synced == [h.manifest.generation] and not h.session.transfers
    # the peers served one another, not only the seed
    assert any(d.source != SEED for peer in h.peers.values() for d in peer.received if isinstance(d, p.Download))
    assert all(h.session.peers[name].complete_at is not None for name in h.peers)


def test_a_released_transfer_leaves_its_share_when_its_last_byte_is_due() -> None:
    h = SwarmHarness(synthetic_manifest(4), link_map=_links(up_master=8e6, down_a=DOWN))
    a = h.join("a")
    h.tick()
    (_, first), (_, second) = h.downloads()
    assert first.rate_cap == second.rate_cap == DOWN / 2            # half of a's port each
    a.says_receiving = False                   # the next download's request stays on its way
    h.end_soon(first.transfer, 0.2)
    h.advance(0.15)
    assert not h.seed_rates                                         # not yet: its bytes still come
    h.advance(0.1)
    assert h.seed_rates == [{second.transfer: DOWN}]                # the whole port, before any report
    assert 0.2 <= h.now < 0.26 and not a.upload_rates
    (_, third), = [(n, d) for n, d in h.downloads() if d.transfer not in (first.transfer, second.transfer)]
    h.first_bytes(third.transfer)              # its bytes arrive: it takes its share back
    h.advance(0.01)
    assert h.seed_rates[-1] == {second.transfer: DOWN / 2, third.transfer: DOWN / 2}


def test_a_download_too_short_to_measure_takes_its_share_at_its_ending() -> None:
    """Such a download says no Receiving (protocol.ENDING_RECEIVES): its Ending says its bytes flow."""
    h = SwarmHarness(synthetic_manifest(4), link_map=_links(up_master=8e6, down_a=DOWN))
    a = h.join("a")
    h.tick()
    (_, first), (_, second) = h.downloads()
    a.says_receiving = False                   # what is planned next says Ending only
    h.end_soon(first.transfer, 0.0)
    h.advance(0.01)
    assert h.seed_rates == [{second.transfer: DOWN}]
    (_, third), = [(n, d) for n, d in h.downloads() if d.transfer not in (first.transfer, second.transfer)]
    assert third.rate_cap == DOWN / 2          # its share among all, which the second keeps meanwhile
    h.end_soon(third.transfer, 0.5)
    h.advance(0.01)
    assert h.seed_rates[-1] == {second.transfer: DOWN / 2}      # the second gives it up now


def _fed(link_map: LinkMap | None = None) -> tuple[SwarmHarness, list[p.Download]]:
    """A chunk on its way from the seed (one upload slot) to three peers of one upload slot each;
    the downloads planned while it arrives, in order."""
    h = SwarmHarness(synthetic_manifest(1), seed_slots=1, link_map=link_map)
    for name in ("a", "b", "c"):
        h.join(name, ul_slots=1)               # (each peer says Receiving at once)
    seen: list[p.Download] = []
    for _ in range(4):
        h.tick()
        seen += [d for _, d in h.downloads() if d not in seen]
    return h, seen


def _fed_chain() -> tuple[SwarmHarness, list[p.Download]]:
    """The seed's copy served on as it arrives to a second peer, and on from there to the third."""
    h, seen = _fed()
    assert len(seen) == 3
    assert seen[0].source == SEED and all(d.source != SEED for d in seen[1:])
    return h, seen


def _fed_pair() -> tuple[SwarmHarness, p.Download, p.Download]:
    h, (first, second, _) = _fed_chain()
    return h, first, second


def test_a_chunk_is_served_on_as_it_arrives() -> None:
    """Cut-through inside a site (protocol.SERVES_ARRIVING): a member is a source of a chunk from
    the first bytes of its download, from the seed or from another member that still receives it."""
    h, (first, second, third) = _fed_chain()
    transfers = h.session.transfers
    assert transfers[second.transfer].source == transfers[first.transfer].dest
    assert transfers[third.transfer].source == transfers[second.transfer].dest
    assert h.session.planner.is_arriving(transfers[second.transfer].dest, second.chunk)


def test_a_swarm_across_wan_links_serves_on_only_the_seeds_copies() -> None:
    """With relays of other sites among its members, a chunk is served on as it arrives only from
    a member receiving it from the seed."""
    h, seen = _fed(LinkMap(links={"wan:hub>b": Link("wan:hub>b", 1e6)}))
    assert h.session.planner.spans_wan
    assert len(seen) == 2                      # the third waits for a whole copy
    first, second = seen
    assert first.source == SEED and second.source != SEED
    assert not h.session.planner.is_arriving(h.session.transfers[second.transfer].dest, second.chunk)


def test_a_download_cut_with_its_feed_blames_nobody_but_corrupt_bytes_do() -> None:
    h, first, second = _fed_pair()
    feeder = h.session.transfers[second.transfer].source
    h.fail(first.transfer)                     # the feed breaks: the download it fed is cut ...
    assert not h.session.planner.is_arriving(feeder, first.chunk)
    h.fail(second.transfer, error="connection closed after 1000 of 2000 bytes")
    assert h.session.planner.node_stats(feeder).failures == 0      # ... which says nothing of it
    h, first, second = _fed_pair()
    feeder = h.session.transfers[second.transfer].source
    h.fail(second.transfer, corrupt=True, error="hash mismatch")
    assert h.session.planner.node_stats(feeder).failures == 1      # what it served was its own


def test_sharing_waits_in_proportion_to_what_it_took() -> None:
    """Re-sharing fair rates takes a bounded part of the time: after sharing for t seconds (by the
    session's work clock), the next share waits SHARE_DUTY * t; a change meanwhile is shared then."""
    h = SwarmHarness(synthetic_manifest(4), link_map=_links(up_master=8e6, down_a=DOWN), work_s=0.01)
    h.join("a")
    h.tick()                                    # shares: took 0.01 s, so nothing before 0.03
    (_, first), (_, second) = h.downloads()
    h.peers["a"].says_receiving = False         # the download planned next stays on its way
    h.now = 0.01
    h.end_soon(first.transfer, 0.0)
    h.tick()
    assert not h.seed_rates and h.session.share_pending          # too soon: left for later
    assert h.session.wake_in(h.now) == pytest.approx(0.02)
    h.now = 0.03
    h.tick()
    assert h.seed_rates == [{second.transfer: DOWN}] and not h.session.share_pending
    h.now = 10.0
    h.tick()                                    # nothing changed: nothing to share
    assert len(h.seed_rates) == 1


def test_a_silent_peer_gets_nothing_new_and_its_overdue_downloads_go_with_no_blame() -> None:
    h = SwarmHarness(synthetic_manifest(8), link_map=_links(up_master=8e6, down_a=DOWN))
    a = h.join("a")
    h.tick()
    started = [d for _, d in h.downloads()]
    assert len(started) == 2
    a.frozen = True
    h.advance(SILENT_S + 0.5)
    assert h.session.peers["a"].silent
    h.advance(max(d.timeout_s for d in started))
    cancelled = {m.transfer for m in a.received if isinstance(m, p.Cancel)}
    assert cancelled == {d.transfer for d in started}
    assert sum("is silent" in e.message for e in h.events) == 2
    assert not any("slow source" in e.message for e in h.events)
    assert h.session.planner.node_stats(SEED).failures == 0          # the stall was the downloader's
    assert sum(isinstance(m, p.Download) for m in a.received) == 2  # nothing new while silent
    a.frozen = False
    a.downloads.clear()
    h.advance(1.5)                               # it speaks (Stats): downloads again
    assert not h.session.peers["a"].silent and len(h.downloads()) == 2


def test_a_silent_peers_downloads_planned_before_any_measurement_go_at_the_measured_speed() -> None:
    """With no rates known, the first downloads get the initial guess as their timeout (minutes).
    Once a download was measured, a silent peer's guessed ones go as soon as a download planned
    now would time out: the source's upload slots are not held for minutes."""
    h = SwarmHarness(synthetic_manifest(8))
    a = h.join("a")
    h.tick()
    first, second = (d for _, d in h.downloads())
    assert first.timeout_s == second.timeout_s == 300.0          # nothing measured: the guess
    h.finish(first.transfer, 0.2)
    h.advance(1.5)                                                 # the swarm's medians refresh
    a.frozen = True
    h.advance(SILENT_S + 6.0)                                      # silent, then past 5 s (the least)
    cancelled = {m.transfer for m in a.received if isinstance(m, p.Cancel)}
    assert second.transfer in cancelled, "its guessed timeout still held the seed's slot"
    assert any(e.message == f"a is silent: chunk {second.chunk[:8]} from {SEED} withdrawn" for e in h.events)


def test_a_download_timing_out_after_its_downloader_went_quiet_is_no_verdict_on_the_source() -> None:
    """A downloader frozen a second after its downloads began is found silent only 5 s after its
    last word, after their timeouts (5 s): its missed Stats say the stall is its own."""
    h = SwarmHarness(synthetic_manifest(8), link_map=_links(up_master=8e6, down_a=DOWN))
    a = h.join("a")
    h.tick()
    started = [d for _, d in h.downloads()]
    assert started and max(d.timeout_s for d in started) < SILENT_S + 1.0
    h.advance(1.0)
    a.frozen = True
    h.advance(max(d.timeout_s for d in started) - 1.0 + 0.1)
    assert not h.session.peers["a"].silent                          # not yet: its last word was at 1 s
    assert {m.transfer for m in a.received if isinstance(m, p.Cancel)} == {d.transfer for d in started}
    assert sum("a is quiet: chunk" in e.message for e in h.events) == len(started)
    assert not any("slow source" in e.message for e in h.events)
    assert h.session.planner.node_stats(SEED).failures == 0
    assert set(h.seed_cut) == {d.transfer for d in started}          # the seed's uploads to it end


def test_a_host_on_a_slow_port_is_timed_for_it_and_its_downloads_are_not_cut() -> None:
    """No link map: a host receiving at 50 kB/s (Wi-Fi among wired hosts) timed like the swarm's
    fast ones would have every 1 MiB download cut at 5 s and its sources charged as slow. What its
    Stats show it receiving gives its first downloads the time they need, and times the next."""
    h = SwarmHarness(synthetic_manifest(8))
    h.join("a", dl_slots=1)
    h.tick()
    [(_, first)] = h.downloads()
    h.finish(first.transfer, 0.05)               # the swarm's speed: 1 MiB in 0.05 s
    h.session.planner.set_dl_slots("a", 0)       # (out of the way)
    h.advance(1.5)
    w = h.join("w")
    h.tick()
    early = [d for name, d in h.downloads() if name == "w"]
    assert len(early) == 2 and all(d.timeout_s == 5.0 for d in early)     # its port is not known yet
    w.rx_rate = 50_000.0
    h.advance(max(d.timeout_s for d in early) + 0.5)
    assert not any(isinstance(m, p.Cancel) for m in w.received)
    assert not any("slow source" in e.message for e in h.events)
    assert sum("goes at w's own port speed" in e.message for e in h.events) == 2
    for d in early:
        h.finish(d.transfer, 40.0)
    h.tick()
    assert h.session.planner.node_stats(SEED).failures == 0
    later = [d for name, d in h.downloads() if name == "w"]
    assert later and all(d.timeout_s >= 4 * (1 << 20) / 50_000.0 for d in later)   # 1 MiB at its speed


def test_a_silent_member_is_no_source_until_it_speaks_again() -> None:
    """A member that says nothing (frozen, or its host cut off) answers no request either: once it
    is silent nothing new is planned from it, and once it speaks it is a source again."""
    m = synthetic_manifest(40)
    chunks = {c for c, _ in m.chunk_table()}
    h = SwarmHarness(m, seed_slots=1)
    a = h.join("a", held=chunks, ul_slots=4)
    h.tick()
    assert h.session.planner.node_stats("a").have_count == len(chunks)
    a.frozen = True
    h.advance(SILENT_S + 0.5)
    assert h.session.peers["a"].silent
    assert [e.message for e in h.events if "said nothing" in e.message] == [
        "a has said nothing for 5 s: no transfers to or from it until it speaks"]
    h.join("b", dl_slots=4)
    h.advance(1.0)
    got = h.downloads()
    assert got and all(d.source == SEED for _, d in got), [d.source for _, d in got]
    a.frozen = False
    h.advance(1.5)                               # it speaks (Stats): a source again
    assert any(e.message == "a speaks again" for e in h.events)
    h.deliver()
    h.advance(0.5)
    assert any(d.source == "a" for _, d in h.downloads())


def test_a_corrupt_chunk_bans_its_source_until_it_checks_its_files() -> None:
    m = synthetic_manifest(6)
    chunks = [c for c, _ in m.chunk_table()]
    h = SwarmHarness(m, seed_has=set())           # a relay's seed that holds nothing yet
    b = h.join("b", held=set(chunks))
    b.corrupt = {chunks[0]}
    a = h.join("a")
    for _ in range(6):
        h.advance(0.5)
        h.deliver()
    verify = [m for m in b.received if isinstance(m, p.Verify)]
    assert [v.chunks for v in verify] == [[chunks[0]]]
    assert any("b served chunk" in e.message and "corrupt" in e.message for e in h.events)
    assert h.session.planner.node_stats("b").failures == 1
    assert not h.session.planner.node_stats("b").corrupt             # its fresh Have: a source again
    assert a.held == set(chunks[1:]) and chunks[0] not in b.held      # nobody holds the bad one now
    for chunk in chunks:                          # the relay's upstream delivers
        h.session.seed_got(chunk, h.at())
    h.run_to_sync(limit_s=5.0)
    assert a.held == b.held == set(chunks)
    assert not h.seed_corrupt


def test_a_corrupt_chunk_from_the_seed_means_its_file_changed_and_never_bans_it() -> None:
    h = SwarmHarness(synthetic_manifest(2))         # two downloads: both chunks under way
    a = h.join("a")
    h.tick()
    (_, d), _ = h.downloads()
    h.fail(d.transfer, corrupt=True, error="hash mismatch")
    assert h.seed_corrupt == [d.chunk]
    assert not any(isinstance(m, p.Verify) for m in a.received)
    assert not h.session.planner.node_stats(SEED).corrupt
    h.advance(0.5)
    again = [x for _, x in h.downloads() if x.chunk == d.chunk]
    assert again and again[0].source == SEED


def test_a_blameless_failure_is_planned_again_with_no_verdict_on_its_source() -> None:
    h = SwarmHarness(synthetic_manifest(2))
    h.join("a")
    h.tick()
    (_, d), _ = h.downloads()
    h.fail(d.transfer, blameless=True, error="the peer is reading its files again")
    assert any("withdrawn: the peer is reading its files again" in n for n in h.notes)
    assert h.session.planner.node_stats(SEED).failures == 0
    assert not any(e.level == "warning" for e in h.events)
    h.advance(0.5)
    assert any(x.chunk == d.chunk for _, x in h.downloads())


def test_a_member_speaks_only_of_its_own_downloads_and_never_as_a_master() -> None:
    h = SwarmHarness(synthetic_manifest(4))
    h.join("a")
    h.join("b", held={c for c, _ in h.manifest.chunk_table()})
    h.tick()
    (_, d), *_ = h.downloads()
    h.say("b", p.Report(d.transfer, True, 0.1))            # b speaks of a's download: ignored
    h.say("b", p.Ending(d.transfer, 0.0))
    assert d.transfer in h.session.transfers and not h.session.planner.node_stats("a").downloads
    with pytest.raises(RemoteProtocolError, match="only a master sends"):
        h.say("b", p.Cancel(d.transfer))


def test_a_source_that_leaves_takes_its_uploads_with_it() -> None:
    m = synthetic_manifest(6)
    h = SwarmHarness(m, seed_has=set())
    h.join("b", held={c for c, _ in m.chunk_table()})
    a = h.join("a")
    h.tick()
    under_way = {d.transfer for _, d in h.downloads()}
    assert under_way and all(d.source == "b" for _, d in h.downloads())
    h.leave("b")
    assert {m.transfer for m in a.received if isinstance(m, p.Cancel)} == under_way
    assert not h.session.transfers and not h.session.peers["a"].downloads
    assert not h.session.gone["b"].online and any(e.message == "b left" for e in h.events)


def test_a_peer_of_protocol_9_gets_the_manifest_as_columns_and_an_older_one_as_entries() -> None:
    h = SwarmHarness(synthetic_manifest(4))
    new, old = h.join("new"), h.join("old", protocol=8)
    (to_new,), (to_old,) = ([m for m in peer.received if isinstance(m, p.ManifestMsg)] for peer in (new, old))
    assert to_new.manifest["format"] == 3 and to_old.manifest["format"] == 2
    assert decode_manifest(to_new.manifest) == decode_manifest(to_old.manifest) == h.manifest


def test_an_ok_report_is_the_downloaders_have_and_an_older_peers_have_after_it_changes_nothing() -> None:
    h = SwarmHarness(synthetic_manifest(2))
    h.join("new")
    h.join("old", protocol=p.REPORT_HOLDS - 1)          # says Have after each ok Report
    h.tick()
    index = h.manifest.chunk_index()
    for name, d in h.downloads():
        h.finish(d.transfer)
        assert index[d.chunk] in h.session.peers[name].have
    h.run_to_sync()
    assert h.synced == [h.manifest.generation]
    assert all(h.session.peers[name].complete for name in ("new", "old"))


def test_the_seeds_uploads_to_a_member_that_left_are_cut_and_a_peers_are_cancelled() -> None:
    m = synthetic_manifest(8)
    h = SwarmHarness(m)
    b = h.join("b", held={c for c, _ in m.chunk_table()[:2]}, dl_slots=0)
    h.join("a", dl_slots=4)
    h.tick()
    into_a = [d for name, d in h.downloads() if name == "a"]
    assert {d.source for d in into_a} == {SEED, "b"} and not h.seed_cut
    h.leave("a")
    # the seed stops sending at once; nothing is sent to b about its uploads (it has no message
    # for that: the downloader's connection closes with it)
    assert sorted(h.seed_cut) == sorted(d.transfer for d in into_a if d.source == SEED)
    assert not any(isinstance(msg, p.Cancel) for msg in b.received)


def test_a_silent_members_uploads_are_withdrawn_and_planned_again_from_others() -> None:
    """A member that says nothing serves nothing either: its downloaders would each wait for their
    stall timer (30 s). Once it is silent they are told to stop, and the chunks come from others."""
    m = synthetic_manifest(40)
    chunks = {c for c, _ in m.chunk_table()}
    h = SwarmHarness(m, seed_slots=1)
    a = h.join("a", held=chunks, ul_slots=4)
    b = h.join("b", dl_slots=4)
    h.tick()
    from_a = {d.transfer for _, d in h.downloads() if d.source == "a"}
    assert from_a
    a.frozen = True
    h.advance(SILENT_S + 0.5)
    cancelled = {m.transfer for m in b.received if isinstance(m, p.Cancel)}
    assert from_a <= cancelled
    assert sum("a is silent: chunk" in e.message and "to b withdrawn" in e.message for e in h.events) == len(from_a)
    assert h.session.planner.node_stats("b").failures == 0 and h.session.planner.node_stats("a").failures == 0
    h.advance(0.5)
    assert h.downloads() and all(d.source == SEED for _, d in h.downloads())


def test_the_seeds_uploads_to_a_silent_member_are_cut_when_withdrawn() -> None:
    h = SwarmHarness(synthetic_manifest(8), link_map=_links(up_master=8e6, down_a=DOWN))
    a = h.join("a")
    h.tick()
    started = [d for _, d in h.downloads()]
    a.frozen = True
    h.advance(SILENT_S + 0.5)
    assert not h.seed_cut                          # silent, but not yet overdue
    h.advance(max(d.timeout_s for d in started))
    assert sorted(h.seed_cut) == sorted(d.transfer for d in started)


def _files(n: int, changed: int = -1) -> Manifest:
    entries = [FileEntry(f"f{k:03d}", 4, 1, False, (f"{k + (1000 if k == changed else 0) + 1:064x}",), (4,))
               for k in range(n)]
    return build_manifest(4, entries, ())


@pytest.mark.parametrize("prepared_base", [True, False])
def test_a_new_generation_goes_out_with_the_delta_its_driver_prepared_off_the_loop(prepared_base: bool) -> None:
    """A master computes a version's delta in a worker thread (at a million files it took seconds
    of the event loop, and peers' heartbeats failed): the session sends the one it is given when
    it is from the generation held, and makes its own otherwise."""
    old, new = _files(50), _files(50, changed=3)
    h = SwarmHarness(old)
    peer = h.join("a")
    # (None: a whole manifest is as cheap; a session that used it sends the whole manifest)
    base = old.generation if prepared_base else "0" * 24
    h.manifest = new
    h._feed(h.session.set_manifest(new, h.at(), None, None, (base, None)))
    sent = [m for m in peer.received if isinstance(m, (p.ManifestMsg, p.ManifestDelta))][-1]
    assert isinstance(sent, p.ManifestMsg if prepared_base else p.ManifestDelta)
    assert prepare_delta(old, new) == (old.generation, make_delta(old, new)) and make_delta(old, new) is not None


def test_a_relays_seed_holdings_are_taken_one_chunk_at_a_time() -> None:
    """A relay hands its session the chunks it holds as an iterator over its store (a set of a
    million hex texts cost 150 MB): read once, the seed holds exactly those."""
    m = synthetic_manifest(6)
    table = m.chunk_table()
    held = [table.hashes[d] for d in (1, 4)] + ["f" * 64]      # (one not of this generation)
    h = SwarmHarness(m, seed_has=iter(held))
    assert [d for d in range(len(table)) if d in h.session.seed_have] == [1, 4]


def test_a_member_taking_a_new_generation_gets_downloads_once_it_says_what_it_holds() -> None:
    """A member reconciling its folder with a new generation (seconds, for a large one) handles no
    Download meanwhile: none is planned to it, so no source's slot waits on it; it still serves
    what it held, and downloads once its whole Have for the generation came."""
    h = SwarmHarness(synthetic_manifest(8), seed_slots=4)
    a, _ = h.join("a"), h.join("b")
    h.run_to_sync()
    a.reconciling = True
    h.publish(synthetic_manifest(16))             # chunks 1-8 kept, 9-16 new
    h.tick()
    assert h.downloads() and {name for name, _ in h.downloads()} == {"b"}
    assert len(h.session.planner.has("a")) == 8           # a source of what it held meanwhile
    h.reconciled("a")
    h.tick()
    assert "a" in {name for name, _ in h.downloads()}
    h.run_to_sync()
