"""The master's side of one swarm, sans-I/O: every decision of a swarm's coordinator.

A driver (roles/swarm.py over websockets, sim/harness.py in memory) feeds it what happens, each
input with the time (`Now`): a peer joined (after the handshake, core/handshake.py) or left, a
decoded message from a peer, a new generation, the seed gaining or losing a chunk, and `tick` (at
least every PLAN_TICK_S, sooner when `wake_in` says so, and after any other input). Each input
returns the outputs (session_types.py) to carry out in order. It owns no socket, clock or task.

This part owns the members and what they say; session_rounds.py how planned transfers start, are
paced and are withdrawn. Rules of the messages:
- a Have about another generation is ignored; a member is planned for once its whole Have came,
  and after a new generation gets downloads again once its whole Have for that one came;
- a member speaks only of its own downloads: a Report, Receiving or Ending about any other
  transfer is ignored;
- blame: a blameless failure is withdrawn and planned again with no verdict on its source; a
  corrupt chunk bans its source from the planner and asks it to read its files again (Verify),
  its next whole Have making it a source again; a corrupt chunk from the seed means
  the seed's own file changed (SeedCorrupt): never a ban;
- cut-through inside a site: a member that serves what it is still receiving (SERVES_ARRIVING) is
  a source of a chunk from the first bytes of its download, from the seed or from a member still
  receiving it (from the seed only in a swarm spanning WAN links), offered only to a free slot that
  no idle source can give a whole chunk (planner `last_resort`); a download so fed that fails (not
  corrupt) fails with its feed and says nothing of its source;
- a new generation goes to a member as its changes from the generation the member holds (its
  Hello, then its whole Haves say which) where this session knows them (the generation before, or
  the same one at a rejoin: no change), else whole (ManifestDelta or ManifestMsg, protocol 7); a
  member's ManifestWanted gets the whole manifest once per generation, a second one is a protocol
  error;
- a message only a master sends raises RemoteProtocolError (the driver closes that connection);
- a gateway's relay that joins withdraws the older relay of its site at once, as though it had
  left, and asks the driver to close its connection (Close; gateway_handover.py);
- tree activation (tree_commit.py): a member's Stats say which version it shows, a relay's Staged
  what its subtree holds (only a member that joined as a relay sends it); `readiness` sums them,
  `tree_epoch` moves when they may have changed, the last commit follows the manifest at a join.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from lanscatter.core import protocol as p
from lanscatter.core.auth import Auth, endpoint
from lanscatter.core.bitmap import Bitmap
from lanscatter.core.errors import RemoteProtocolError
from lanscatter.core.gateway_handover import Gateway, handover, standby_set
from lanscatter.core.linkmap import LinkMap
from lanscatter.core.manifest import Manifest
from lanscatter.core.manifest_delta import make_delta
from lanscatter.core.manifest_wire import to_wire
from lanscatter.core.planner import Planner, PlannerConfig
from lanscatter.core.safe_text import NAME_LIMIT, safe_text
from lanscatter.core.session_rounds import PLAN_TICK_S, QUIET_S, SILENT_S, SessionRounds
from lanscatter.core.session_types import Close, Note, Now, Output, PeerState, SeedCorrupt, SeedCut, Synced
from lanscatter.core.signing import MAX_LABEL_CHARS, SignedVersion
from lanscatter.core.sizes import format_bytes
from lanscatter.core.status import ActiveVersion
from lanscatter.core.tree_commit import Member, Readiness, subtree

__all__ = ["PLAN_TICK_S", "SILENT_S", "SwarmSession"]

GONE_LIMIT = 1024   # nodes that left, still shown (as down) in the status
PEAK_SPAN_S = 2.5   # a receive rate over a shorter span may show a burst (a limiter's credit, a
                    # read's lump), not what a host's port carries


# A generation's changes from a base: (the base's generation, `make_delta(base, new)`).
PreparedDelta = tuple[str, dict[str, Any] | None]


def prepare_delta(base: Manifest, new: Manifest) -> PreparedDelta:
    """What `SwarmSession.set_manifest` takes as `delta` (slow for a large manifest: a driver runs
    it off its event loop)."""
    return base.generation, make_delta(base, new)


class SwarmSession(SessionRounds):
    def __init__(self, *, name: str, auth: Auth, seed_slots: int, work_clock: Callable[[], float],
                 link_map: LinkMap | None = None, seed: int | None = None,
                 planner_config: PlannerConfig | None = None) -> None:
        """`work_clock` measures how long sharing takes (a CPU-time budget, not a time of events):
        the engine passes a performance counter, a simulation one that stands still.
        `planner_config`: the planner's tuning (None: its defaults, as the engine runs it)."""
        planner = Planner(links=link_map, rng=random.Random(seed), config=planner_config or PlannerConfig())
        super().__init__(name=name, auth=auth, planner=planner, work_clock=work_clock)
        self.link_map = link_map
        self.planner.add_node(name, dl_slots=0, ul_slots=seed_slots, seed=True)
        self.signed: SignedVersion | None = None
        self._delta: dict[str, Any] | None = None     # from the generation before to this one
        # When the current generation was set, and when the seed held all of it (wall clock: the
        # status carries these and its own "time", so a poller can time events to the second
        # whatever its poll rate, without trusting its own clock to match ours).
        self.generation_at = 0.0
        self.seed_complete_at = 0.0
        self.seed_have = Bitmap(0)
        self.gone: dict[str, PeerState] = {}      # nodes that left, shown as down
        # Tree activation: the last commit (sent after the manifest at each join), and a count
        # that moves whenever what the members hold whole, show or summarise may have changed.
        self.commit: p.Commit | None = None
        self.tree_epoch = 0

    # ---- inputs: content ---------------------------------------------------------------------
    def set_manifest(self, manifest: Manifest, now: Now, seed_has: Iterable[str] | None = None,
                     signed: SignedVersion | None = None, delta: PreparedDelta | None = None) -> list[Output]:
        """A new generation. seed_has None: the seed holds every chunk (a master's own folder).
        `signed`: the origin's statement about it, sent with it to every peer. `delta`: the
        changes to it from a base (`prepare_delta`), made by the driver off its event loop (at a
        million files they take seconds); used when the base is the generation held here."""
        self.signed = signed
        if self.manifest is not None and manifest.generation == self.manifest.generation:
            # The same content again: a master's rescan found it whole after all, or a relay says
            # what its folder holds (at a rejoin, or after checking its files). The seed holds that.
            if seed_has is not None or self.seed_have.count < self.seed_have.size:
                self._set_seed_holdings(manifest, seed_has)
            return self._flush()
        # Peers drop every transfer when they take a new generation: withdraw them all here too.
        for t in list(self.transfers.values()):
            self.planner.cancel(t.id)
            self._untrack(t)
        self.transfers.clear()
        base = self.manifest
        self._delta = (None if base is None else delta[1] if delta is not None and delta[0] == base.generation
                       else make_delta(base, manifest))
        self.manifest = manifest
        self.generation_at = now.wall
        table = manifest.chunk_table()
        self.planner.set_chunks(table)
        self.seed_complete_at = self.generation_at
        self._set_seed_holdings(manifest, seed_has)
        for link in self.peers.values():
            link.have = Bitmap(len(table))
            link.inflight = Bitmap(len(table))
            self._set_complete(link, False, now)
            if link.planned:
                # It handles no Download while it reconciles its folder with the generation
                # (seconds for a large one): one planned meanwhile would hold its source's slot
                # idle. It still serves what it held; downloads once its Have for it came.
                link.staging = True
                self.planner.set_dl_slots(link.name, 0)
            self._send(link.name, self._manifest_for(link, manifest))
        self._event("info", f"generation {manifest.generation[:12]}: {len(manifest.files)} files, "
                            f"{len(table)} chunks, {format_bytes(manifest.total_bytes)} "
                            f"({manifest.chunking_kind} chunking, {format_bytes(manifest.chunk_size)} target)")
        return self._flush()

    def seed_lost(self, chunk: str) -> None:
        """The seed cannot serve this chunk any more (its file changed; a rescan is coming): stop
        planning it from the seed instead of failing transfer after transfer."""
        if self.manifest is None:
            return
        i = self.manifest.chunk_index().get(chunk)
        if i is not None and i in self.seed_have:
            self.seed_have.clear(i)
            table = self.manifest.chunk_table()
            self.planner.set_have(self.name, (h for k, (h, _) in enumerate(table) if k in self.seed_have))

    def seed_got(self, chunk: str, now: Now) -> None:
        """The seed (a relay) verified one more chunk: it can serve it from now on."""
        if self.manifest is None:
            return
        i = self.manifest.chunk_index().get(chunk)
        if i is not None and i not in self.seed_have:
            self.seed_have.set(i)
            if self.seed_have.count == self.seed_have.size:
                self.seed_complete_at = now.wall
            self.planner.add_have(self.name, chunk)

    def seed_arriving(self, chunk: str, due: float) -> bool:
        """The seed (a relay) is receiving `chunk` from upstream, its download due by `due` (the
        monotonic clock of `Now.mono`), and serves the prefix it has to downloaders that verify the
        whole: plan it from the seed. Not a holding (`seed_got`): nothing is announced. Returns
        whether there is something new to plan."""
        if self.manifest is None or chunk not in self.manifest.chunk_index():
            return False
        self.planner.add_arriving(self.name, chunk, due)
        return True

    def seed_arrival_failed(self, chunk: str) -> None:
        """A chunk `seed_arriving` announced did not arrive whole: the seed is no source of it."""
        self.planner.drop_arriving(self.name, chunk)

    # ---- inputs: members ---------------------------------------------------------------------
    def name_for(self, want: str) -> str:
        """The name a joining peer that asked for `want` is known by: unique in this swarm."""
        name, k = want, 2
        while name in self.peers or name == self.name:
            name, k = f"{want}-{k}", k + 1
        return name

    def join(self, name: str, hello: p.Hello, now: Now, *, addr: str, protocol: int,
             seed_url: str, seed_source: str, addr_proven: bool = True) -> list[Output]:
        """A peer passed the handshake as `name` (from name_for), seen at `addr` (`addr_proven`:
        the handshake checked it was the address the peer connects from), agreeing on `protocol`;
        it reaches the seed at `seed_url`, the seed's chunk server being `seed_source`. A gateway's
        relay withdraws the older relay of its site it replaces (gateway_handover.py)."""
        host = f"[{addr}]" if ":" in addr else addr
        n = len(self.manifest.chunk_table()) if self.manifest else 0
        self.peers[name] = PeerState(
            name=name, addr=addr, url=f"http://{host}:{hello.port}" if hello.port else "",
            source=endpoint(addr, hello.port), seed_url=seed_url, seed_source=seed_source,
            role=safe_text(hello.role, 16), dl_slots=max(0, hello.dl_slots),
            ul_slots=max(0, hello.ul_slots if hello.port else 0),
            have=Bitmap(n), inflight=Bitmap(n), heard_at=now.mono, protocol=protocol,
            generation=hello.generation, term=hello.term,
            gateways=standby_set(hello.role, hello.gateways, hello.term, addr, addr_proven=addr_proven))
        self.gone.pop(name, None)
        self._event("info", f"{name} joined from {addr}")
        self._hand_over(self.peers[name])
        if self.manifest is not None:
            self._send(name, self._manifest_for(self.peers[name], self.manifest))
            if self.commit is not None and protocol >= 8:
                self._send(name, self.commit)
        self.tree_epoch += 1
        return self._flush()

    def leave(self, name: str) -> list[Output]:
        """The peer's connection closed: its transfers go, and it is kept (down) for the status."""
        self._remove(name, f"{name} left")
        return self._flush()

    def _hand_over(self, link: PeerState) -> None:
        """A gateway's relay joined: the older relays of its site are withdrawn now, as though they
        had left, rather than after their silence (a frozen one holds its transfers and the seed's
        upload slots till then); one that a newer relay of its site supersedes gets nothing."""
        if not link.gateways:
            return
        replaced, newer = handover(Gateway(link.name, link.gateways, link.term),
                                   (Gateway(m.name, m.gateways, m.term) for m in self.peers.values()))
        for old in replaced:
            reason = f"replaced by {link.name}, a newer gateway of its site (term {link.term})"
            self._out.append(Close(old, reason))
            self._remove(old, f"{old} withdrawn: {reason}")
        if newer is not None:
            link.dl_slots = 0
            self._event("warning", f"{link.name} relays for the site of {newer}, which holds a newer term: "
                                   "nothing is planned to it")

    def _remove(self, name: str, message: str) -> None:
        link = self.peers.pop(name, None)
        if link is None:
            return
        link.online = False
        self.gone[link.name] = link
        while len(self.gone) > GONE_LIMIT:      # names churning must not grow the status for good
            del self.gone[next(iter(self.gone))]
        cut = []
        for t in self.planner.remove_node(link.name) if link.planned else []:
            self.transfers.pop(t.id, None)
            self._untrack(t)
            if t.dest != link.name and t.dest in self.peers:
                self._send(t.dest, p.Cancel(t.id))
            elif t.source == self.name:
                cut.append(t.id)
        if cut:
            self._out.append(SeedCut(tuple(cut)))
        self._event("info", message)
        self.tree_epoch += 1

    def receive(self, name: str, msg: p.Message, now: Now) -> list[Output]:
        """A decoded message from the member `name` (joined and not left). Raises
        RemoteProtocolError for a message that only a master sends."""
        link = self.peers[name]
        link.heard_at = now.mono
        if link.silent:
            link.silent = False
            self.planner.set_dl_slots(link.name, 0 if link.staging else link.dl_slots)
            self.planner.set_silent(link.name, False)
            self._event("info", f"{link.name} speaks again")
        if isinstance(msg, p.Have):
            self._have(link, msg, now)
        elif isinstance(msg, p.Report):
            if self._owns(link, msg.transfer):
                self._report(link, msg, now)
        elif isinstance(msg, p.Receiving):
            if self._owns(link, msg.transfer):
                self._bytes_flow(link, msg.transfer, now)
        elif isinstance(msg, p.Ending):
            if self._owns(link, msg.transfer):
                self._bytes_flow(link, msg.transfer, now)   # (a short download's Receiving: ENDING_RECEIVES)
                self.planner.release(msg.transfer)
                self._ends[msg.transfer] = now.mono + max(0.0, msg.seconds)
        elif isinstance(msg, p.ManifestWanted):
            self._manifest_wanted(link, msg)
        elif isinstance(msg, p.Stats):
            link.rx_bytes, link.tx_bytes, link.uploads = msg.rx_bytes, msg.tx_bytes, msg.uploads
            link.rates.sample(now.mono, msg.rx_bytes, msg.tx_bytes)
            if link.planned and link.rates.span() >= PEAK_SPAN_S:
                self.planner.set_rx_peak(link.name, link.rates.rates(now.mono, idle_zero=False)[0])
            active = ActiveVersion(msg.active, safe_text(msg.active_label, MAX_LABEL_CHARS),
                                   msg.active_published_ms, msg.active_at) if msg.active else None
            if active != link.active:
                link.active = active
                self.tree_epoch += 1
        elif isinstance(msg, p.Staged):
            if link.role != "relay":
                raise RemoteProtocolError(f"{link.name} sent 'staged', which only a relay sends")
            link.summary = Readiness(msg.generation, msg.hosts, min(msg.ready, msg.hosts),
                                     tuple(safe_text(n, NAME_LIMIT) for n in msg.waiting))
            self.tree_epoch += 1
        else:
            raise RemoteProtocolError(f"{link.name} sent {msg.TYPE!r}, which only a master sends")
        return self._flush()

    def suspect(self, peer: str, chunk: str) -> list[Output]:
        """`peer` served `chunk` corrupt: the planner no longer takes it as a source (its report
        did that), and the peer is asked to read its files again; its fresh Have
        makes it one again."""
        self._suspect(peer, chunk)
        return self._flush()

    # ---- inputs: time ------------------------------------------------------------------------
    def tick(self, now: Now) -> list[Output]:
        """Withdraw what is overdue, plan a round and re-share rates."""
        self._mind_silent_peers(now.mono)
        for t in self.planner.expire(now.mono, lambda dest: self._quiet(dest, now.mono)):
            if self._quiet(t.dest, now.mono):       # as a silent one's: the seed's upload to it is cut too
                self._withdraw(t, f"{t.dest} is quiet: chunk {t.chunk[:8]} from {t.source} withdrawn")
                continue
            self.transfers.pop(t.id, None)
            self._untrack(t)
            self._event("warning", f"slow source {t.source}: chunk {t.chunk[:8]} to {t.dest} timed out")
            self._send(t.dest, p.Cancel(t.id))
        for t, until in self.planner.extended:
            self._event("info", f"chunk {t.chunk[:8]} from {t.source} to {t.dest} goes at {t.dest}'s own port "
                                f"speed: given {until - t.started:.0f} s instead of {t.timeout_s:.0f} s")
        if self.manifest is not None:
            self._share(now, self.planner.plan(now.mono))
        return self._flush()

    def _quiet(self, name: str, now: float) -> bool:
        """Whether a member has missed its last Stats (QUIET_S): a transfer to it that timed out
        then is its own stall (frozen before it is found silent), no verdict on the source."""
        link = self.peers.get(name)
        return link is not None and now - link.heard_at >= QUIET_S

    def synced(self) -> bool:
        return (self.manifest is not None and self.seed_have.count == self.seed_have.size
                and all(link.complete for link in self.peers.values()))

    # ---- messages ----------------------------------------------------------------------------
    def _have(self, link: PeerState, msg: p.Have, now: Now) -> None:
        m = self.manifest
        if m is None or msg.generation != m.generation:
            return                       # about an older generation: ignore
        index = m.chunk_index()
        if msg.replace:
            link.generation = m.generation
            link.have = Bitmap(len(index))
            if link.staging:
                link.staging = False
                self.planner.set_dl_slots(link.name, link.dl_slots)
            if not link.planned:     # plannable only once its holdings are known
                self.planner.add_node(link.name, dl_slots=link.dl_slots, ul_slots=link.ul_slots)
                link.planned = True
            self.planner.set_have(link.name, [h for h in msg.chunks if h in index])
        elif link.planned:
            self.planner.add_haves(link.name, msg.chunks)
        self._holds(link, msg.chunks, now)

    def _holds(self, link: PeerState, chunks: list[str], now: Now) -> None:
        """`link` holds `chunks` of the current generation (others ignored): what it holds, whether
        whole, and whether its completing synced the swarm (the planner knows it already)."""
        m = self.manifest
        if m is None:
            return
        index = m.chunk_index()
        for h in chunks:
            if (i := index.get(h)) is not None:
                link.have.set(i)
        was_complete = link.complete
        self._set_complete(link, link.have.count == link.have.size, now)
        if link.complete != was_complete:    # (not on every Have: readiness sums every member)
            self.tree_epoch += 1
            if link.complete and self.synced():
                self._out.append(Synced(m.generation))

    # ---- tree activation (tree_commit.py) -------------------------------------------------------
    def readiness(self, own: tuple[str, bool] | None = None) -> Readiness | None:
        """How many hosts below this coordinator hold the current generation whole (`own`: this
        coordinator's name and whether it does, when it is a host itself: a relay)."""
        if self.manifest is None:
            return None
        # (a relay before protocol 8 says nothing of its site: it counts as one host)
        members = [Member(link.name, link.role == "relay" and link.protocol >= 8, link.complete, link.summary)
                   for link in self.peers.values()]
        return subtree(self.manifest.generation, members, own)

    def set_commit(self, commit: p.Commit) -> list[Output]:
        """The tree's commit: kept for members joining later (after the manifest), sent to every
        member now."""
        if commit != self.commit:
            self.commit = commit
            for link in self.peers.values():
                if link.protocol >= 8:
                    self._send(link.name, commit)
        return self._flush()

    def _bytes_flow(self, link: PeerState, transfer: int, now: Now) -> None:
        """A download's first bytes arrived (its Receiving, or the Ending of one too short to say
        it): it takes its share from now, and a member that serves what it is still receiving
        (SERVES_ARRIVING) is a source of that chunk from now, due when the download is."""
        if transfer not in self.waiting:
            return
        self.waiting.discard(transfer)
        t = self.transfers[transfer]
        # Inside one site from any source, the seed or a member still receiving it: where the
        # seed's port is the site's bound, the copies of a new chunk must fan out as it arrives,
        # hop after hop, or the members fall behind what the seed has sent (and never catch up:
        # their ports are no faster). The planner offers such a chunk last (`last_resort`), never
        # from a source known to be slow, and a download it fed that fails with its feed is no
        # verdict on its source. A swarm with relays across WAN links follows the seed's copies
        # only: hop after hop there was not shown to help (docs/benchmarks.md).
        if ((t.source == self.name or not self.planner.spans_wan)
                and link.protocol >= p.SERVES_ARRIVING and link.ul_slots and link.planned):
            rate = self._rates_sent.get(t.id) or t.rate_cap
            left = t.size / rate if rate else t.started + t.timeout_s - now.mono
            self.planner.add_arriving(link.name, t.chunk, now.mono + max(0.0, left), last_resort=True)

    def _report(self, link: PeerState, msg: p.Report, now: Now) -> None:
        """Blame: a blameless failure says nothing of the source; a corrupt chunk bans its source
        (asked to check its files) unless the source is the seed, whose own file changed. A
        download from a source that was still receiving the chunk fails with that source's own
        download, which says nothing of it either (unless the bytes it served were corrupt). An ok
        Report is the downloader's Have of the chunk (protocol 10 sends no other; an older peer's
        Have after it changes nothing more)."""
        t = self.transfers.pop(msg.transfer)
        fed = t.id in self.fed
        self._untrack(t, delivered=msg.ok)
        if not msg.ok and (msg.blameless or fed and not msg.corrupt):
            self._out.append(Note(f"chunk {t.chunk[:8]} to {t.dest} withdrawn: {safe_text(msg.error)}"))
            self.planner.cancel(t.id)          # no verdict on the source; planned again
        elif not msg.ok:
            source_is_seed = t.source == self.name
            self._event("warning", f"{t.dest} failed to get chunk {t.chunk[:8]} from {t.source}: {msg.error}")
            self.planner.finish(t.id, now.mono, ok=False, corrupt=msg.corrupt and not source_is_seed)
            if msg.corrupt and source_is_seed:
                self._out.append(SeedCorrupt(t.chunk))
            elif msg.corrupt:
                self._suspect(t.source, t.chunk)
        else:
            self.planner.finish(t.id, now.mono, ok=True)
            self._holds(link, [t.chunk], now)

    def _suspect(self, peer: str, chunk: str) -> None:
        link = self.peers.get(peer)
        if link is not None and self.manifest is not None:
            self._event("warning", f"{peer} served chunk {chunk[:8]} corrupt: asked to check its files")
            self._send(peer, p.Verify(self.manifest.generation, [chunk]))

    def _owns(self, link: PeerState, transfer: int) -> bool:
        """Whether `transfer` is under way to `link`: a peer speaks only of its own downloads."""
        t = self.transfers.get(transfer)
        return t is not None and t.dest == link.name

    def _manifest_wanted(self, link: PeerState, msg: p.ManifestWanted) -> None:
        m = self.manifest
        if m is None or msg.generation != m.generation:
            return                       # an older generation: the current one went out since
        if link.whole_sent == m.generation:
            raise RemoteProtocolError(f"{link.name} asked for the manifest of {m.generation[:12]} twice")
        link.whole_sent = m.generation
        link.generation = ""
        self._send(link.name, self._manifest_for(link, m))

    def _manifest_for(self, link: PeerState, manifest: Manifest) -> p.Message:
        """The generation for `link`: as its changes from the one the link holds where this session
        knows them (no change at all for a rejoin), else whole."""
        s = self.signed
        statement, signature = (s.statement, s.signature) if s else ("", "")
        if link.protocol >= 7 and link.generation:
            delta = (self._delta if self._delta is not None and link.generation == self._delta["base"]
                     else make_delta(manifest, manifest) if link.generation == manifest.generation else None)
            if delta is not None:
                return p.ManifestDelta(link.generation, manifest.generation, delta, statement, signature)
        whole = to_wire(manifest) if link.protocol >= 9 else manifest.to_dict()
        return p.ManifestMsg(whole, statement=statement, signature=signature)

    def _set_seed_holdings(self, manifest: Manifest, seed_has: Iterable[str] | None) -> None:
        """The seed holds every chunk of `manifest` (seed_has None) or those of seed_has (taken
        one at a time: a relay's million chunks are not a set of texts)."""
        table, index = manifest.chunk_table(), manifest.chunk_index()
        self.seed_have = have = Bitmap(len(table))
        if seed_has is None:
            have.fill()
        else:
            for d in map(index.get, seed_has):
                if d is not None:
                    have.set(d)
        # (the hashes one at a time: the chunk table builds each when read)
        self.planner.set_have(self.name, (table.hashes[d] for d in range(len(table)) if d in have))

    @staticmethod
    def _set_complete(link: PeerState, complete: bool, now: Now) -> None:
        if complete and not link.complete:
            link.complete_at = now.wall
        elif not complete:
            link.complete_at = None
        link.complete = complete
