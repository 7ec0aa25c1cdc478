"""One swarm session (core/session.py) and N peers in memory, on a clock the caller moves: whole
swarms in unit tests, in milliseconds, with nothing patched.

The peers are simple and obedient: each holds a set of chunks, answers a Manifest with its whole
Have, says Receiving when a download starts (unless told not to), takes Rates and Cancel, sends Stats every second
unless frozen, and on Verify drops the chunks it served corrupt and sends its Have again; a peer
whose connection the session closes is gone. A
download ends when the caller says (`finish`, `fail`, `end_soon`) or with `deliver`, which ends
every download under way (corrupt where its source serves that chunk corrupt). Every frame crosses
protocol.encode/decode both ways, as on the wire; the session's outputs are kept for the caller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from lanscatter.core import protocol as p
from lanscatter.core.auth import Auth
from lanscatter.core.linkmap import LinkMap
from lanscatter.core.manifest import FileEntry, FileTable, Manifest
from lanscatter.core.session import PLAN_TICK_S, SwarmSession
from lanscatter.core.session_types import (
    Close,
    Event,
    Note,
    Now,
    Output,
    SeedCorrupt,
    SeedCut,
    SeedRates,
    Send,
    Synced,
)

SEED = "master"
WALL_AT_ZERO = 1_800_000_000.0    # the wall clock when the harness clock reads 0


def synthetic_manifest(chunks: int, chunk_size: int = 1 << 20) -> Manifest:
    """One file of `chunks` distinct chunks, each `chunk_size` bytes."""
    hashes = tuple(f"{i + 1:064x}" for i in range(chunks))
    entry = FileEntry("data.bin", chunks * chunk_size, 1, False, hashes, (chunk_size,) * chunks)
    return Manifest(chunk_size=chunk_size, files=FileTable.of_entries([entry]), dirs=())


@dataclass(eq=False)
class HarnessPeer:
    name: str
    protocol: int
    held: set[str]
    corrupt: set[str] = field(default_factory=set)       # chunks it serves corrupt until a Verify
    frozen: bool = False                                 # says nothing (its messages are lost)
    says_receiving: bool = True                          # False: the caller says it (first_bytes)
    reconciling: bool = False                            # takes a manifest, says its Have when told
    rx_rate: float = 0.0                                 # bytes/s its Stats say it receives
    generation: str = ""
    downloads: dict[int, p.Download] = field(default_factory=dict)
    upload_rates: dict[int, float] = field(default_factory=dict)   # by transfer id, from Rates
    received: list[p.Message] = field(default_factory=list)        # every message, in order


class SwarmHarness:
    def __init__(self, manifest: Manifest, *, link_map: LinkMap | None = None, seed_slots: int = 2,
                 seed_has: Iterable[str] | None = None, work_s: float = 0.0, rng_seed: int = 0) -> None:
        """`work_s`: what each measurement of the session's work clock adds to it (0: sharing
        costs nothing, so it never waits)."""
        self.now = 0.0
        self._work = 0.0
        self._work_s = work_s
        self.session = SwarmSession(name=SEED, auth=Auth(None), seed_slots=seed_slots, link_map=link_map,
                                    seed=rng_seed, work_clock=self._work_clock)
        self.manifest = manifest
        self.peers: dict[str, HarnessPeer] = {}
        self.events: list[Event] = []
        self.notes: list[str] = []
        self.seed_rates: list[dict[int, float]] = []
        self.seed_cut: list[int] = []          # the seed's uploads the session withdrew
        self.seed_corrupt: list[str] = []
        self.synced: list[str] = []
        self.closed: dict[str, str] = {}       # peers whose connection the session closed: why
        self._stats_at = 0.0
        self._feed(self.session.set_manifest(manifest, self.at(), seed_has))

    def at(self) -> Now:
        return Now(self.now, WALL_AT_ZERO + self.now)

    def _work_clock(self) -> float:
        self._work += self._work_s
        return self._work

    # ---- members -----------------------------------------------------------------------------
    def join(self, name: str, *, held: set[str] | None = None, dl_slots: int = 2, ul_slots: int = 2,
             protocol: int = p.PROTOCOL_VERSION, addr: str | None = None, role: str = "peer",
             gateways: tuple[str, ...] = (), term: int = 0, addr_proven: bool = True) -> HarnessPeer:
        """A peer joins from `addr` (a loopback address of its own by default); a gateway's relay
        says `role` "relay", its site's `gateways` and its `term`."""
        k = len(self.peers) + len(self.closed) + 2
        addr = addr or f"127.0.0.{k}"
        peer = self.peers[name] = HarnessPeer(name, protocol, set(held or ()))
        hello = p.Hello(name, protocol, protocol, "harness", "0" * 32, addr, 7000 + k, dl_slots, ul_slots,
                        role=role, gateways=list(gateways), term=term)
        self._feed(self.session.join(name, hello, self.at(), addr=addr, protocol=protocol,
                                     seed_url="http://127.0.0.1:7000", seed_source="127.0.0.1:7000",
                                     addr_proven=addr_proven))
        return peer

    def reconciled(self, name: str) -> None:
        """A `reconciling` peer's folder holds the new generation: it says its whole Have."""
        peer = self.peers[name]
        peer.reconciling = False
        for msg in self._have(peer, self._chunks()):
            self.say(name, msg)

    def publish(self, manifest: Manifest) -> None:
        """A new generation from the seed, which holds all of it."""
        self.manifest = manifest
        self._feed(self.session.set_manifest(manifest, self.at()))

    def leave(self, name: str) -> None:
        del self.peers[name]
        self._feed(self.session.leave(name))

    # ---- the clock ---------------------------------------------------------------------------
    def tick(self) -> None:
        self._feed(self.session.tick(self.at()))

    def advance(self, seconds: float, step: float = PLAN_TICK_S) -> None:
        """Move the clock by `seconds`, ticking at least every `step` and whenever the session
        asks to be woken sooner; every peer not frozen sends Stats each second."""
        until = self.now + seconds
        while self.now < until:
            self.now = min(until, self.now + min(step, self.session.wake_in(self.now)))
            if self.now - self._stats_at >= 1.0:
                self._stats_at = self.now
                for peer in list(self.peers.values()):
                    self.say(peer.name, p.Stats(int(peer.rx_rate * self.now), 0, 0, peer.held >= self._chunks()))
            self.tick()

    # ---- downloads ---------------------------------------------------------------------------
    def downloads(self) -> list[tuple[str, p.Download]]:
        """Every download under way, as (downloader, Download), oldest first."""
        return sorted(((peer.name, d) for peer in self.peers.values() for d in peer.downloads.values()),
                      key=lambda pd: pd[1].transfer)

    def finish(self, transfer: int, seconds: float = 0.1) -> None:
        name, d = self._download(transfer)
        self.peers[name].held.add(d.chunk)
        self.say(name, p.Report(transfer, True, seconds))
        if self.peers[name].protocol < p.REPORT_HOLDS:
            self.say(name, p.Have(self.manifest.generation, [d.chunk]))

    def fail(self, transfer: int, *, corrupt: bool = False, blameless: bool = False,
             error: str = "failed") -> None:
        name, _ = self._download(transfer)
        self.say(name, p.Report(transfer, False, 0.1, error, corrupt, blameless))

    def first_bytes(self, transfer: int) -> None:
        """The downloader says its download's first bytes arrived."""
        name, d = self._download(transfer)
        self.peers[name].downloads[transfer] = d
        self.say(name, p.Receiving(transfer))

    def end_soon(self, transfer: int, seconds: float) -> None:
        """The downloader says its download's last bytes arrive within `seconds`."""
        name, _ = self._download(transfer)
        self.say(name, p.Ending(transfer, seconds))

    def deliver(self) -> None:
        """End every download under way: corrupt where the source serves that chunk corrupt."""
        for _, d in self.downloads():
            source = self.peers.get(d.source)
            if source is not None and d.chunk in source.corrupt:
                self.fail(d.transfer, corrupt=True, error="hash mismatch")
            else:
                self.finish(d.transfer)

    def run_to_sync(self, limit_s: float = 60.0, step: float = PLAN_TICK_S) -> float:
        """Tick and deliver until every member holds everything; the clock then. Raises
        TimeoutError past `limit_s`."""
        until = self.now + limit_s
        while not self.session.synced():
            if self.now >= until:
                raise TimeoutError(f"not synced within {limit_s} s")
            self.advance(step)
            self.deliver()
        return self.now

    def _download(self, transfer: int) -> tuple[str, p.Download]:
        for peer in self.peers.values():
            if transfer in peer.downloads:
                return peer.name, peer.downloads.pop(transfer)
        raise KeyError(f"no download {transfer} under way")

    # ---- wiring ------------------------------------------------------------------------------
    def say(self, name: str, msg: p.Message) -> None:
        """`name` sends `msg` to the session (lost if that peer is frozen)."""
        if self.peers[name].frozen:
            return
        self._feed(self.session.receive(name, p.decode(p.encode(msg), name, p.MAX_FRAME), self.at()))

    def _feed(self, outputs: list[Output]) -> None:
        """Carry out the session's outputs; replies are fed back in the order they were sent."""
        todo: deque[Output] = deque(outputs)
        while todo:
            out = todo.popleft()
            if isinstance(out, Send):
                if (peer := self.peers.get(out.peer)) is not None:
                    for reply in self._react(peer, p.decode(p.encode(out.msg), SEED)):
                        if not peer.frozen:
                            todo.extend(self.session.receive(peer.name, reply, self.at()))
            elif isinstance(out, Event):
                self.events.append(out)
            elif isinstance(out, Note):
                self.notes.append(out.message)
            elif isinstance(out, SeedRates):
                self.seed_rates.append(out.rates)
            elif isinstance(out, SeedCut):
                self.seed_cut.extend(out.transfers)
            elif isinstance(out, SeedCorrupt):
                self.seed_corrupt.append(out.chunk)
            elif isinstance(out, Synced):
                self.synced.append(out.generation)
            elif isinstance(out, Close):
                self.peers.pop(out.peer, None)
                self.closed[out.peer] = out.reason

    def _react(self, peer: HarnessPeer, msg: p.Message) -> list[p.Message]:
        peer.received.append(msg)
        if isinstance(msg, p.ManifestMsg):
            peer.generation = msg.manifest["generation"]
            peer.downloads.clear()
            return [] if peer.reconciling else self._have(peer, self._chunks())
        if isinstance(msg, p.Download):
            peer.downloads[msg.transfer] = msg
            return [p.Receiving(msg.transfer)] if peer.says_receiving else []
        if isinstance(msg, p.Cancel):
            peer.downloads.pop(msg.transfer, None)
        elif isinstance(msg, p.Rates):
            peer.upload_rates.update(zip(msg.transfers, msg.rates))
        elif isinstance(msg, p.Verify):
            bad = peer.corrupt & set(msg.chunks)
            if bad:
                peer.held -= bad
                peer.corrupt -= bad
                return self._have(peer, self._chunks())
        return []

    @staticmethod
    def _have(peer: HarnessPeer, chunks: set[str]) -> list[p.Message]:
        """Its whole Have, in pieces as a peer sends it."""
        held = sorted(peer.held & chunks)
        return [p.Have(peer.generation, held[k:k + p.HAVE_PIECE], replace=k == 0)
                for k in range(0, max(1, len(held)), p.HAVE_PIECE)]

    def _chunks(self) -> set[str]:
        return {h for h, _ in self.manifest.chunk_table()}
