"""The websocket shell of one swarm: accepts control connections, runs the join handshake, feeds
the swarm's session what arrives and carries out what it decides; and the swarm's status.

Used by a master (content from its scanned folder) and by a relay's downstream side (content
arriving from upstream, announced chunk by chunk). Every decision is the session's
(core/session.py) and its planner's; this module moves frames, reads the clocks, runs the tick.

Per connection: the handshake (handshake.py: Challenge -> sealed Hello, checked for the secret, the
protocol and the peer's address -> sealed Welcome), then Manifest, Have/Report/Stats from the peer
and Download/Cancel from here, every frame sealed for this connection. Any malformed, out-of-order
or unsealed frame closes that connection with an Error; the swarm carries on. Each Download carries
a token for that chunk, from that peer's address, at that source, for a short while (auth.py).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from lanscatter import __version__
from lanscatter.core import protocol as p
from lanscatter.core.auth import Auth, endpoint, normal_ip
from lanscatter.core.bitmap import Bitmap
from lanscatter.core.errors import RemoteProtocolError
from lanscatter.core.handshake import MAC_BYTES, Channel, MasterHandshake, Refused
from lanscatter.core.linkmap import LinkMap
from lanscatter.core.manifest import Manifest
from lanscatter.core.planner import Planner, Transfer
from lanscatter.core.rate_meter import RateMeter
from lanscatter.core.safe_text import NAME_LIMIT, TEXT_LIMIT, safe_text
from lanscatter.core.session import PreparedDelta, SwarmSession
from lanscatter.core.session_types import (
    Close,
    Event,
    Note,
    Now,
    Output,
    PeerState,
    SeedCorrupt,
    SeedCut,
    SeedRates,
    Send,
)
from lanscatter.core.signing import SignedVersion, published_view
from lanscatter.core.status import ActiveVersion, NodeStatus, StagedVersion, StatusDoc, StatusEvent
from lanscatter.core.tree_commit import Readiness

log = logging.getLogger("lanscatter.roles.swarm")

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
HELLO_TIMEOUT_S = 15.0
EVENT_LIMIT = 500   # characters of an event message (it may quote remote names and texts)


@dataclass(eq=False)
class _Connection:
    """One member's control websocket: what the session needs no part of."""

    ws: web.WebSocketResponse
    channel: Channel             # seals and opens this connection's frames
    sending: asyncio.Lock = field(default_factory=asyncio.Lock)   # frames sealed in the order sent
    outbox: deque[p.Message] = field(default_factory=deque)       # what the session sent, not yet written
    writer: asyncio.Future[None] | None = None                     # writing the outbox out, while it is not empty


