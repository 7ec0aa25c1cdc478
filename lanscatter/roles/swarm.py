"""The coordinator of one swarm: control websockets, the planner loop, the swarm's status.

Used by a master (content from its scanned folder) and by a relay's downstream side (content
arriving from upstream, announced chunk by chunk). Every decision is the planner's; this module only
moves messages between peers and the planner and keeps the per-node view for the status page.

Per connection: the handshake (handshake.py: Challenge -> sealed Hello, checked for the secret, the
protocol and the peer's address -> sealed Welcome), then Manifest, Have/Report/Stats from the peer
and Download/Cancel from here, every frame sealed for this connection. Any malformed, out-of-order
or unsealed frame closes that connection with an Error; the swarm carries on. Each Download carries
a token for that chunk, from that peer's address, at that source, for a short while (auth.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from lanscatter import __version__
from lanscatter.core import protocol as p
from lanscatter.core.auth import TOKEN_TTL_S, Auth, endpoint, normal_ip
from lanscatter.core.bitmap import Bitmap
from lanscatter.core.errors import RemoteProtocolError
from lanscatter.core.handshake import MAC_BYTES, Channel, MasterHandshake, Refused
from lanscatter.core.linkmap import LinkMap
from lanscatter.core.manifest import Manifest
from lanscatter.core.planner import Planner, Transfer
from lanscatter.core.rate_meter import RateMeter
from lanscatter.core.safe_text import NAME_LIMIT, TEXT_LIMIT, safe_text
from lanscatter.core.signing import SignedVersion, published_view
from lanscatter.core.sizes import format_bytes
from lanscatter.core.status import NodeStatus, StatusDoc, StatusEvent

log = logging.getLogger("lanscatter.roles.swarm")

PLAN_TICK_S = 0.5
SILENT_S = 5.0      # peers send Stats every second: this long without a word, one is frozen or cut off
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
HELLO_TIMEOUT_S = 15.0
GONE_LIMIT = 1024   # nodes that left, still shown (as down) in the status
EVENT_LIMIT = 500   # characters of an event message (it may quote remote names and texts)
RATE_STEP = 0.02    # a fair rate that moved less than this share is not worth a message
SHARE_DUTY = 3.0    # after sharing for t seconds, wait SHARE_DUTY * t before sharing again


@dataclass(eq=False)
class PeerLink:
    name: str
    ws: web.WebSocketResponse
    channel: Channel             # seals and opens this connection's frames
    addr: str                    # the address we see it at: its chunk requests must come from there
    url: str                     # where this peer serves chunks
    source: str                  # ... as its chunk server sees itself ('ip:port', for tokens)
    seed_url: str                # where this peer reaches us
    seed_source: str             # ... as our chunk server sees itself ('ip:port', for tokens)
    role: str
    dl_slots: int
    ul_slots: int
    have: Bitmap
    inflight: Bitmap
    rx_bytes: int = 0
    tx_bytes: int = 0
    uploads: int = 0
    downloads: int = 0
    complete: bool = False
    complete_at: float | None = None     # when it became complete (wall clock, like status "time")
    online: bool = True
    planned: bool = False        # known to the planner (after its first full Have)
    protocol: int = 1            # as agreed at its join
    heard_at: float = field(default_factory=time.monotonic)   # its last message (monotonic clock)
    silent: bool = False         # nothing heard for SILENT_S: nothing more is planned to it
    rates: RateMeter = field(default_factory=RateMeter)
    sending: asyncio.Lock = field(default_factory=asyncio.Lock)   # frames sealed in the order sent


def _report_crash(task: asyncio.Task[None]) -> None:
    """A planner loop must never stop silently: a bug there would stall the whole swarm."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("planner loop crashed", exc_info=task.exception())


