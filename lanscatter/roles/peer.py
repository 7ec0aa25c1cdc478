"""The peer role: joins a swarm, mirrors the master's folder, serves what it has. A composition:

- `master_link.py`: the control connection (handshake, reconnects, standby gateways, the outbox);
- `peer_folder.py`: the folder and the versions it takes (signature and first-sync checks,
  reconcile, staging and activation, commits, repairs after a corrupt chunk);
- `peer_downloads.py`: the downloads the master commands, one task each;
- `peer_status.py`: the peer's own status document.

This module wires them together, dispatches the master's messages, serves chunks and runs the
scrub. A relay reuses this role as its upstream side: callbacks given at construction see each
validated generation (`on_manifest`), each verified chunk (`on_chunk`, for cut-through), each chunk
whose first bytes are written, with when its download is due (`on_arriving`), each of those that
did not arrive whole (`on_arrival_failed`), and each commit of the tree (`on_commit`, tree
activation: tree_commit.py); a chunk's received prefix is served while it arrives
(chunk_arrivals.py). The node is its relay's `ChunkSource` (`locate`, `have`, `verify`), and
`resume` takes the generation a relay saved before any master answers. What the node holds (its
manifest, the origin's statement) is read-only from outside: only the master's messages change it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Iterator

from aiohttp import web

from lanscatter import __version__
from lanscatter.core import protocol as p
from lanscatter.core.auth import CLOCK_SKEW_S, Auth
from lanscatter.core.errors import RemoteProtocolError
from lanscatter.core.manifest import Manifest
from lanscatter.core.rate_meter import RateMeter
from lanscatter.core.safe_text import safe_text
from lanscatter.core.signing import SignedVersion
from lanscatter.core.status import ActiveVersion, StatusDoc
from lanscatter.disk.scrub import Scrubber
from lanscatter.disk.store import Location, MirrorStore
from lanscatter.net.chunk_arrivals import ChunkArrivals
from lanscatter.net.chunk_fetch import Fetcher
from lanscatter.net.chunk_http import ChunkServer, TrafficCounters
from lanscatter.net.node_http import add_status_endpoints
from lanscatter.net.ratelimit import TokenBucket
from lanscatter.net.server import bind_site
from lanscatter.roles.master_link import MasterLink
from lanscatter.roles.peer_downloads import Downloads, log_crash
from lanscatter.roles.peer_folder import DryRunDone, PeerFolder
from lanscatter.roles.peer_options import PeerOptions
from lanscatter.roles.peer_status import peer_status

log = logging.getLogger(__name__)


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
        self.link = MasterLink(masters=((opts.master, opts.master_port), *opts.alternates), auth=self.auth,
                               tls=opts.tls, local_addr=self._local_addr(), connect_timeout=opts.connect_timeout,
                               hello=self._hello, welcomed=self._welcomed, handle=self._handle,
                               lost=lambda: self.downloads.cancel_all(), stats=self._post_stats)
        self.folder = PeerFolder(opts, post=self.link.post, room=self.link.room,
                                 cancel_downloads=lambda: self.downloads.cancel_all(),
                                 stats=self._post_stats, master_text=lambda: self.link.master_text,
                                 on_manifest=on_manifest, on_commit=on_commit)
        self.ul_bucket = TokenBucket(opts.ul_rate) if opts.ul_rate else None
        self.arrivals = ChunkArrivals()
        self.server = ChunkServer(self.store.locate, self.auth, self.counters,
                                  ul_bucket=self.ul_bucket, compress=opts.compress, arrivals=self.arrivals)
        local = self._local_addr()
        self.fetcher = Fetcher(self.counters, local_addr=local[0] if local else None, threads=opts.dl_slots + 2,
                               tls=opts.tls)
        self.downloads = Downloads(store=self.store, fetcher=self.fetcher, arrivals=self.arrivals,
                                   counters=self.counters,
                                   dl_bucket=TokenBucket(opts.dl_rate) if opts.dl_rate else None,
                                   compress=opts.compress, link=self.link, current=lambda: self.folder.manifest,
                                   verified=self._chunk_verified, arriving=on_arriving,
                                   arrival_failed=on_arrival_failed)
        self._on_chunk = on_chunk            # each chunk verified here
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._rx_meter = RateMeter()

    # ---- what the node holds, as the progress line, the relay and the tests read it ---------
    @property
    def store(self) -> MirrorStore:
        return self.folder.store

    @property
    def manifest(self) -> Manifest | None:
        return self.folder.manifest

    @property
    def signed(self) -> SignedVersion | None:
        """The origin's statement about `manifest`."""
        return self.folder.signed

    @property
    def downloaded_chunks(self) -> int:
        return self.downloads.chunks

    @property
    def downloaded_bytes(self) -> int:
        return self.downloads.bytes

    @property
    def connected(self) -> bool:
        return self.link.connected

    @property
    def control_rx_bytes(self) -> int:
        return self.link.control_rx_bytes

    def complete(self) -> bool:
        return self.folder.complete()

    def sync_seconds(self) -> float | None:
        """Seconds from the current generation's arrival until the folder held it whole, or
        until now while it does not (None before any generation)."""
        taken, done = self.folder.taken_at, self.folder.complete_at
        return None if taken is None else (done if done is not None else time.monotonic()) - taken

    def progress(self) -> tuple[int, int]:
        """(bytes held, dataset bytes) of distinct content (the last figures while reconciling)."""
        return self.folder.progress()

    def active_version(self) -> ActiveVersion | None:
        """The version this host's folder shows."""
        return self.folder.active_version()

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
                                busy=lambda: self.folder.reconciling or self.downloads.busy,
                                on_rotten=lambda chunks: self.verify(chunks, "a chunk held here rotted"))
            scrub = asyncio.create_task(scrubber.run(), name="scrub")
            scrub.add_done_callback(log_crash)
        try:
            await self.link.run()
        except DryRunDone:
            return
        finally:
            if scrub is not None:
                scrub.cancel()
                await asyncio.gather(scrub, return_exceptions=True)

    def _local_addr(self) -> tuple[str, int] | None:
        return None if self.opts.host in ("", "0.0.0.0", "::") else (self.opts.host, 0)

    async def stop(self) -> None:
        await self.downloads.cancel_all()
        if self._runner is not None:
            await self._runner.cleanup()
        self.fetcher.close()
        self.store.close()

    # ---- the master's side -------------------------------------------------------------------
    def _hello(self, addr: str) -> p.Hello:
        """What this node joins with, from `addr` (the address its connection comes from)."""
        o, m = self.opts, self.folder.manifest
        return p.Hello(name=self.name, protocol=p.PROTOCOL_VERSION, min_protocol=p.MIN_PROTOCOL_VERSION,
                       software=__version__, nonce=secrets.token_hex(16), addr=addr,
                       port=self.port if o.serve else 0, dl_slots=o.dl_slots,
                       ul_slots=o.ul_slots if o.serve else 0, role=o.role, generation=m.generation if m else "",
                       gateways=list(o.gateways), term=o.term)

    def _welcomed(self, welcome: p.Welcome, clock_offset: float) -> None:
        self.name = welcome.name
        self.server.clock_offset = clock_offset      # its tokens expire by its clock
        if abs(clock_offset) > CLOCK_SKEW_S:
            log.warning("this host's clock is %.0f s %s the master's: chunk requests are checked by the master's "
                        "clock, but check the clocks (NTP) all the same", abs(clock_offset),
                        "behind" if clock_offset > 0 else "ahead of")

    def post(self, msg: p.Message, min_protocol: int = 1) -> None:
        """Queue a frame for the master if the protocol agreed at the last join carries it."""
        self.link.post(msg, min_protocol)

    async def _handle(self, msg: p.Message) -> None:
        if isinstance(msg, p.ManifestMsg):
            taking = self.folder.take_manifest(msg)
            del msg           # (its columns go once decoded: `take_manifest`)
            await taking
        elif isinstance(msg, p.ManifestDelta):
            await self.folder.take_delta(msg)
        elif isinstance(msg, p.Download):
            self.downloads.start(msg)
        elif isinstance(msg, p.Verify):
            if self.manifest is not None and msg.generation == self.manifest.generation:
                await self.verify(msg.chunks)
        elif isinstance(msg, p.Rates):
            self.server.pacer.set_rates(dict(zip(msg.transfers, msg.rates)))
        elif isinstance(msg, p.Commit):
            await self.folder.take_commit(msg)
        elif isinstance(msg, p.Cancel):
            self.downloads.cancel(msg.transfer)
        elif isinstance(msg, p.Error):
            raise RemoteProtocolError(f"master reported: {safe_text(msg.message)}")
        else:
            raise RemoteProtocolError(f"master sent {msg.TYPE!r}, which only a peer sends")

    def _chunk_verified(self, chunk: str) -> None:
        """A download verified `chunk` and the master was told."""
        self.folder.chunk_held()
        if self.store.complete():
            self._post_stats()      # the master's figures are final even if this peer exits now
        if self._on_chunk:
            self._on_chunk(chunk)

    def _post_stats(self) -> None:
        a = self.active_version()
        self.link.post(p.Stats(self.counters.rx_bytes, self.counters.tx_bytes, self.counters.uploads,
                               self.complete(), *((a.generation, a.label, a.published_ms, a.activated) if a
                                                  else ("", "", 0, 0.0))))

    # ---- as a chunk source (chunk_source.py) ------------------------------------------------
    def locate(self, chunk: str) -> Location | None:
        return self.store.locate(chunk)

    def held_chunks(self) -> Iterator[str]:
        return self.store.held_chunks()

    async def resume(self, manifest: Manifest, signed: SignedVersion) -> None:
        """Take `manifest`, saved by an earlier run, as the current generation before any master
        answered (peer_folder.py)."""
        await self.folder.resume(manifest, signed)

    async def verify(self, chunks: Iterable[str],
                     why: str = "a chunk served from here did not match its hash") -> None:
        """Chunks held here did not match their hashes: read their files again (peer_folder.py)."""
        await self.folder.verify(chunks, why)

    # ---- status ------------------------------------------------------------------------------
    def rates(self) -> tuple[float, float]:
        """(rx, tx) bytes/s over the last seconds, from this node's own counters."""
        self._rx_meter.sample(time.monotonic(), self.counters.rx_bytes, self.counters.tx_bytes)
        return self._rx_meter.rates(time.monotonic())

    def rx_rate(self) -> float:
        return self.rates()[0]

    def status(self) -> StatusDoc:
        return peer_status(self)