def _report_crash(task: asyncio.Task[None]) -> None:
    """A planner loop must never stop silently: a bug there would stall the whole swarm."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("planner loop crashed", exc_info=task.exception())


def _seal_pieces(channel: Channel, msg: p.Message) -> bytes:
    return channel.seal_pieces(p.encode_pieces(msg))


def _now() -> Now:
    return Now(time.monotonic(), time.time())


class Swarm:
    def __init__(self, *, name: str, auth: Auth, seed_slots: int, link_map: LinkMap | None = None,
                 site: str | None = None, role: str = "master", seed: int | None = None,
                 allow_nat: bool = False, seed_uploads: Callable[[], int] | None = None,
                 seed_rates: Callable[[dict[int, float]], None] | None = None,
                 seed_cut: Callable[[tuple[int, ...]], object] | None = None,
                 on_seed_corrupt: Callable[[str], None] | None = None,
                 seed_active: Callable[[], ActiveVersion | None] | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        """The seed's side comes in as callbacks: `seed_uploads` counts its uploads under way,
        `seed_rates` paces them (transfer id -> bytes/s), `seed_cut` stops those withdrawn,
        `on_seed_corrupt` hears of a chunk a
        downloader got corrupt from it, `seed_active` says which version the seed shows, `on_change`
        hears that the tree's readiness may have changed (tree activation). Given here only: the
        swarm's callbacks are not changed once it is built."""
        self.name = name
        self.auth = auth
        self.allow_nat = allow_nat       # accept peers whose own address is not the one we see
        self.site = site
        self.role = role
        self.link_map = link_map
        self.seed_slots = seed_slots
        self.session = SwarmSession(name=name, auth=auth, seed_slots=seed_slots, link_map=link_map,
                                    seed=seed, work_clock=time.perf_counter)
        self.events: deque[StatusEvent] = deque(maxlen=50)
        self._seed_uploads: Callable[[], int] = seed_uploads or (lambda: 0)
        self._own_rates = RateMeter()
        self._seed_rates: Callable[[dict[int, float]], None] = seed_rates or (lambda rates: None)
        self._seed_cut: Callable[[tuple[int, ...]], object] = seed_cut or (lambda transfers: None)
        self._connections: dict[str, _Connection] = {}
        self._closing: set[asyncio.Future[None]] = set()    # connections the session withdrew, closing
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._on_seed_corrupt = on_seed_corrupt      # our own file changed
        # Tree activation (tree_commit.py): `on_change` runs when what the members hold whole,
        # show or summarise may have changed (the session's tree_epoch moved).
        self._on_change = on_change
        self._seed_active: Callable[[], ActiveVersion | None] = seed_active or (lambda: None)
        self._tree_seen = 0

    # The session's state, as the status and the roles read it.
    @property
    def planner(self) -> Planner:
        return self.session.planner

    @property
    def manifest(self) -> Manifest | None:
        return self.session.manifest

    @property
    def signed(self) -> SignedVersion | None:
        return self.session.signed

    @property
    def generation_at(self) -> float:
        return self.session.generation_at

    @property
    def seed_complete_at(self) -> float:
        return self.session.seed_complete_at

    @property
    def seed_have(self) -> Bitmap:
        return self.session.seed_have

    @property
    def peers(self) -> dict[str, PeerState]:
        return self.session.peers

    @property
    def gone(self) -> dict[str, PeerState]:
        return self.session.gone

    @property
    def transfers(self) -> dict[int, Transfer]:
        return self.session.transfers

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._plan_loop(), name=f"planner:{self.name}")
        self._task.add_done_callback(_report_crash)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for conn in list(self._connections.values()):
            await conn.ws.close()
        for closing in list(self._closing):
            closing.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)

    def event(self, level: str, message: str) -> None:
        """Log and keep an event for the status page; the message may quote remote text, so it
        is shortened and escaped here, whatever built it."""
        message = safe_text(message, EVENT_LIMIT)
        self.events.append(StatusEvent(time.time(), level, message))
        log.log(_LEVELS.get(level, logging.INFO), "%s: %s", self.name, message)

    # ---- content -----------------------------------------------------------------------------
    def set_manifest(self, manifest: Manifest, seed_has: Iterable[str] | None = None,
                     signed: SignedVersion | None = None, delta: PreparedDelta | None = None) -> None:
        """A new generation (session.py). seed_has None: the seed holds every chunk. `delta`: its
        changes from the generation before, made off the loop (`prepare_delta`)."""
        self._apply(self.session.set_manifest(manifest, _now(), seed_has, signed, delta))

    def seed_lost(self, chunk: str) -> None:
        self.session.seed_lost(chunk)

    def seed_got(self, chunk: str) -> None:
        self.session.seed_got(chunk, _now())
        self._wake.set()

    def suspect(self, peer: str, chunk: str) -> None:
        self._apply(self.session.suspect(peer, chunk))

    def synced(self) -> bool:
        return self.session.synced()

    def seed_arriving(self, chunk: str, due: float) -> None:
        """`due`: monotonic, as the session's clock (session.py)."""
        if self.session.seed_arriving(chunk, due):
            self._wake.set()

    def seed_arrival_failed(self, chunk: str) -> None:
        self.session.seed_arrival_failed(chunk)

    # ---- control websocket -------------------------------------------------------------------
    async def handle_ws(self, request: web.Request) -> web.WebSocketResponse:
        # A peer never sends anything longer than MAX_FRAME (its Have goes in pieces), so that
        # holds from the first byte: before login nobody can make us buffer more.
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=p.MAX_FRAME + MAC_BYTES)
        await ws.prepare(request)
        remote = request.remote or "?"
        name: str | None = None
        conn: _Connection | None = None
        try:
            joined = await self._handshake(ws, request)
            if joined is None:
                return ws
            name, conn = joined
            async for msg in ws:
                if self._connections.get(name) is not conn:
                    break                       # withdrawn by the session (Close): it is gone there
                if msg.type == WSMsgType.BINARY:
                    frame = p.decode(conn.channel.open(msg.data, name), name, p.MAX_FRAME)
                    self._apply(self.session.receive(name, frame, _now()))
                elif msg.type == WSMsgType.TEXT:
                    raise RemoteProtocolError(f"{name} sent an unsealed frame")
        except RemoteProtocolError as exc:
            self.event("warning", f"closing {name or remote}: {exc}")
            error = p.Error("protocol", safe_text(exc, TEXT_LIMIT))
            if conn is not None:
                await self._send(conn, error)
            else:
                await self._send_text(ws, p.encode(error))
        except TimeoutError:
            self.event("warning", f"closing {remote}: no hello within {HELLO_TIMEOUT_S:.0f} s")
        except ConnectionError as exc:
            # The transport closed under a write (a pong aiohttp sends for a ping, or a frame to a
            # member going away): that member left, as when its socket ends.
            log.info("connection of %s lost: %s", safe_text(name or remote, TEXT_LIMIT), safe_text(exc, TEXT_LIMIT))
        finally:
            await ws.close()
            if name is not None and self._connections.get(name) is conn:
                del self._connections[name]
                self._apply(self.session.leave(name))
        return ws

    async def _handshake(self, ws: web.WebSocketResponse,
                         request: web.Request) -> tuple[str, _Connection] | None:
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
        # The name as this swarm knows it from now on: in logs, events, status and its Welcome.
        name = self.session.name_for(safe_text(outcome.hello.name, NAME_LIMIT) or remote or "peer")
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        welcome, channel = hs.welcome(name, int(time.time() * 1000))
        if ws.closed:
            return None
        await ws.send_bytes(welcome)
        conn = self._connections[name] = _Connection(ws, channel)
        self._apply(self.session.join(
            name, outcome.hello, _now(), addr=remote, protocol=outcome.version,
            seed_url=f"{request.scheme}://{request.host}",
            seed_source=endpoint(sockname[0], sockname[1]) if sockname else "", addr_proven=not self.allow_nat))
        return name, conn

    # ---- planning ----------------------------------------------------------------------------
    async def _plan_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.session.wake_in(time.monotonic())):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            self._apply(self.session.tick(_now()), wake=False)

    # ---- carrying out ------------------------------------------------------------------------
    def _apply(self, outputs: list[Output], *, wake: bool = True) -> None:
        """Carry out what the session decided, in order. After any input but a tick a plan may be
        worth running at once: `wake` the planner loop."""
        for out in outputs:
            if isinstance(out, Send):
                if (conn := self._connections.get(out.peer)) is not None:
                    self._post(conn, out.msg)
            elif isinstance(out, Event):
                self.event(out.level, out.message)
            elif isinstance(out, Note):
                log.info("%s: %s", self.name, out.message)
            elif isinstance(out, SeedRates):
                self._seed_rates(out.rates)
            elif isinstance(out, SeedCut):
                self._seed_cut(out.transfers)
            elif isinstance(out, SeedCorrupt) and self._on_seed_corrupt:
                self._on_seed_corrupt(out.chunk)
            elif isinstance(out, Close) and (conn := self._connections.pop(out.peer, None)) is not None:
                closing = asyncio.ensure_future(self._close(conn, out.reason))
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
        if self.session.tree_epoch != self._tree_seen:
            self._tree_seen = self.session.tree_epoch
            if self._on_change is not None:
                self._on_change()
        if wake:
            self._wake.set()

    # ---- sending -----------------------------------------------------------------------------
    def _post(self, conn: _Connection, msg: p.Message) -> None:
        """Queue a frame the session sent. One task writes a connection's queue out while it is
        not empty, rather than a task a frame: a busy master sends thousands a second."""
        conn.outbox.append(msg)
        if conn.writer is None:
            conn.writer = asyncio.ensure_future(self._drain(conn))

    async def _drain(self, conn: _Connection) -> None:
        try:
            async with conn.sending:
                while conn.outbox:
                    await self._write(conn, conn.outbox.popleft())
        finally:
            conn.writer = None

    async def _send(self, conn: _Connection, msg: p.Message) -> None:
        """Seal and send one frame now (behind a queue being written)."""
        async with conn.sending:
            await self._write(conn, msg)

    @staticmethod
    async def _write(conn: _Connection, msg: p.Message) -> None:
        """Seal and write one frame, holding `conn.sending`: the lock keeps the wire in the order
        of the sequence numbers (a frame sealed first is written first)."""
        if conn.ws.closed:
            return
        if isinstance(msg, p.ManifestMsg):
            # Tens of megabytes at a million files: encoded and sealed in a worker thread (the
            # lock keeps the sequence), from pieces, and the message let go before the write
            # (the transport copies what the socket does not take at once).
            frame = await asyncio.get_running_loop().run_in_executor(None, _seal_pieces, conn.channel, msg)
        else:
            frame = conn.channel.seal(p.encode(msg).encode())
        del msg
        try:
            await conn.ws.send_bytes(frame)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("send failed: %s", exc)

    async def _close(self, conn: _Connection, reason: str) -> None:
        """End a connection the session withdrew: the reason, then the close (a frozen peer never
        answers it: aiohttp drops the connection after its close timeout)."""
        await self._send(conn, p.Error("replaced", safe_text(reason, TEXT_LIMIT)))
        async with conn.sending:
            await conn.ws.close()

    @staticmethod
    async def _send_text(ws: web.WebSocketResponse, text: str) -> None:
        """An unsealed frame: the Challenge, or an Error before a session exists."""
        if ws.closed:
            return
        try:
            await ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("send failed: %s", exc)

    # ---- tree activation ---------------------------------------------------------------------
    def readiness(self, own: tuple[str, bool] | None = None) -> Readiness | None:
        return self.session.readiness(own)

    def set_commit(self, commit: p.Commit) -> None:
        self._apply(self.session.set_commit(commit), wake=False)

    # ---- status ------------------------------------------------------------------------------
    def _avg_upload(self, name: str) -> float | None:
        """Mean seconds per chunk uploaded by this node (the planner measures it)."""
        return self.planner.node_stats(name).avg_upload_s

    def _staged_view(self, active: ActiveVersion | None, have: Bitmap, whole: bool) -> StagedVersion | None:
        """A node's version being staged: the current generation, while it is not the one shown."""
        m = self.manifest
        if m is None or (active is not None and active.generation == m.generation):
            return None
        pub = published_view(self.signed, m.generation)
        return StagedVersion(m.generation, pub.label if pub else "",
                             have.count / have.size if have.size else 1.0, whole)

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
            uploads=self._seed_uploads(), dl_slots=0, ul_slots=self.seed_slots, ul_slots_used=seed_used,
            rx_bytes=rx_bytes, tx_bytes=tx_bytes, rx_rate=own_rx, tx_rate=own_tx,
            avg_upload_s=self._avg_upload(self.name),
            complete_at=self.seed_complete_at if m and self.seed_have.count == self.seed_have.size else None,
            active=(seed_active := self._seed_active()),
            staged=self._staged_view(seed_active, self.seed_have, self.seed_have.count == self.seed_have.size),
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
                complete_at=link.complete_at, active=link.active,
                # (a host before protocol 8 does not say which version it shows)
                staged=(self._staged_view(link.active, link.have, link.complete)
                        if link.online and link.protocol >= 8 else None),
            ))
        return StatusDoc(
            role=self.role, name=self.name, site=self.site, time=time.time(),
            generation=m.generation if m else None, chunks=len(m.chunk_table()) if m else 0,
            generation_at=self.generation_at if m else None,
            chunking=m.chunking_kind if m else None, chunk_size=m.chunk_size if m else 0,
            bytes=m.total_bytes if m else 0, synced=self.synced(),
            published=published_view(self.signed, m.generation if m else None),
            active=nodes[0].active, staged=nodes[0].staged,
            nodes=tuple(nodes), events=tuple(self.events),
            insecure=not self.auth.secure,
        )