class Swarm:
    def __init__(self, *, name: str, auth: Auth, seed_slots: int, link_map: LinkMap | None = None,
                 site: str | None = None, role: str = "master", seed: int | None = None,
                 allow_nat: bool = False) -> None:
        self.name = name
        self.auth = auth
        self.allow_nat = allow_nat       # accept peers whose own address is not the one we see
        self.site = site
        self.role = role
        self.link_map = link_map
        self.seed_slots = seed_slots
        self.planner = Planner(links=link_map, rng=random.Random(seed))
        self.planner.add_node(name, dl_slots=0, ul_slots=seed_slots, seed=True)
        self.manifest: Manifest | None = None
        self.signed: SignedVersion | None = None
        # When the current generation was set, and when the seed held all of it (wall clock: the
        # status carries these and its own "time", so a poller can time events to the second
        # whatever its poll rate, without trusting its own clock to match ours).
        self.generation_at = 0.0
        self.seed_complete_at = 0.0
        self.seed_have = Bitmap(0)
        self.peers: dict[str, PeerLink] = {}
        self.gone: dict[str, PeerLink] = {}       # nodes that left, shown as down
        self.events: deque[StatusEvent] = deque(maxlen=50)
        self.transfers: dict[int, Transfer] = {}
        self.seed_uploads: Callable[[], int] = lambda: 0
        self._own_rates = RateMeter()
        self.seed_rates: Callable[[dict[int, float]], None] = lambda rates: None   # for our own uploads
        self._rates_sent: dict[int, float] = {}       # transfer id -> the rate its source was last given
        self._waiting: set[int] = set()    # transfers whose first bytes have not arrived (protocol 4)
        self._ends: dict[int, float] = {}  # released transfers -> when their last byte is due (monotonic)
        self._shared_at: tuple[int, int, int] = (-1, -1, -1)   # (flights epoch, waiting, ended) at the last share
        self._share_next = 0.0             # no sharing before this (monotonic): see _share
        self._share_pending = False        # shares moved while sharing had to wait
        self._wake = asyncio.Event()
        self._silence_checked = 0.0
        self._task: asyncio.Task[None] | None = None
        self.on_generation_synced: Callable[[str], None] | None = None
        self.on_seed_corrupt: Callable[[str], None] | None = None   # our own file changed

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._plan_loop(), name=f"planner:{self.name}")
        self._task.add_done_callback(_report_crash)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for link in list(self.peers.values()):
            await link.ws.close()

    def event(self, level: str, message: str) -> None:
        """Log and keep an event for the status page; the message may quote remote text, so it
        is shortened and escaped here, whatever built it."""
        message = safe_text(message, EVENT_LIMIT)
        self.events.append(StatusEvent(time.time(), level, message))
        log.log(_LEVELS.get(level, logging.INFO), "%s: %s", self.name, message)

    # ---- content -----------------------------------------------------------------------------
    def set_manifest(self, manifest: Manifest, seed_has: set[str] | None = None,
                     signed: SignedVersion | None = None) -> None:
        """A new generation. seed_has None: the seed holds every chunk (a master's own folder).
        `signed`: the origin's statement about it, sent with it to every peer."""
        self.signed = signed
        if self.manifest is not None and manifest.generation == self.manifest.generation:
            # The same content again: a master's rescan found it whole after all, or a relay says
            # what its folder holds (at a rejoin, or after checking its files). The seed holds that.
            if seed_has is not None or self.seed_have.count < self.seed_have.size:
                self._set_seed_holdings(manifest, seed_has)
                self._wake.set()
            return
        # Peers drop every transfer when they take a new generation: withdraw them all here too.
        for t in list(self.transfers.values()):
            self.planner.cancel(t.id)
            self._untrack(t)
        self.transfers.clear()
        self.manifest = manifest
        self.generation_at = time.time()
        table = manifest.chunk_table()
        self.planner.set_chunks(list(table))
        self.seed_complete_at = self.generation_at
        self._set_seed_holdings(manifest, seed_has)
        for link in self.peers.values():
            link.have = Bitmap(len(table))
            link.inflight = Bitmap(len(table))
            self._set_complete(link, False)
            asyncio.ensure_future(self._send(link, self._manifest_msg(manifest)))
        self.event("info", f"generation {manifest.generation[:12]}: {len(manifest.files)} files, "
                           f"{len(table)} chunks, {format_bytes(manifest.total_bytes)} "
                           f"({manifest.chunking_kind} chunking, {format_bytes(manifest.chunk_size)} target)")
        self._wake.set()

    def _manifest_msg(self, manifest: Manifest) -> p.ManifestMsg:
        s = self.signed
        return p.ManifestMsg(manifest.to_dict(), statement=s.statement if s else "",
                             signature=s.signature if s else "")

    def _set_seed_holdings(self, manifest: Manifest, seed_has: set[str] | None) -> None:
        """The seed holds every chunk of `manifest` (seed_has None) or those of seed_has."""
        table, index = manifest.chunk_table(), manifest.chunk_index()
        self.seed_have = Bitmap(len(table))
        if seed_has is None:
            self.seed_have.fill()
            held = [h for h, _ in table]
        else:
            held = [h for h in seed_has if h in index]
            for h in held:
                self.seed_have.set(index[h])
        self.planner.set_have(self.name, held)

    def seed_lost(self, chunk: str) -> None:
        """The seed cannot serve this chunk any more (its file changed; a rescan is coming): stop
        planning it from the seed instead of failing transfer after transfer."""
        if self.manifest is None:
            return
        i = self.manifest.chunk_index().get(chunk)
        if i is not None and i in self.seed_have:
            self.seed_have.clear(i)
            table = self.manifest.chunk_table()
            self.planner.set_have(self.name, [h for k, (h, _) in enumerate(table) if k in self.seed_have])

    def seed_got(self, chunk: str) -> None:
        """The seed (a relay) verified one more chunk: it can serve it from now on."""
        if self.manifest is None:
            return
        i = self.manifest.chunk_index().get(chunk)
        if i is not None and i not in self.seed_have:
            self.seed_have.set(i)
            if self.seed_have.count == self.seed_have.size:
                self.seed_complete_at = time.time()
            self.planner.add_have(self.name, chunk)
            self._wake.set()

    # ---- control websocket -------------------------------------------------------------------
    async def handle_ws(self, request: web.Request) -> web.WebSocketResponse:
        # A peer never sends anything longer than MAX_FRAME (its Have goes in pieces), so that
        # holds from the first byte: before login nobody can make us buffer more.
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=p.MAX_FRAME + MAC_BYTES)
        await ws.prepare(request)
        remote = request.remote or "?"
        link: PeerLink | None = None
        try:
            link = await self._handshake(ws, request)
            if link is None:
                return ws
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    self._handle(link, p.decode(link.channel.open(msg.data, link.name), link.name, p.MAX_FRAME))
                elif msg.type == WSMsgType.TEXT:
                    raise RemoteProtocolError(f"{link.name} sent an unsealed frame")
        except RemoteProtocolError as exc:
            who = link.name if link else remote
            self.event("warning", f"closing {who}: {exc}")
            error = p.Error("protocol", safe_text(exc, TEXT_LIMIT))
            if link is not None:
                await self._send(link, error)
            else:
                await self._send_text(ws, p.encode(error))
        except TimeoutError:
            self.event("warning", f"closing {remote}: no hello within {HELLO_TIMEOUT_S:.0f} s")
        finally:
            await ws.close()
            if link is not None and self.peers.get(link.name) is link:
                self._drop(link)
        return ws

    async def _handshake(self, ws: web.WebSocketResponse, request: web.Request) -> PeerLink | None:
        remote = normal_ip(request.remote or "")
        hs = MasterHandshake(self.auth, secrets.token_hex(16), software=__version__)
        await self._send_text(ws, hs.challenge())
        async with asyncio.timeout(HELLO_TIMEOUT_S):
            msg = await ws.receive()
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None
        outcome = hs.receive_hello(msg.data, seen_from=remote, allow_nat=self.allow_nat, them=remote or "peer")
        if isinstance(outcome, Refused):
            await self._send_text(ws, outcome.frame)
            self.event("warning", f"refused a peer from {remote}: {outcome.error.message}")
            return None
        hello, version = outcome.hello, outcome.version
        # The name as this swarm knows it from now on: in logs, events, status and its Welcome.
        name = self._unique_name(safe_text(hello.name, NAME_LIMIT) or remote or "peer")
        host = f"[{remote}]" if ":" in remote else remote
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        n = len(self.manifest.chunk_table()) if self.manifest else 0
        welcome, channel = hs.welcome(name)
        link = PeerLink(name=name, ws=ws, channel=channel, addr=remote,
                        url=f"http://{host}:{hello.port}" if hello.port else "",
                        source=endpoint(remote, hello.port),
                        seed_url=f"{request.scheme}://{request.host}",
                        seed_source=endpoint(sockname[0], sockname[1]) if sockname else "",
                        role=safe_text(hello.role, 16), dl_slots=max(0, hello.dl_slots),
                        ul_slots=max(0, hello.ul_slots if hello.port else 0),
                        have=Bitmap(n), inflight=Bitmap(n), protocol=version)
        if ws.closed:
            return None
        await ws.send_bytes(welcome)
        self.peers[name] = link
        self.gone.pop(name, None)
        self.event("info", f"{name} joined from {remote}")
        if self.manifest is not None:
            await self._send(link, self._manifest_msg(self.manifest))
        return link

    def _unique_name(self, want: str) -> str:
        name, k = want, 2
        while name in self.peers or name == self.name:
            name, k = f"{want}-{k}", k + 1
        return name

    @staticmethod
    def _set_complete(link: PeerLink, complete: bool) -> None:
        if complete and not link.complete:
            link.complete_at = time.time()
        elif not complete:
            link.complete_at = None
        link.complete = complete

    def _handle(self, link: PeerLink, msg: p.Message) -> None:
        link.heard_at = time.monotonic()
        if link.silent:
            link.silent = False
            self.planner.set_dl_slots(link.name, link.dl_slots)
        m = self.manifest
        if isinstance(msg, p.Have):
            if m is None or msg.generation != m.generation:
                return                       # about an older generation: ignore
            index = m.chunk_index()
            if msg.replace:
                link.have = Bitmap(len(index))
                if not link.planned:     # plannable only once its holdings are known
                    self.planner.add_node(link.name, dl_slots=link.dl_slots, ul_slots=link.ul_slots)
                    link.planned = True
                self.planner.set_have(link.name, [h for h in msg.chunks if h in index])
            elif link.planned:
                for h in msg.chunks:
                    if h in index:
                        self.planner.add_have(link.name, h)
            for h in msg.chunks:
                if h in index:
                    link.have.set(index[h])
            self._set_complete(link, link.have.count == link.have.size)
            self._check_synced()
        elif isinstance(msg, p.Report):
            if not self._owns(link, msg.transfer):
                return
            t = self.transfers.pop(msg.transfer)
            self._untrack(t)
            now = time.monotonic()
            if not msg.ok and msg.blameless:
                log.info("%s: chunk %s to %s withdrawn: %s", self.name, t.chunk[:8], t.dest, safe_text(msg.error))
                self.planner.cancel(t.id)          # no verdict on the source; planned again
            elif not msg.ok:
                source_is_seed = t.source == self.name
                self.event("warning", f"{t.dest} failed to get chunk {t.chunk[:8]} from {t.source}: "
                                      f"{msg.error}")
                # A corrupt chunk from our own folder means the file changed under us: rescan, but
                # never ban the seed.
                self.planner.finish(t.id, now, ok=False, corrupt=msg.corrupt and not source_is_seed)
                if msg.corrupt and source_is_seed and self.on_seed_corrupt:
                    self.on_seed_corrupt(t.chunk)
                elif msg.corrupt:
                    self.suspect(t.source, t.chunk)
            else:
                self.planner.finish(t.id, now, ok=True)
        elif isinstance(msg, p.Receiving):
            if self._owns(link, msg.transfer):
                self._waiting.discard(msg.transfer)
        elif isinstance(msg, p.Ending):
            if self._owns(link, msg.transfer):
                self.planner.release(msg.transfer)
                self._ends[msg.transfer] = time.monotonic() + max(0.0, msg.seconds)
        elif isinstance(msg, p.Stats):
            link.rx_bytes, link.tx_bytes, link.uploads = msg.rx_bytes, msg.tx_bytes, msg.uploads
            link.rates.sample(time.monotonic(), msg.rx_bytes, msg.tx_bytes)
        else:
            raise RemoteProtocolError(f"{link.name} sent {msg.TYPE!r}, which only a master sends")
        self._wake.set()

    def _owns(self, link: PeerLink, transfer: int) -> bool:
        """Whether `transfer` is under way to `link`: a peer speaks only of its own downloads."""
        t = self.transfers.get(transfer)
        return t is not None and t.dest == link.name

    def _drop(self, link: PeerLink) -> None:
        del self.peers[link.name]
        link.online = False
        self.gone[link.name] = link
        while len(self.gone) > GONE_LIMIT:      # names churning must not grow the status for good
            del self.gone[next(iter(self.gone))]
        for t in self.planner.remove_node(link.name) if link.planned else []:
            self.transfers.pop(t.id, None)
            self._untrack(t)
            if t.dest != link.name and t.dest in self.peers:
                self._cancel(t)
        self.event("info", f"{link.name} left")
        self._wake.set()

    # ---- planning ----------------------------------------------------------------------------
    async def _plan_loop(self) -> None:
        while True:
            tick, now = PLAN_TICK_S, time.monotonic()
            due = [at - now for at in self._ends.values() if at > now]
            if self._share_pending:
                due.append(self._share_next - now)
            if due:              # wake when a released transfer's share falls free, or to share
                tick = min(tick, max(0.001, min(due)))
            try:
                async with asyncio.timeout(tick):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            now = time.monotonic()
            self._mind_silent_peers(now)
            for t in self.planner.expire(now):
                self.transfers.pop(t.id, None)
                self._untrack(t)
                self.event("warning", f"slow source {t.source}: chunk {t.chunk[:8]} to {t.dest} timed out")
                self._cancel(t)
            if self.manifest is None:
                continue
            self._share(now, self.planner.plan(now))

    def _share(self, now: float, new: list[Transfer]) -> None:
        """Start the new transfers at their fair shares and tell sources the shares that moved.

        A released transfer past its last byte's due time leaves its share to the others (its
        report is on its way). A new transfer starts at its share among all; the others give it
        that share only once its bytes arrive (until then its request is on its way and they can
        use it). Sharing takes milliseconds in a swarm of a thousand peers: it runs at most
        1 / (1 + SHARE_DUTY) of the time, new transfers starting at their booked rate meanwhile."""
        for t in new:
            if (dest := self.peers.get(t.dest)) is not None and dest.protocol >= 4:
                self._waiting.add(t.id)
        ended = {tid for tid, at in self._ends.items() if at <= now}
        # (between plans waiting only shrinks and ended only grows: their sizes tell whether they
        # changed)
        shared = (self.planner.flights_epoch, len(self._waiting), len(ended))
        if now < self._share_next:
            for t in new:
                self._start(t, t.rate_cap if t.rate_cap is not None else math.inf)
            self._share_pending = shared != self._shared_at
            return
        began = time.perf_counter()
        first = self.planner.fair_rates((self._waiting - {t.id for t in new}) | ended) if new else {}
        for t in new:
            self._start(t, first.get(t.id, math.inf))
        if shared != self._shared_at:
            self._shared_at = shared
            self._send_rates(self.planner.fair_rates(self._waiting | ended))
        self._share_pending = False
        self._share_next = now + SHARE_DUTY * (time.perf_counter() - began)

    def _mind_silent_peers(self, now: float) -> None:
        """A peer that has said nothing for SILENT_S (frozen, suspended, cut off) gets no new
        downloads until it speaks again (_handle gives them back), and its transfers past their
        timeout are withdrawn with no verdict on their source: the stall is the downloader's, and
        expire() would charge the source as slow."""
        if now - self._silence_checked < PLAN_TICK_S:
            return
        self._silence_checked = now
        for link in self.peers.values():
            if link.planned and not link.silent and now - link.heard_at >= SILENT_S:
                link.silent = True
                self.planner.set_dl_slots(link.name, 0)
        for t in list(self.transfers.values()):
            dest = self.peers.get(t.dest)
            if now < t.started + t.timeout_s or dest is None or not dest.silent:
                continue
            self.planner.cancel(t.id)
            self.transfers.pop(t.id, None)
            self._untrack(t)
            self.event("warning", f"{t.dest} is silent: chunk {t.chunk[:8]} from {t.source} withdrawn")
            self._cancel(t)

    def suspect(self, peer: str, chunk: str) -> None:
        """`peer` served `chunk` corrupt: the planner no longer takes it as a source, and a peer
        speaking protocol 3 is asked to read its files again; its fresh Have makes it one again."""
        link = self.peers.get(peer)
        if link is None or self.manifest is None or link.protocol < 3:
            return
        self.event("warning", f"{peer} served chunk {chunk[:8]} corrupt: asked to check its files")
        asyncio.ensure_future(self._send(link, p.Verify(self.manifest.generation, [chunk])))

    def _paced_here(self, t: Transfer) -> bool:
        """Whether t's source takes new rates while it sends: both ends speak protocol 4 (the
        downloader names the transfer in its request; the source is us or takes Rates). A WAN
        link's transfers are paced together by their source instead."""
        if t.pace_group is not None:
            return False
        dest, source = self.peers.get(t.dest), self.peers.get(t.source)
        return (dest is not None and dest.protocol >= 4
                and (t.source == self.name or (source is not None and source.protocol >= 4)))

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
                self.seed_rates(dict(zip(ids, values)))
            elif (link := self.peers.get(source)) is not None:
                asyncio.ensure_future(self._send(link, p.Rates(ids, values)))

    def _start(self, t: Transfer, fair: float = math.inf) -> None:
        dest = self.peers.get(t.dest)
        source_link = self.peers.get(t.source)
        if dest is not None and t.source == self.name:
            source_url, source = dest.seed_url, dest.seed_source
        elif source_link is not None:
            source_url, source = source_link.url, source_link.source
        else:
            source_url = source = ""
        if dest is None or not source_url:
            self.planner.finish(t.id, time.monotonic(), ok=False)
            return
        self.transfers[t.id] = t
        self._track(t)
        group, group_rate = t.pace_group or (None, None)
        rate = t.pace_cap
        if math.isfinite(fair) and self._paced_here(t):
            rate = self._rates_sent[t.id] = fair
        token = self.auth.chunk_token(t.chunk, dest.addr, source, int(time.time()) + TOKEN_TTL_S)
        asyncio.ensure_future(self._send(dest, p.Download(t.id, t.chunk, t.size, t.source, source_url,
                                                          t.timeout_s, rate, group, group_rate, token)))

    def _track(self, t: Transfer) -> None:
        idx = self.manifest.chunk_index().get(t.chunk) if self.manifest else None
        if (dest := self.peers.get(t.dest)) is not None:
            dest.downloads += 1
            if idx is not None:
                dest.inflight.set(idx)

    def _untrack(self, t: Transfer) -> None:
        self._rates_sent.pop(t.id, None)
        self._waiting.discard(t.id)
        self._ends.pop(t.id, None)
        idx = self.manifest.chunk_index().get(t.chunk) if self.manifest else None
        if (dest := self.peers.get(t.dest)) is not None:
            dest.downloads = max(0, dest.downloads - 1)
            if idx is not None:
                dest.inflight.clear(idx)

    def _cancel(self, t: Transfer) -> None:
        if (dest := self.peers.get(t.dest)) is not None:
            asyncio.ensure_future(self._send(dest, p.Cancel(t.id)))

    def _check_synced(self) -> None:
        if self.manifest and self.synced() and self.on_generation_synced:
            self.on_generation_synced(self.manifest.generation)

    def synced(self) -> bool:
        return (self.manifest is not None and self.seed_have.count == self.seed_have.size
                and all(link.complete for link in self.peers.values()))

    # ---- sending -----------------------------------------------------------------------------
    async def _send(self, link: PeerLink, msg: p.Message) -> None:
        """Seal and send one frame. Sends run as tasks: the lock keeps the wire in the order of the
        sequence numbers (a frame sealed first is written first)."""
        async with link.sending:
            if link.ws.closed:
                return
            try:
                await link.ws.send_bytes(link.channel.seal(p.encode(msg).encode()))
            except (ConnectionError, RuntimeError) as exc:
                log.debug("send failed: %s", exc)

    @staticmethod
    async def _send_text(ws: web.WebSocketResponse, text: str) -> None:
        """An unsealed frame: the Challenge, or an Error before a session exists."""
        if ws.closed:
            return
        try:
            await ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("send failed: %s", exc)

    # ---- status ------------------------------------------------------------------------------
    def _avg_upload(self, name: str) -> float | None:
        """Mean seconds per chunk uploaded by this node (the planner measures it)."""
        return self.planner.node_stats(name).avg_upload_s
    def _slots_used(self, name: str, dl_slots: int, ul_slots: int) -> tuple[int, int]:
        """The slots the planner counts as taken on `name` (transfers beside the slots, ones
        released as they end, are not in them), never above the slots the node has."""
        stats = self.planner.node_stats(name)
        return min(stats.dl_in_slots, dl_slots), min(stats.ul_in_slots, ul_slots)

    def status(self, *, rx_bytes: int = 0, tx_bytes: int = 0) -> StatusDoc:
        m = self.manifest
        now = time.monotonic()
        # Our own rates from our own counters (a relay's tx is what it serves its site).
        self._own_rates.sample(now, rx_bytes, tx_bytes)
        own_rx, own_tx = self._own_rates.rates(now)
        _, seed_used = self._slots_used(self.name, 0, self.seed_slots)
        nodes = [NodeStatus(
            name=self.name, site=self.site, role=self.role, online=True,
            have=self.seed_have.count, bitmap=self.seed_have.encode(),
            inflight=Bitmap(self.seed_have.size).encode(), downloads=0,
            uploads=self.seed_uploads(), dl_slots=0, ul_slots=self.seed_slots, ul_slots_used=seed_used,
            rx_bytes=rx_bytes, tx_bytes=tx_bytes, rx_rate=own_rx, tx_rate=own_tx,
            avg_upload_s=self._avg_upload(self.name),
            complete_at=self.seed_complete_at if m and self.seed_have.count == self.seed_have.size else None,
        )]
        for link in [*self.peers.values(), *self.gone.values()]:
            rx_rate, tx_rate = link.rates.rates(now) if link.online else (0.0, 0.0)
            in_planner = link.online and link.planned
            dl_used, ul_used = self._slots_used(link.name, link.dl_slots, link.ul_slots) if in_planner else (0, 0)
            nodes.append(NodeStatus(
                name=link.name, site=self.link_map.site_of(link.name) if self.link_map else self.site,
                role=link.role, online=link.online, have=link.have.count,
                bitmap=link.have.encode(), inflight=link.inflight.encode(),
                downloads=link.downloads, uploads=link.uploads, dl_slots=link.dl_slots,
                ul_slots=link.ul_slots, dl_slots_used=dl_used, ul_slots_used=ul_used,
                rx_bytes=link.rx_bytes, tx_bytes=link.tx_bytes, rx_rate=rx_rate, tx_rate=tx_rate,
                avg_upload_s=self._avg_upload(link.name) if in_planner else None,
                complete_at=link.complete_at,
            ))
        return StatusDoc(
            role=self.role, name=self.name, site=self.site, time=time.time(),
            generation=m.generation if m else None, chunks=len(m.chunk_table()) if m else 0,
            generation_at=self.generation_at if m else None,
            chunking=m.chunking_kind if m else None, chunk_size=m.chunk_size if m else 0,
            bytes=m.total_bytes if m else 0, synced=self.synced(),
            published=published_view(self.signed, m.generation if m else None),
            nodes=tuple(nodes), events=tuple(self.events),
            insecure=not self.auth.secure,
        )
