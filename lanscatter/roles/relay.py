"""The relay (`lanscatter proxy`): a peer of the upstream swarm and the master of its own site,
in one process over one folder.

- It takes the manifest from upstream (no scan, no hashing of its own) and announces every chunk
  downstream the moment it is verified (cut-through): the site's peers spread chunk 1 while chunk 2
  is still crossing the WAN. Below the chunk too: once a chunk's first bytes are here, its site's
  peers may be sent it and get its prefix as it arrives (chunk_arrivals.py); they verify the whole,
  and a chunk that fails here fails for them too and is never announced.
- It uploads nothing back upstream (it sits behind a slow link): it joins with no chunk port.
- When the upstream goes away, the site keeps distributing what the relay has; the peer side
  reconnects with backoff. The last manifest is kept in the state folder with the origin's signed
  statement (checked again when read back), so a relay restarted while its upstream is down still
  serves its site a version its hosts can verify.
- Chains to any depth: a relay's downstream side is an ordinary master to the next relay.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, replace

from aiohttp import web

from lanscatter.core import protocol as p
from lanscatter.core import tree_commit
from lanscatter.core.errors import ManifestError, RemoteProtocolError, SignatureError
from lanscatter.core.linkmap import LinkMap
from lanscatter.core.manifest import Manifest
from lanscatter.core.manifest_wire import decode_manifest, to_wire
from lanscatter.core.signing import SignedVersion
from lanscatter.core.status import LinkStatus, StatusDoc, UpstreamStatus
from lanscatter.disk.atomic_file import write_text_atomic
from lanscatter.net.chunk_http import ChunkServer, TrafficCounters
from lanscatter.net.node_http import coordinator_app
from lanscatter.net.server import bind_site
from lanscatter.net.tls import ServerTLS
from lanscatter.roles.chunk_source import ChunkSource
from lanscatter.roles.peer import PeerNode
from lanscatter.roles.peer_options import PeerOptions
from lanscatter.roles.swarm import Swarm

log = logging.getLogger("lanscatter.roles.relay")

SAVED_MANIFEST = "relay-manifest.json"    # in the state folder: the last generation relayed


@dataclass(frozen=True, slots=True)
class RelayOptions:
    peer: PeerOptions                 # the upstream side (serve=False, role="relay")
    port: int                         # downstream master port
    slots: int = 3                    # concurrent uploads to the site
    site: str | None = None
    upstream_site: str | None = None
    link_map: LinkMap | None = None
    store_and_forward: bool = False   # hold the site back until the whole generation is here
                                      # (the behaviour cut-through is measured against)
    tls: ServerTLS | None = None      # the downstream port also serves TLS
    allow_nat: bool = False           # accept site peers whose own address is not the one seen


class RelayNode:
    def __init__(self, opts: RelayOptions) -> None:
        self.opts = opts
        self.upstream = PeerNode(opts.peer, on_manifest=self._manifest, on_chunk=self._chunk,
                                 on_arriving=self._arriving, on_arrival_failed=self._arrival_failed,
                                 on_commit=self._commit)
        self.source: ChunkSource = self.upstream      # all the downstream side sees of the upstream's folder
        self.down = TrafficCounters()        # downstream uploads, kept apart from the upstream side's
        self.server = ChunkServer(self.source.locate, self.upstream.auth, self.down,
                                  ul_bucket=self.upstream.ul_bucket, compress=opts.peer.compress,
                                  arrivals=self.upstream.arrivals)
        self.swarm = Swarm(name=self.upstream.name, auth=self.upstream.auth, seed_slots=opts.slots,
                           link_map=opts.link_map, site=opts.site, role="relay", allow_nat=opts.allow_nat,
                           seed_uploads=lambda: self.down.uploads, seed_rates=self.server.pacer.set_rates,
                           seed_cut=self.server.pacer.cut,
                           on_seed_corrupt=self._served_corrupt, seed_active=self.upstream.active_version,
                           on_change=self._report_staged)
        self._staged_sent: p.Staged | None = None      # the last summary sent upstream
        self._manifest_file = opts.peer.state_dir / SAVED_MANIFEST
        self._checks: set[asyncio.Future[None]] = set()      # folder checks under way (kept referenced)
        self._runner: web.AppRunner | None = None
        self.port = opts.port

    def _manifest(self, manifest: Manifest) -> None:
        # The origin's statement goes down (and into the saved copy) as it came: the site's hosts
        # check it against the origin's key themselves.
        signed = self.upstream.signed
        write_text_atomic(self._manifest_file, p.encode(p.ManifestMsg(
            to_wire(manifest), statement=signed.statement if signed else "",
            signature=signed.signature if signed else "")))
        self._staged_sent = None          # a new generation, or a new join upstream: say it again
        if not self.opts.store_and_forward or self.upstream.complete():
            self.swarm.set_manifest(manifest, seed_has=self.source.held_chunks(), signed=signed)
        self._report_staged()

    def _chunk(self, chunk: str) -> None:
        if not self.opts.store_and_forward:
            self.swarm.seed_got(chunk)
        elif self.upstream.complete() and self.upstream.manifest is not None:
            self.swarm.set_manifest(self.upstream.manifest, signed=self.upstream.signed)
        if self.upstream.complete():             # this relay's own part of its summary changed
            self._report_staged()

    def _commit(self, commit: p.Commit) -> None:
        """The tree's commit goes down to the site as it came (tree_commit.py)."""
        self.swarm.set_commit(commit)

    def _report_staged(self) -> None:
        """Tell the upstream what this relay's subtree holds of the current generation, when that
        changed (tree activation: the origin commits once every host holds it)."""
        m = self.upstream.manifest
        if m is None or self.swarm.manifest is None or self.swarm.manifest.generation != m.generation:
            ready = tree_commit.Readiness(m.generation, 1, 0, (self.upstream.name,)) if m is not None else None
        else:
            ready = self.swarm.readiness(own=(self.upstream.name, self.upstream.complete()))
        if ready is None:
            return
        msg = p.Staged(ready.generation, ready.hosts, ready.ready, list(ready.waiting))
        if msg != self._staged_sent:
            self._staged_sent = msg
            self.upstream.post(msg, min_protocol=8)

    def _arriving(self, chunk: str, due: float) -> None:
        if not self.opts.store_and_forward:
            self.swarm.seed_arriving(chunk, due)

    def _arrival_failed(self, chunk: str) -> None:
        self.swarm.seed_arrival_failed(chunk)

    def _served_corrupt(self, chunk: str) -> None:
        """A site peer got `chunk` corrupt from this relay's folder: check the files holding it."""
        task = asyncio.ensure_future(self.source.verify([chunk]))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _resume_last_manifest(self) -> None:
        """Serve the site from the last generation seen, before (or without) the upstream."""
        try:
            saved = p.decode(self._manifest_file.read_text(encoding="utf-8"), "the saved manifest")
            if not isinstance(saved, p.ManifestMsg):
                raise ManifestError(f"it holds a {saved.TYPE!r} message")
            manifest = decode_manifest(saved.manifest)
            signed = SignedVersion(saved.statement, saved.signature)
        except FileNotFoundError:
            return
        except (OSError, ManifestError, RemoteProtocolError) as exc:
            log.warning("ignoring the saved manifest: %s", exc)
            return
        try:
            await self.upstream.resume(manifest, signed)
        except SignatureError as exc:                       # written by an older relay: unsigned
            log.warning("ignoring the saved manifest: %s", exc)
            return
        self.swarm.set_manifest(manifest, seed_has=self.source.held_chunks(), signed=signed)
        log.info("serving the saved generation %s until the upstream answers", manifest.generation[:12])

    def app(self) -> web.Application:
        return coordinator_app(self.swarm.handle_ws, self.server.routes(), self.status)

    async def start(self) -> None:
        """Listen on both sides and serve the saved generation to the site; `run` joins the upstream."""
        await self.upstream.start_server()
        self._runner, self.port = await bind_site(self.app(), self.opts.peer.host, self.opts.port, self.opts.tls)
        await self._resume_last_manifest()
        self.swarm.start()
        log.info("relay %s: upstream %s:%d, serving its site on %s:%d", self.upstream.name,
                 self.opts.peer.master, self.opts.peer.master_port, self.opts.peer.host, self.port)

    async def run(self) -> None:
        if self._runner is None:
            await self.start()
        await self.upstream.run()

    async def stop(self) -> None:
        await self.swarm.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.upstream.stop()

    def status(self) -> StatusDoc:
        up = self.upstream
        st = self.swarm.status(rx_bytes=up.counters.rx_bytes, tx_bytes=self.down.tx_bytes)
        link = f"wan:{self.opts.upstream_site}>{self.opts.site}" if self.opts.site and self.opts.upstream_site \
            else "upstream"
        cap = None
        if self.opts.link_map is not None and link in self.opts.link_map.links:
            cap = self.opts.link_map.links[link].bytes_per_s
            cap = cap if math.isfinite(cap) else None       # unshaped: no capacity (JSON has no infinity)
        return replace(
            st,
            links=(LinkStatus(name=link, bytes=up.counters.rx_bytes, data_bytes=up.downloaded_bytes,
                              control_bytes=up.control_rx_bytes,
                              bytes_per_s=cap, rate=up.rx_rate()),),
            upstream=UpstreamStatus(connected=up.connected, master=f"{self.opts.peer.master}:{self.opts.peer.master_port}",
                                    generation=up.manifest.generation if up.manifest else None,
                                    complete=up.complete(), downloaded_chunks=up.downloaded_chunks))
