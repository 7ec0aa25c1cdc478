"""The peer role: joins a swarm, mirrors the master's folder, serves what it has.

Connection: the handshake (handshake.py: Challenge -> sealed Hello -> the master's sealed Welcome,
its proof of the secret), then Manifest / Download / Cancel from the master, every frame sealed for
this connection. Nothing the master says is acted on before its Welcome proved the secret. The
peer reconnects with backoff when the master goes away (its folder and verified chunks stay), but
gives up with a clear error when a master it never reached does not answer within
`connect_timeout`, and at once when the master refuses it (wrong secret, protocol version).

A manifest is applied only when the origin's signed statement comes with it and checks out against
the origin's key (`--origin-key`, or the key pinned at first use; `signing_keys.OriginTrust`);
anything else is refused, the folder is left as it is, and the peer reconnects. A folder this node
has not synced before is not wiped: a first sync that would delete anything stops with the list
unless `adopt` (first_sync.py); `dry_run` previews the sync of the first version and ends.

With `alternates` (a site's standby gateways), a peer that loses its master, or is answered 503
by a standby, tries the next one in turn; a frozen master is noticed by a 4 s ping.

A relay reuses this role as its upstream side: callbacks given at construction see each
validated generation (`on_manifest`), each verified chunk (`on_chunk`, for cut-through), each chunk
whose first bytes are written, with when its download is due (`on_arriving`), each of those that
did not arrive whole (`on_arrival_failed`), and each commit of the tree (`on_commit`, tree
activation: tree_commit.py); a chunk's received prefix is served while it arrives
(chunk_arrivals.py). The node is its relay's `ChunkSource` (`locate`, `have`, `verify`),
and `resume` takes the generation a relay saved before any master answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from lanscatter import __version__
from lanscatter.core import protocol as p
from lanscatter.core.auth import Auth
from lanscatter.core.bitmap import Bitmap
from lanscatter.core.errors import (
    ConfigError,
    ManifestError,
    NoSpaceError,
    RemoteProtocolError,
    SignatureError,
)
from lanscatter.core.handshake import Channel, PeerHandshake
from lanscatter.core.manifest import Manifest, manifest_from_dict, show_path
from lanscatter.core.manifest_delta import apply_delta
from lanscatter.core.ports import DEFAULT_PEER_PORT
from lanscatter.core.rate_meter import RateMeter
from lanscatter.core.safe_text import safe_text
from lanscatter.core.signing import OriginKey, SignedVersion, VersionStatement, describes, published_view
from lanscatter.core.status import ActiveVersion, NodeStatus, StagedVersion, StatusDoc, slots_in_use
from lanscatter.core.tree_commit import Commit, HostView, host_action, may_switch
from lanscatter.disk.first_sync import (
    ADOPT_HINT,
    SyncPreview,
    mark_synced,
    preview_sync,
    refusal_text,
    synced_before,
)
from lanscatter.disk.scrub import DEFAULT_SCRUB_RATE, Scrubber
from lanscatter.disk.signing_keys import PIN_FILE, OriginTrust
from lanscatter.disk.staged_store import DEFAULT_KEEP, StagedStore
from lanscatter.disk.store import Location, MirrorStore
from lanscatter.net.chunk_arrivals import ChunkArrivals
from lanscatter.net.chunk_fetch import Fetcher
from lanscatter.net.chunk_http import ChunkServer, TrafficCounters
from lanscatter.net.node_http import add_status_endpoints
from lanscatter.net.ratelimit import TokenBucket
from lanscatter.net.server import TLS_REQUIRED_TEXT, bind_site
from lanscatter.net.tls import PinMismatch, ServerTLS, TLSRefused
from lanscatter.net.upload_pace import Pace

log = logging.getLogger("lanscatter.roles.peer")

_FIRST_JOIN_RETRY_S = 0.2
_FAILOVER_RETRY_S = 1.0        # between masters of a round of gateways
_FAILOVER_HEARTBEAT_S = 4.0    # ping after this long silent, give up half of it later
STANDBY_STATUS = 503           # what a standby gateway answers at /ws (roles/gateway.py) ...
ACTIVE_HEADER = "X-Lanscatter-Active"   # ... naming the active one (host:port) when it knows it
_FAILOVER_JOIN_S = 3.0         # a gateway that does not answer the upgrade by then is frozen: next
# What a folder cannot hold of a generation that passed every check of the manifest (a path too
# long below this folder, a file larger than this file system takes): the generation is refused
# like a malformed one, and the node stays up.
_UNSTORABLE = frozenset({errno.ENAMETOOLONG, errno.EFBIG, errno.EOVERFLOW})

STATS_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class PeerOptions:
    master: str                        # host of the master (or upstream relay)
    master_port: int
    folder: Path
    state_dir: Path
    host: str = "0.0.0.0"              # listen (and connect-from) address
    port: int = DEFAULT_PEER_PORT      # 0: any free port
    name: str = ""
    secret: str | None = None
    ul_rate: float | None = None       # bytes/s
    dl_rate: float | None = None
    dl_slots: int = 2
    ul_slots: int = 2
    compress: bool = True
    connect_timeout: float = 60.0
    role: str = "peer"
    serve: bool = True                 # False: serve no chunks to this swarm (a relay upstream)
    scrub_rate: float = DEFAULT_SCRUB_RATE   # bytes/s of held chunks re-read and checked; 0: none
    tls: ssl.SSLContext | None = None  # connect to the master and to chunk sources over TLS
    tls_server: ServerTLS | None = None    # also serve TLS on the chunk port
    origin_key: OriginKey | None = None  # who may publish versions (None: pin the first signer)
    activate: str = "host"             # "host": stage beside the active version, switch at once
                                       # when complete; "tree": stage, switch on the origin's commit
                                       # (tree_commit.py); "per-file": each file replaced in place
    keep: int = DEFAULT_KEEP           # versions kept (host activation), the active one included
    adopt: bool = False                # delete what the version lacks even in a folder never synced
    dry_run: bool = False              # preview the first version's sync (`preview`), then end
    # Other masters of the same swarm (a site's standby gateways, in the tree's order): when the
    # master goes away or answers as a standby, the next one is tried, round and round.
    alternates: tuple[tuple[str, int], ...] = ()
    # A gateway's relay (gateway_handover.py): its site's gateways ('ip:port', in the tree's
    # order) and the term it was elected with, said in its Hello so that the upstream withdraws
    # the relay it replaces at once.
    gateways: tuple[str, ...] = ()
    term: int = 0


class PeerNode:
    def __init__(self, opts: PeerOptions, *, on_manifest: Callable[[Manifest], None] | None = None,
                 on_chunk: Callable[[str], None] | None = None,
                 on_arriving: Callable[[str, float], None] | None = None,
                 on_arrival_failed: Callable[[str], None] | None = None,
                 on_commit: Callable[[p.Commit], None] | None = None) -> None:
        self.opts = opts
        self.name = opts.name or socket.gethostname()
        self.auth = Auth(opts.secret)
        self.counters = TrafficCounters()
        self.store = (StagedStore(opts.folder, opts.state_dir, opts.keep) if opts.activate in ("host", "tree")
                      else MirrorStore(opts.folder, opts.state_dir))
        self.commit: Commit | None = None          # the tree's last commit (tree_commit.py)
        if isinstance(self.store, StagedStore) and opts.activate == "tree":
            self.store.may_switch = lambda generation: may_switch(True, self.commit, generation)
        self._missing_told: str | None = None       # a rollback to a version not kept here, said once
        self._per_file_active: ActiveVersion | None = None   # per-file: the last version held whole
        self._synced_before = synced_before(opts.state_dir, self.store.folder)
        self.preview: SyncPreview | None = None      # with dry_run: what the sync would do
        # The folder passed the first-sync check in this run: what is in it now was written by
        # this node or listed by a version, so later versions may delete it.
        self._taken_over = False
        self.manifest: Manifest | None = None
        self.signed: SignedVersion | None = None    # the origin's statement about `manifest`
        self.statement: VersionStatement | None = None   # ... as checked
        self.trust = OriginTrust(opts.origin_key, opts.state_dir / PIN_FILE)
        self.ul_bucket = TokenBucket(opts.ul_rate) if opts.ul_rate else None
        self.dl_bucket = TokenBucket(opts.dl_rate) if opts.dl_rate else None
        self.arrivals = ChunkArrivals()
        self.server = ChunkServer(self.store.locate, self.auth, self.counters,
                                  ul_bucket=self.ul_bucket, compress=opts.compress, arrivals=self.arrivals)
        local = self._local_addr()
        self.fetcher = Fetcher(self.counters, local_addr=local[0] if local else None, threads=opts.dl_slots + 2,
                               tls=opts.tls)
        self._on_manifest = on_manifest      # each generation, once the folder is reconciled with it
        self._on_chunk = on_chunk            # each chunk verified here
        self._on_arriving = on_arriving      # (chunk, due by: monotonic) at a download's first bytes
        self._on_arrival_failed = on_arrival_failed    # ... and when that download failed
        self._on_commit = on_commit          # each commit of the tree (a relay passes it down)
        self.connected = False
        self._masters = ((opts.master, opts.master_port), *opts.alternates)
        self._master_index = 0
        self._named_active: tuple[str, int] | None = None    # as the last standby asked said
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._outbox: asyncio.Queue[str] | None = None
        self._joined_once = False            # after a first welcome, never give up reconnecting
        self.connect_attempts = 0            # since the last join (for the operator's state line)
        self.connect_error: str | None = None
        self.sources: dict[str, int] = {}      # downloads in flight by source (for the progress line)
        self._protocol = 1                   # as agreed with the master at the last join
        self.control_rx_bytes = 0            # bytes of the master's control frames (manifests mostly)
        self._verify_lock = asyncio.Lock()
        self._reconcile_lock = asyncio.Lock()   # one reconcile at a time; holdings dropped between
        self._reconciling = False
        self._last_progress = (0, 0)
        self._inflight: set[str] = set()
        self._housekeeping: set[asyncio.Task[None]] = set()    # old versions being deleted
        self.downloaded_chunks = 0          # fetched over the network (for tests and reports)
        self.downloaded_bytes = 0           # their content, before any compression in flight
        self.local_copies = 0
        self._rx_meter = RateMeter()

    # ---- lifecycle ---------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(self.server.routes())
        add_status_endpoints(app, self.status, html=False)
        return app

    async def start_server(self) -> None:
        self._runner, self.port = await bind_site(self.app(), self.opts.host, self.opts.port, self.opts.tls_server)

    async def run(self) -> None:
        """Serve and stay joined until cancelled; raises LanscatterError when refused."""
        if self._runner is None:
            await self.start_server()
        scrub = None
        if self.opts.scrub_rate > 0:
            # Not while reconciling, nor while downloading: a sync under way has the disk first (a
            # rotten chunk served meanwhile is caught by its downloader, and `verify` repairs it).
            scrubber = Scrubber(self.store, self.opts.scrub_rate,
                                busy=lambda: self._reconciling or bool(self._tasks),
                                on_rotten=lambda chunks: self.verify(chunks, "a chunk held here rotted"))
            scrub = asyncio.create_task(scrubber.run(), name="scrub")
            scrub.add_done_callback(_log_crash)
        try:
            await self._run_sessions()
        except _DryRunDone:
            return
        finally:
            if scrub is not None:
                scrub.cancel()
                await asyncio.gather(scrub, return_exceptions=True)

    async def _run_sessions(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, local_addr=self._local_addr())
        async with aiohttp.ClientSession(connector=connector) as session:
            first_try = time.monotonic()
            backoff = 0.5
            while True:
                try:
                    self.connect_attempts += 1
                    await self._session_once(session)
                    backoff = 0.5
                except (aiohttp.ClientConnectionError, ConnectionError, TimeoutError) as exc:
                    self.connect_error = connect_failure(exc)
                    if not self._joined_once and time.monotonic() - first_try > self.opts.connect_timeout:
                        raise ConfigError(
                            f"the master at {self.master_text} did not answer for "
                            f"{self.opts.connect_timeout:.0f} s ({self.connect_error})",
                            "check the address and port, that the master runs there, and that no firewall "
                            "blocks the port; --connect-timeout waits longer") from None
                    log.debug("connect failed: %s", exc)
                except RemoteProtocolError as exc:
                    log.warning("master connection closed: %s", exc)
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is None or task.cancelling():
                        raise                  # we are being stopped
                    # A cancellation meant for a download reached the session: never a silent exit.
                    log.error("the master connection was cancelled from inside; reconnecting")
                finally:
                    self.connected = False
                    await self._cancel_all()
                if len(self._masters) > 1:
                    # Whichever gateway is active answers; a standby takes over within seconds, so
                    # the round of them is tried again soon, from the one a standby named.
                    self._master_index = (self._master_index + 1) % len(self._masters)
                    if self._named_active in self._masters:
                        self._master_index = self._masters.index(self._named_active)
                    self._named_active = None
                    await asyncio.sleep(min(backoff, _FAILOVER_RETRY_S))
                    backoff = min(backoff * 2, 5.0)
                elif self._joined_once:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                else:
                    # Not joined yet: the master is usually just starting, and a refused connect
                    # costs nothing, so try often; the first generation should not wait for us.
                    await asyncio.sleep(_FIRST_JOIN_RETRY_S)

    def _standby_named(self, active: str) -> None:
        """A standby said which gateway is active (host:port): the next attempt goes there."""
        host, sep, port = active[:300].rpartition(":")
        if sep and port.isdigit():
            self._named_active = (host.strip("[]"), int(port))

    @property
    def master_text(self) -> str:
        """The master this node joins (or tries next), as host:port."""
        host, port = self._masters[self._master_index]
        return f"{host}:{port}"

    @property
    def joined_once(self) -> bool:
        return self._joined_once

    def _local_addr(self) -> tuple[str, int] | None:
        return None if self.opts.host in ("", "0.0.0.0", "::") else (self.opts.host, 0)

    async def stop(self) -> None:
        await self._cancel_all()
        if self._runner is not None:
            await self._runner.cleanup()
        self.fetcher.close()
        self.store.close()

    # ---- one connection ----------------------------------------------------------------------
    async def _session_once(self, session: aiohttp.ClientSession) -> None:
        host, port = self._masters[self._master_index]
        url = f"{'wss' if self.opts.tls else 'http'}://{host}:{port}/ws"
        # The manifest is the one large frame, and only a master sends it: the limit is sized for
        # it; frames before the Welcome are held to MAX_FRAME before they are parsed.
        # With standby gateways, a frozen or cut-off master must be noticed before one takes over.
        heartbeat = _FAILOVER_HEARTBEAT_S if len(self._masters) > 1 else 20
        join_limit = _FAILOVER_JOIN_S if len(self._masters) > 1 else None
        async with _refused_as_error(host, port, self._standby_named), \
                _ws_within(session, join_limit, url, heartbeat=heartbeat, max_msg_size=p.MAX_MANIFEST_FRAME,
                                   ssl=self.opts.tls or True, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
            self._ws = ws
            sockname = ws.get_extra_info("sockname")
            hs = PeerHandshake(self.auth, p.Hello(
                name=self.name, protocol=p.PROTOCOL_VERSION, min_protocol=p.MIN_PROTOCOL_VERSION,
                software=__version__, nonce=secrets.token_hex(16), addr=sockname[0] if sockname else "",
                port=self.port if self.opts.serve else 0, dl_slots=self.opts.dl_slots,
                ul_slots=self.opts.ul_slots if self.opts.serve else 0, role=self.opts.role,
                generation=self.manifest.generation if self.manifest else "",
                gateways=list(self.opts.gateways), term=self.opts.term),
                them=f"the master at {host}:{port}")
            await ws.send_bytes(hs.receive_challenge(await _handshake_frame(ws)))
            welcome = hs.receive_welcome(await _handshake_frame(ws))
            channel = hs.channel
            assert channel is not None
            self.name = welcome.name
            self._protocol = welcome.protocol
            self.connected = True
            self._joined_once = True
            self.connect_attempts, self.connect_error = 0, None
            log.info("joined %s as %s", url, self.name)
            # Every frame to the master goes through one writer task: download tasks are cancelled
            # freely (new generation, Cancel), a send must never be cut off half-way, and frames
            # are sealed in the order they go out.
            outbox: asyncio.Queue[str] = asyncio.Queue()
            self._outbox = outbox
            helpers = [asyncio.create_task(self._writer(ws, outbox, channel)),
                       asyncio.create_task(self._stats_loop())]
            try:
                async for msg in ws:
                    if msg.type == WSMsgType.BINARY:
                        self.control_rx_bytes += len(msg.data)
                        await self._handle(p.decode(channel.open(msg.data, "the master"), "the master",
                                                    p.MAX_MANIFEST_FRAME))
                    elif msg.type == WSMsgType.TEXT:
                        raise RemoteProtocolError("the master sent an unsealed frame")
            finally:
                self._outbox = None
                for t in helpers:
                    t.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                self._ws = None

    def _ending_notice(self, transfer: int) -> Callable[[float], None] | None:
        """What a download thread calls when its last bytes are on their way (masters speaking
        protocol 2 plan the slot's next transfer then)."""
        if self._protocol < 2:
            return None
        loop = asyncio.get_running_loop()

        def notice(left_s: float) -> None:
            loop.call_soon_threadsafe(self._post, p.Ending(transfer, round(left_s, 3)))
        return notice

    def _receiving_notice(self, transfer: int) -> Callable[[], None] | None:
        """What a download thread calls at its first bytes (masters speaking protocol 4 share the
        ports it crosses with it from then on)."""
        if self._protocol < 4:
            return None
        loop = asyncio.get_running_loop()

        def notice() -> None:
            loop.call_soon_threadsafe(self._post, p.Receiving(transfer))
        return notice

    def post(self, msg: p.Message, min_protocol: int = 1) -> None:
        """Queue a frame for the master if the protocol agreed at the last join carries it."""
        if self._protocol >= min_protocol:
            self._post(msg)

    def _post(self, msg: p.Message) -> None:
        """Queue a frame for the master (dropped when not connected: the next join resends state)."""
        if self._outbox is not None:
            self._outbox.put_nowait(p.encode(msg))

    @staticmethod
    async def _writer(ws: aiohttp.ClientWebSocketResponse, outbox: asyncio.Queue[str], channel: Channel) -> None:
        while True:
            text = await outbox.get()
            try:
                await ws.send_bytes(channel.seal(text.encode()))
            except ConnectionError as exc:
                log.debug("master connection lost while sending: %s", exc)
                return

    async def _handle(self, msg: p.Message) -> None:
        if isinstance(msg, p.ManifestMsg):
            await self._take_manifest(msg)
        elif isinstance(msg, p.ManifestDelta):
            await self._take_delta(msg)
        elif isinstance(msg, p.Download):
            if msg.transfer not in self._tasks:
                task = asyncio.create_task(self._download(msg))
                task.add_done_callback(_log_crash)
                self._tasks[msg.transfer] = task
        elif isinstance(msg, p.Verify):
            if self.manifest is not None and msg.generation == self.manifest.generation:
                await self.verify(msg.chunks)
        elif isinstance(msg, p.Rates):
            self.server.pacer.set_rates(dict(zip(msg.transfers, msg.rates)))
        elif isinstance(msg, p.Commit):
            await self._take_commit(msg)
        elif isinstance(msg, p.Cancel):
            if (running := self._tasks.get(msg.transfer)) is not None:
                del self._tasks[msg.transfer]
                running.cancel()
        elif isinstance(msg, p.Error):
            raise RemoteProtocolError(f"master reported: {safe_text(msg.message)}")
        else:
            raise RemoteProtocolError(f"master sent {msg.TYPE!r}, which only a peer sends")

    async def _take_commit(self, msg: p.Commit) -> None:
        """The tree's commit (tree_commit.py): switch to the committed version if it is staged
        whole here, roll back to a kept one, or wait; a relay passes it on to its site."""
        self.commit = Commit(msg.generation, msg.instead)
        if self._on_commit:
            self._on_commit(msg)
        store = self.store
        if not isinstance(store, StagedStore):
            return
        async with self._reconcile_lock:
            record = store.versions.active_record()
            view = HostView(tree=self.opts.activate == "tree",
                            current=self.manifest.generation if self.manifest else None,
                            staged_whole=self.complete(), active=record.generation if record else None,
                            kept=store.kept())
            action, generation = host_action(view, self.commit)
            if action == "switch" and store.switch(lift_tree_hold=True):
                self._prune_soon(store)
            elif action == "rollback":
                store.rollback_to(generation)
            elif action == "missing" and self._missing_told != generation:
                self._missing_told = generation
                log.warning("the tree was rolled back to generation %s, which %s does not keep: it stays "
                            "on its version", generation[:12], store.folder)
        self._post_stats()

    async def _take_manifest(self, msg: p.ManifestMsg) -> None:
        """A manifest from the master: decoded and checked, its signature checked, then applied.
        One this node refuses (malformed, out of bounds, or that this folder cannot hold) ends the
        connection with a clear line, like any malformed message; the node stays up and joins
        again."""
        try:
            manifest = manifest_from_dict(msg.manifest)
        except ManifestError as exc:
            raise RemoteProtocolError(f"the master sent a manifest this node refuses: {exc}") from None
        await self._take_version(manifest, SignedVersion(msg.statement, msg.signature))

    async def _take_delta(self, msg: p.ManifestDelta) -> None:
        """A generation as its changes from the one held: rebuilt (off the event loop: a large
        manifest takes a while), and taken only if it is exactly what the origin signed; a delta
        that is not (malformed, for another base, or building something else) costs a warning and
        the whole manifest, asked for once."""
        base, signed = self.manifest, SignedVersion(msg.statement, msg.signature)
        loop = asyncio.get_running_loop()
        problem = "this node holds no generation " + msg.base[:12]
        if base is not None and base.generation == msg.base:
            try:
                manifest = await loop.run_in_executor(None, apply_delta, base, msg.delta)
                if await loop.run_in_executor(None, describes, manifest, signed):
                    await self._take_version(manifest, signed)
                    return
                problem = "it does not rebuild the generation the origin signed"
            except ManifestError as exc:
                problem = str(exc)
        log.warning("a manifest delta from the master is refused (%s): asking for the whole manifest",
                    safe_text(problem))
        self._post(p.ManifestWanted(msg.generation))

    async def _take_version(self, manifest: Manifest, signed: SignedVersion) -> None:
        """A generation decoded and checked: its signature checked, then applied."""
        statement = await self._check_signed(manifest, signed)
        if self.opts.dry_run or not (self.opts.adopt or self._synced_before or self._taken_over):
            await self._first_sync_check(manifest)
            self._taken_over = True
        self.signed = signed
        self.statement = statement
        if isinstance(self.store, StagedStore):
            self.store.label = statement.label      # kept with the version: `rollback --to LABEL`
            self.store.published_ms = statement.published_ms
        try:
            await self._new_manifest(manifest)
        except NoSpaceError as exc:
            # The active version is intact; the next join (with backoff) tries again.
            log.warning("%s (hint: %s)", exc.message, exc.hint)
            raise RemoteProtocolError("waiting for disk space") from None
        except OSError as exc:
            if exc.errno not in _UNSTORABLE:
                raise
            raise RemoteProtocolError(f"generation {manifest.generation[:12]} cannot be stored in "
                                      f"{self.store.folder}: {exc.strerror}") from None

    async def _check_signed(self, manifest: Manifest, signed: SignedVersion) -> VersionStatement:
        """Only a version the origin signed reaches the folder. Anything else ends this connection
        (whoever sent it holds the swarm secret, but not the origin's key). The digest of a large
        manifest takes a while (0.2 s for 100k files): not on the event loop."""
        try:
            return await asyncio.get_running_loop().run_in_executor(None, self.trust.check, manifest, signed)
        except SignatureError as exc:
            log.error("refused a version from %s, the folder is left as it is: %s%s", self.master_text,
                      exc, f" (hint: {exc.hint})" if exc.hint else "")
            raise RemoteProtocolError("the master sent a version the origin did not sign") from None

    async def _first_sync_check(self, manifest: Manifest) -> None:
        """A folder not synced before: stop rather than delete what the version lacks; with
        dry_run, keep the preview of the whole sync and end the run."""
        preview = await asyncio.get_running_loop().run_in_executor(
            None, preview_sync, self.store.folder, manifest, self.store.cache if self.opts.dry_run else None)
        if self.opts.dry_run:
            self.preview = preview
            raise _DryRunDone
        if preview.delete:
            raise ConfigError(refusal_text(self.store.folder, preview), ADOPT_HINT)

    def _note_synced(self) -> None:
        """After the first complete sync the folder is this node's: later versions may delete."""
        if not self._synced_before and self.complete():
            mark_synced(self.opts.state_dir, self.store.folder)
            self._synced_before = True

    # ---- as a chunk source (chunk_source.py) ------------------------------------------------
    def locate(self, chunk: str) -> Location | None:
        return self.store.locate(chunk)

    def have(self) -> set[str]:
        return self.store.have()

    async def resume(self, manifest: Manifest, signed: SignedVersion) -> None:
        """Take `manifest`, saved by an earlier run, as the current generation before any master
        answered (a relay serving its site while its upstream is away): checked against the
        origin's key like any version (SignatureError otherwise), the folder reconciled with it.
        Nothing is announced: the master hears of the holdings when it is joined."""
        statement = self.trust.check(manifest, signed)
        if isinstance(self.store, StagedStore):
            self.store.label = statement.label
            self.store.published_ms = statement.published_ms
        await asyncio.get_running_loop().run_in_executor(None, self.store.reconcile, manifest)
        self.manifest = manifest
        self.signed = signed
        self.statement = statement

    async def verify(self, chunks: Iterable[str],
                     why: str = "a chunk served from here did not match its hash") -> None:
        """Chunks held here did not match their hashes (a downloader found one corrupt, or the
        scrub did): a file changed or rotted under the same size and mtime, so its cached hashes
        are wrong. Drop the chunks, read the files holding them afresh, fetch what no longer
        matches and announce the holdings again. Downloads under way go back to the master
        without blame."""
        async with self._verify_lock:
            async with self._reconcile_lock:        # never while a reconcile rebuilds the holdings
                m = self.manifest
                if m is None:
                    return
                files = self.store.forget_chunks(set(chunks))
            if not files:
                return
            log.warning("%s: reading %s again", why,
                        f"'{show_path(files[0])}'" if len(files) == 1 else f"{len(files)} files")
            running = list(self._tasks)
            await self._cancel_all()
            for transfer in running:
                self._post(p.Report(transfer, False, 0.0, "the peer is reading its files again", blameless=True))
            await self._new_manifest(m, again=True)

    async def _new_manifest(self, manifest: Manifest, *, again: bool = False) -> None:
        """Reconcile the folder with `manifest` (again: only if it is still the current one; a
        newer one taken meanwhile has read the folder afresh already)."""
        await self._cancel_all()
        async with self._reconcile_lock:
            if again and self.manifest is not manifest:
                return
            # The store changes in a worker thread meanwhile: status readers must not look into it.
            self._reconciling = True
            try:
                stats = await asyncio.get_running_loop().run_in_executor(None, self.store.reconcile, manifest)
            finally:
                self._reconciling = False
        self.manifest = manifest
        self._note_synced()
        self.local_copies += stats.copied_chunks
        have = self.store.have()
        log.info("generation %s: %d/%d chunks present (%d resumed, %d copied locally, %d deleted)",
                 manifest.generation[:12], len(have), len(manifest.chunk_table()),
                 stats.resumed_chunks, stats.copied_chunks, len(stats.deleted))
        if self._on_manifest:
            self._on_manifest(manifest)
        # In pieces, the first replacing the set and the others adding to it: no frame to the
        # master is longer than its limit (p.MAX_FRAME), however many chunks there are.
        held = sorted(have)
        self._post(p.Have(manifest.generation, held[:p.HAVE_PIECE], replace=True))
        for k in range(p.HAVE_PIECE, len(held), p.HAVE_PIECE):
            self._post(p.Have(manifest.generation, held[k:k + p.HAVE_PIECE]))

    def _prune_soon(self, store: StagedStore) -> None:
        prune = asyncio.create_task(self._prune(store))
        self._housekeeping.add(prune)
        prune.add_done_callback(self._housekeeping.discard)
        prune.add_done_callback(_log_crash)

    async def _prune(self, store: StagedStore) -> None:
        """Old versions deleted after a switch, in a worker thread, never during a reconcile."""
        async with self._reconcile_lock:
            if store.prune_due:
                await asyncio.get_running_loop().run_in_executor(None, store.prune)

    async def _download(self, d: p.Download) -> None:
        try:
            await self._download_inner(d)
        finally:
            self._tasks.pop(d.transfer, None)

    async def _download_inner(self, d: p.Download) -> None:
        m = self.manifest
        gen = m.generation if m else ""
        target = self.store.chunk_target(d.chunk)
        if target is None or d.chunk in self._inflight:
            ok = self.store.has(d.chunk)
            self._post(p.Report(d.transfer, ok, 0.0, "" if ok else "not wanted"))
            return
        fd, offset, length = target
        log.debug("fetching %s from %s", d.chunk[:8], d.source)
        self._inflight.add(d.chunk)
        self.counters.downloads += 1
        self.sources[d.source] = self.sources.get(d.source, 0) + 1
        due = time.monotonic() + d.timeout_s
        # Served while it arrives (its prefix, to downloaders that verify the whole); the stream
        # is cut unless it is verified and held here at the end.
        arrival = self.arrivals.begin(d.chunk, fd, offset, length,
                                      first_bytes=lambda: self._arriving(d.chunk, due))
        verified = False
        try:
            try:
                result = await self.fetcher.fetch(
                    d.url, d.chunk, length, token=d.token, fd=fd, offset=offset,
                    timeout_s=d.timeout_s,
                    buckets=[b for b in (self.dl_bucket,) if b],
                    pace=Pace(d.rate_cap, d.group, d.group_rate, d.transfer),
                    ending=self._ending_notice(d.transfer), receiving=self._receiving_notice(d.transfer),
                    progress=arrival.advance, accept_lz4=self.opts.compress)
            finally:
                self._inflight.discard(d.chunk)
                self.counters.downloads -= 1
                if (left := self.sources.pop(d.source, 1) - 1) > 0:
                    self.sources[d.source] = left
            if self.manifest is None or self.manifest.generation != gen:
                return
            if result.ok:
                self.downloaded_chunks += 1
                self.downloaded_bytes += length
                self.store.chunk_verified(d.chunk, fd, offset)
                verified = True
                self.arrivals.end(arrival, ok=True)
                if isinstance(self.store, StagedStore) and self.store.prune_due:
                    self._prune_soon(self.store)
                self._note_synced()
            else:
                log.info("chunk %s from %s failed: %s", d.chunk[:8], d.source, result.error)
        finally:
            if not verified:
                self.arrivals.end(arrival, ok=False)
                if arrival.received and self._on_arrival_failed is not None:
                    self._on_arrival_failed(d.chunk)
        # Report first: the planner learns the outcome of its transfer, then the new holding.
        self._post(p.Report(d.transfer, result.ok, result.seconds, safe_text(result.error), result.corrupt,
                            result.blameless))
        if result.ok:
            self._post(p.Have(gen, [d.chunk]))
            if self.store.complete():
                self._post_stats()      # the master's figures are final even if this peer exits now
            if self._on_chunk:
                self._on_chunk(d.chunk)

    def _arriving(self, chunk: str, due: float) -> None:
        if self._on_arriving is not None:
            self._on_arriving(chunk, due)

    def rates(self) -> tuple[float, float]:
        """(rx, tx) bytes/s over the last seconds, from this node's own counters."""
        self._rx_meter.sample(time.monotonic(), self.counters.rx_bytes, self.counters.tx_bytes)
        return self._rx_meter.rates(time.monotonic())

    def rx_rate(self) -> float:
        return self.rates()[0]

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            self._post_stats()

    def _post_stats(self) -> None:
        a = self.active_version()
        self._post(p.Stats(self.counters.rx_bytes, self.counters.tx_bytes, self.counters.uploads,
                           self.complete(), *((a.generation, a.label, a.published_ms, a.activated) if a
                                              else ("", "", 0, 0.0))))

    def active_version(self) -> ActiveVersion | None:
        """(generation, label, published_ms, switched at) of the version this host's folder shows:
        the active version (host and tree activation), or in per-file mode the last version the
        folder held whole."""
        if isinstance(self.store, StagedStore):
            try:
                record = self.store.versions.active_record()
            except ConfigError:
                return None
            if record is None:
                return None
            return ActiveVersion(record.generation, record.label, record.published_ms, record.activated)
        m, statement = self.manifest, self.statement
        if (m is not None and self.complete() and statement is not None and statement.generation == m.generation
                and (self._per_file_active is None or self._per_file_active.generation != m.generation)):
            self._per_file_active = ActiveVersion(m.generation, statement.label, statement.published_ms, time.time())
        return self._per_file_active

    def staged_version(self, active: ActiveVersion | None) -> StagedVersion | None:
        """The version being staged beside the `active` one: its generation, label and progress
        (share of its bytes held), and whether it is whole (tree activation: waiting for the commit)."""
        m = self.manifest
        if m is None or (active is not None and active.generation == m.generation):
            return None
        held, total = self.progress()
        statement = self.statement
        return StagedVersion(m.generation, statement.label if statement and statement.generation == m.generation
                             else "", held / total if total else 1.0, self.complete())

    async def _cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- status ------------------------------------------------------------------------------
    def complete(self) -> bool:
        return self.manifest is not None and not self._reconciling and self.store.complete()

    def progress(self) -> tuple[int, int]:
        """(bytes held, dataset bytes) of distinct content (the last figures while reconciling)."""
        m = self.manifest
        if m is None or self._reconciling or self.store.manifest is not m:
            return self._last_progress
        missing = self.store.missing_chunks()
        sizes = dict(m.chunk_table())
        self._last_progress = (m.total_bytes - sum(sizes.get(h, 0) for h in missing), m.total_bytes)
        return self._last_progress

    def status(self) -> StatusDoc:
        m = self.manifest
        n = len(m.chunk_table()) if m else 0
        have = Bitmap(n)
        inflight = Bitmap(n)
        rates = self.rates()
        if m is not None and not self._reconciling:
            index = m.chunk_index()
            for h in self.store.have():
                if h in index:
                    have.set(index[h])
            for h in self._inflight:
                if h in index:
                    inflight.set(index[h])
        c, o = self.counters, self.opts
        node = NodeStatus(
            name=self.name, role=o.role, online=self.connected,
            have=have.count, bitmap=have.encode(), inflight=inflight.encode(),
            downloads=c.downloads, uploads=c.uploads, dl_slots=o.dl_slots, ul_slots=o.ul_slots,
            dl_slots_used=slots_in_use(c.downloads, o.dl_slots), ul_slots_used=slots_in_use(c.uploads, o.ul_slots),
            rx_bytes=c.rx_bytes, tx_bytes=c.tx_bytes, rx_rate=rates[0], tx_rate=rates[1],
            downloaded_chunks=self.downloaded_chunks, local_copies=self.local_copies,
            active=(active := self.active_version()), staged=self.staged_version(active),
        )
        return StatusDoc(
            role=o.role, name=self.name, time=time.time(),
            generation=m.generation if m else None, chunks=n, bytes=m.total_bytes if m else 0,
            synced=self.complete(), published=published_view(self.signed, m.generation if m else None),
            active=node.active, staged=node.staged, nodes=(node,), insecure=not self.auth.secure,
            control_rx_bytes=self.control_rx_bytes,
        )


def connect_failure(exc: BaseException) -> str:
    """Why a connection to the master failed, in words (aiohttp's text names TLS settings even for
    plain HTTP: 'ssl:default')."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        err = exc.os_error
        if isinstance(err, socket.gaierror):
            # a resolver's error numbers are not errno values (-2 would read "unknown error -2")
            return f"cannot resolve {exc.host}: {err.strerror or 'no such host'}"
        text = os.strerror(err.errno) if err.errno else (err.strerror or str(err))
        return text[:1].lower() + text[1:]
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timed out"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"answered HTTP {exc.status}, not a lanscatter master"
    return str(exc) or type(exc).__name__


@contextlib.asynccontextmanager
async def _ws_within(session: aiohttp.ClientSession, limit: float | None, url: str,
                     **kwargs: Any) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A websocket to `url` whose upgrade is answered within `limit` seconds (None: no limit
    beyond the session's): a frozen master accepts the connection and never answers."""
    ws = await asyncio.wait_for(session.ws_connect(url, **kwargs), limit)
    try:
        yield ws
    finally:
        await ws.close()


@contextlib.asynccontextmanager
async def _refused_as_error(host: str, port: int,
                            standby_named: Callable[[str], None] | None = None) -> AsyncIterator[None]:
    """A master that is not the pinned one, or that speaks only TLS to a peer without it: the
    operator must act, so it is an error exit, not a reconnect."""
    try:
        yield
    except aiohttp.ClientConnectorCertificateError as exc:
        got = exc.certificate_error
        what = f"its certificate's fingerprint is {got.got}" if isinstance(got, PinMismatch) else str(got)
        raise TLSRefused(f"the master at {host}:{port} is not the one this node trusts: {what}",
                         "check the master's tls_fingerprint in the site tree (`lanscatter tls "
                         "fingerprint` on the master's certificate) or --tls-fingerprint/--tls-ca") from None
    except aiohttp.ClientConnectorSSLError as exc:
        raise TLSRefused(f"no TLS with the master at {host}:{port} ({exc.os_error})",
                         "the site tree's tls: for this link must be the same on both hosts") from None
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status == STANDBY_STATUS:
            if standby_named is not None and exc.headers is not None:
                standby_named(exc.headers.get(ACTIVE_HEADER, ""))
            raise StandbyAnswer(f"{host}:{port} is a standby gateway") from None
        if exc.status != 426:
            # A web server, or anything else that is no lanscatter master: tried again like a
            # master that does not answer (the next gateway, or until --connect-timeout).
            raise NotAMaster(f"{host}:{port} answered HTTP {exc.status}, not a lanscatter master") from None
        raise TLSRefused(f"the master at {host}:{port} says: {TLS_REQUIRED_TEXT.strip()}",
                         "give this node --tls-fingerprint (or --tls-ca), as the site tree's tls: says") from None


async def _handshake_frame(ws: aiohttp.ClientWebSocketResponse) -> str | bytes:
    """The master's next handshake frame; a master that closes or stalls is a connection failure
    (retried), not a refusal."""
    msg = await ws.receive(timeout=15)
    if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
        raise ConnectionError("the master closed the connection during the handshake")
    data: str | bytes = msg.data
    if len(data) > p.MAX_FRAME:        # (the connection's limit is a manifest's)
        raise RemoteProtocolError(f"the master sent a handshake frame of {len(data)} bytes")
    return data


class StandbyAnswer(ConnectionError):
    """The master asked is a standby gateway: try the next one."""


class NotAMaster(ConnectionError):
    """What answered at the master's address is no lanscatter master."""


class _DryRunDone(Exception):
    """The dry run's preview is taken: the run ends (not an error)."""


def _log_crash(task: asyncio.Task[None]) -> None:
    """A download task that dies of a bug must say so (the swarm would otherwise just stall)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("download task failed: %r", exc, exc_info=exc)
