"""The master role: scans its folder, serves chunks, coordinates its swarm.

The master never writes into its folder. It signs every generation it publishes with the origin's
key (`--signing-key`; by default `origin.key` in its state folder, created on the first start), so
hosts write only what this key signed (`signing.py`), with the version's label and publish time.
What it publishes, and when, is the publish policy's (`publish_policy.py`): on a change once the
source settled, when a release symlink is switched, or only when told (`lanscatter publish`, an
authenticated request at /publish, `publish_request.py`); a source that is empty or would delete
too much of the last version is refused, and the hosts keep what they have. The master rescans on
file-system events and every `rescan_interval` seconds regardless; a scan it may not publish only
shows in its status (`publish.pending`).
A chunk is served only while its file is still as the hash cache saw it when it was hashed (size,
mtime, inode, ctime); when it is not, the request fails and a rescan is started, so a torn file is
never distributed. A downloader that finds a chunk from this folder does not match its hash makes
the master forget the hashes of the files holding it, stop offering it and rescan: those files are
read afresh (once per chunk and generation, so a lying peer cannot keep it hashing).
It commits each version down the tree once every joined host holds it (tree activation,
`tree_origin.py`), and rolls the tree back on an authenticated request at /rollback.
Names the protocol cannot carry are left out of the manifest and reported once each (the name in
the log; a count in the events and as `skipped_names` in the status, which carry no file names);
neither they nor anything else in the folder stops the scans or the file watcher.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lanscatter.core import protocol as p
from lanscatter.core.auth import Auth, SwarmKey
from lanscatter.core.chunking import AUTO, AUTO_MIN_SIZE, CDC, Chunking, auto_floor_size, chunking_problem
from lanscatter.core.errors import ConfigError, ManifestError
from lanscatter.core.linkmap import LinkMap
from lanscatter.core.manifest import MAX_CHUNK_SIZE, Manifest, check_counts, diff_manifests, show_path
from lanscatter.core.ports import DEFAULT_MASTER_PORT
from lanscatter.core.publish_policy import (
    DEFAULT_SETTLE_S,
    PUBLISH_MODES,
    Refusal,
    check_publish,
    default_mode,
)
from lanscatter.core.session import prepare_delta
from lanscatter.core.signing import SignedVersion, public_key_of, published_view, sign_commit, sign_version
from lanscatter.core.sizes import format_bits_per_s, format_bytes
from lanscatter.core.status import ActiveVersion, PublishState, StatusDoc
from lanscatter.core.swarm_load import busiest_site, chunk_floor
from lanscatter.core.tree_commit import DEFAULT_DEADLINE_S, RollbackRefused
from lanscatter.disk.folder_walk import RefusedName
from lanscatter.disk.folder_watch import watch_folder
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.scanner import scan_folder
from lanscatter.disk.signing_keys import (
    PRIVATE_KEY_FILE,
    last_signed,
    load_or_create_signing_key,
    load_signing_key,
    note_signed,
)
from lanscatter.disk.store import Location
from lanscatter.net.chunk_http import ChunkServer, TrafficCounters
from lanscatter.net.node_http import coordinator_app
from lanscatter.net.publish_http import Published, PublishEndpoint, RolledBack
from lanscatter.net.ratelimit import TokenBucket
from lanscatter.net.server import bind_site
from lanscatter.net.tls import ServerTLS
from lanscatter.roles.swarm import Swarm
from lanscatter.roles.tree_origin import TreeOrigin

log = logging.getLogger("lanscatter.roles.master")

_REPORT_NAMES = 20           # refused names reported one by one per scan; the rest as a count
_WATCH_RESTART_S = 1.0
_WATCH_RESTART_MAX_S = 30.0  # the longest wait before watching again after the watcher stopped
_LINK_POLL_S = 0.5           # how often a symlink source is looked at (one readlink)
_WATCH_DEBOUNCE_MS = 500      # the watcher groups changes this long before it reports them
# A change reaches `_last_change` up to the debounce (plus the watcher's step) after it happened:
# an on-change scan waits this long after reading before it trusts that nothing was written meanwhile.
_WATCH_LAG_S = _WATCH_DEBOUNCE_MS / 1000 + 0.25


@dataclass(frozen=True, slots=True)
class MasterOptions:
    folder: Path
    state_dir: Path
    host: str = "0.0.0.0"
    port: int = DEFAULT_MASTER_PORT
    name: str = "master"
    chunk_size: int = AUTO                 # target bytes; AUTO: chosen from the data's size
    chunking: str = CDC                    # content-defined boundaries, or FIXED offsets
    secret: str | SwarmKey | None = None     # text is stretched at start (auth.py)
    ul_rate: float | None = None          # bytes/s
    slots: int = 3                         # concurrent uploads from the master
    rescan_interval: float = 60.0
    watch: bool = True
    compress: bool = True
    site: str | None = None
    link_map: LinkMap | None = None
    expect_peers: int = 0                  # hold the first scan until this many joined ...
    expect_wait_s: float = 10.0            # ... or this long passed
    tls: ServerTLS | None = None           # also serve TLS on the port (tls.py, server.py)
    allow_nat: bool = False                # accept peers whose own address is not the one seen
    signing_key: Path | None = None        # the origin's private key (None: state_dir/origin.key,
                                           # created when missing)
    publish: str | None = None             # PUBLISH_MODES; None: on-switch for a symlink source,
                                           # else on-change
    settle_s: float = DEFAULT_SETTLE_S     # on-change: publish once nothing changed for this long
    allow_shrink: bool = False             # publish an empty or much smaller source unasked
    activate: str = "host"                 # "tree": the hosts switch on this origin's commit, and a
                                           # commit past its deadline is reported (tree_origin.py)
    commit_deadline_s: float = DEFAULT_DEADLINE_S


ProgressFactory = Callable[[], Callable[[int, int], None] | None]


class MasterNode:
    def __init__(self, opts: MasterOptions, progress: ProgressFactory = lambda: None) -> None:
        if not opts.folder.is_dir():
            what = "is not a folder" if opts.folder.exists() else "does not exist"
            raise ConfigError(f"sync folder {opts.folder} {what}", "give the folder to distribute")
        if not os.access(opts.folder, os.R_OK | os.X_OK):
            raise ConfigError(f"sync folder {opts.folder} is not readable", "check its permissions")
        if opts.publish is not None and opts.publish not in PUBLISH_MODES:
            raise ConfigError(f"unknown publish mode {opts.publish!r}", "give one of: " + ", ".join(PUBLISH_MODES))
        if opts.publish == "on-switch" and not opts.folder.is_symlink():
            raise ConfigError(f"publish mode on-switch needs a symlink source; {opts.folder} is a folder",
                              "point the source at a symlink to the release folder (docs/versions.md), "
                              "or use --publish on-change or manual")
        problem = chunking_problem(opts.chunking, opts.chunk_size or AUTO_MIN_SIZE)
        if problem is not None:
            raise ConfigError(problem, f"give a chunk size up to {MAX_CHUNK_SIZE // 2**20} MiB (a power of "
                                       "two for cdc chunking), or leave it out to have one chosen")
        self.opts = opts
        self.mode = opts.publish or default_mode(opts.folder.is_symlink())
        self.root = opts.folder.resolve()        # the folder of the published version (served)
        self._link = _read_link(opts.folder)     # a symlink source's target as last looked at
        self.signing_key = self._signing_key()
        self.auth = Auth(opts.secret)
        self.counters = TrafficCounters()
        self.cache = HashCache(opts.state_dir / "master-hashes.jsonl")
        self.server = ChunkServer(self.locate, self.auth, self.counters,
                                  ul_bucket=TokenBucket(opts.ul_rate) if opts.ul_rate else None,
                                  compress=opts.compress)
        self.swarm = Swarm(name=opts.name, auth=self.auth, seed_slots=opts.slots,
                           link_map=opts.link_map, site=opts.site, role="master", allow_nat=opts.allow_nat,
                           seed_uploads=lambda: self.counters.uploads, seed_rates=self._pace_uploads,
                           seed_cut=self.server.pacer.cut,
                           on_seed_corrupt=self._seed_corrupt, seed_active=self._shown,
                           on_change=lambda: self.tree.step())
        self.manifest: Manifest | None = None    # the published version
        self.signed: SignedVersion | None = None
        self.label = ""
        self.published_ms = 0
        self._signed_floor = last_signed(opts.state_dir)   # the last signed time (_next_signed_ms)
        self.refusal: Refusal | None = None      # why the last scan was not published (cleared by a publish)
        self.pending = False                     # the source differs from the published version
        self._lock = asyncio.Lock()              # one scan-and-publish at a time
        self._last_change = -float("inf")        # loop time of the last change the watcher saw
        self.tree = TreeOrigin(self.swarm, opts.state_dir, tree=opts.activate == "tree",
                               deadline_s=opts.commit_deadline_s, sign=self._sign_commit)
        self.publish_endpoint = PublishEndpoint(
            self.auth, lambda label, allow_shrink: self.publish(label=label, allow_shrink=allow_shrink),
            self.swarm.event, self._rollback)
        self._rechecked: set[str] = set()       # chunks re-hashed after a mismatch, this generation
        self._refused: set[RefusedName] = set()   # names left out by the last scan (reported)
        self.progress = progress
        self._rescan = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port = opts.port

    def _next_signed_ms(self) -> int:
        """The time of a new signed statement (a version or a commit): later than the last one,
        of an earlier run too, even if the clock stepped back, since hosts refuse an older one."""
        signed_ms = max(int(time.time() * 1000), self._signed_floor + 1)
        self._signed_floor = signed_ms
        note_signed(self.opts.state_dir, signed_ms)
        return signed_ms

    def _sign_commit(self, generation: str, instead: str) -> p.Commit:
        signed = sign_commit(self.signing_key, generation, instead, signed_ms=self._next_signed_ms())
        return p.Commit(generation, instead, signed.statement, signed.signature)

    def _signing_key(self) -> Ed25519PrivateKey:
        path = self.opts.signing_key
        if path is not None:
            key = load_signing_key(path)
        else:
            path = self.opts.state_dir / PRIVATE_KEY_FILE
            key, created = load_or_create_signing_key(path)
            if created:
                log.warning("no --signing-key given: created the origin's key %s; give hosts its public "
                            "half (`origin_key:` in the site tree, or --origin-key), or they pin the first "
                            "key they see", path)
        log.info("signing versions with origin_key: %s", public_key_of(key).text)
        return key

    # ---- content -----------------------------------------------------------------------------
    def locate(self, chunk: str) -> Location | None:
        m = self.manifest
        if m is None:
            return None
        for loc in m.locations().get(chunk, ()):
            entry = m.file(loc.path)
            path = self.root / loc.path
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                continue
            if entry is not None and self.cache.get(loc.path, st, m.chunking) == (entry.chunks, entry.sizes):
                return Location(path, loc.offset, loc.length)
        self.swarm.seed_lost(chunk)
        self.request_rescan(f"chunk {chunk[:8]}: its file changed")
        return None

    def _pace_uploads(self, rates: dict[int, float]) -> None:
        """The swarm's fair shares for this master's uploads, by transfer id."""
        self.server.pacer.set_rates(rates)

    def _seed_corrupt(self, chunk: str) -> None:
        """A downloader got `chunk` from this folder and it did not match its hash: a file changed
        in a way its metadata does not show (rot, a rewrite the cache missed). Stop offering the
        chunk, forget the hashes of the files holding it and rescan; the rescan either confirms
        the content (the seed offers it again) or makes a new generation."""
        m = self.manifest
        if m is None or chunk in self._rechecked:
            return
        self._rechecked.add(chunk)
        self.swarm.seed_lost(chunk)
        for loc in m.locations().get(chunk, ()):
            self.cache.forget(loc.path)
        self.request_rescan(f"chunk {chunk[:8]} from this folder did not match its hash")

    def request_rescan(self, reason: str) -> None:
        if not self._rescan.is_set():
            log.info("rescan requested: %s", reason)
        self._rescan.set()

    async def _scan(self, root: Path) -> Manifest:
        loop = asyncio.get_running_loop()
        first = self.manifest is None
        progress = self.progress() if first else None
        chunking = Chunking(self.opts.chunking, self.opts.chunk_size)
        # An automatic size stays what the last version used while it fits, so a growing data set
        # is not re-chunked on every scan.
        keep = self.manifest.chunk_size if self.manifest is not None else AUTO
        # No smaller than what keeps the busiest site's master from setting the pace (swarm_load.py).
        floor = chunk_floor(self.opts.link_map)
        try:
            manifest, stats = await loop.run_in_executor(
                None, lambda: scan_folder(root, chunking, self.cache, keep_size=keep, auto_floor=floor,
                                          progress=progress))
        except OSError as exc:
            raise ConfigError(f"cannot scan {root}: {exc}", "check the folder and its permissions") from None
        self._report_refused(stats.refused)
        try:
            check_counts(len(manifest.files), len(manifest.dirs), len(manifest.files.columns.refs))
        except ManifestError as exc:
            raise ConfigError(f"cannot distribute {root}: {exc}",
                              "split the folder, or use a larger --chunk-size") from None
        if first:
            log.info("scanned %d files: %s hashed in %.1f s, %s known from cache; %s chunks of %s (target), "
                     "%d distinct", stats.files, format_bytes(stats.hashed_bytes), stats.seconds,
                     format_bytes(stats.reused_bytes), manifest.chunking_kind, format_bytes(manifest.chunk_size),
                     len(manifest.chunk_table()))
            busiest = busiest_site(self.opts.link_map)
            set_by_floor = manifest.chunk_size == auto_floor_size(floor) > AUTO_MIN_SIZE
            if self.opts.chunk_size == AUTO and busiest is not None and set_by_floor:
                log.info("automatic chunks of %s, no smaller: site %s receives up to %s, so its master starts "
                         "up to %.0f transfers a second (smaller chunks would make the master the limit; "
                         "chunk_size in the site tree overrides)", format_bytes(manifest.chunk_size), busiest.site,
                         format_bits_per_s(busiest.bytes_per_s), busiest.transfers_s(manifest.chunk_size))
        return manifest

    async def publish(self, *, label: str | None = None, allow_shrink: bool = False) -> Published | Refusal:
        """Scan the source now and publish it, whatever the mode (`lanscatter publish`). `label`
        None: a release symlink's target name, else none."""
        async with self._lock:
            root = self._source_root()
            manifest = await self._scan(root)
            return await self._offer(manifest, root, label, allow_shrink or self.opts.allow_shrink)

    async def _offer(self, manifest: Manifest, root: Path, label: str | None,
                     allow_shrink: bool) -> Published | Refusal:
        """Publish `manifest` (the scan of `root`) unless it is the version out already or a guard
        refuses it; a refusal is an error event (and line) once, and shows in the status."""
        old = self.manifest
        if old is not None and manifest.generation == old.generation:
            self.root, self.pending, self.refusal = root, False, None
            return Published(old.generation, self.label, self.published_ms, changed=False)
        # The comparisons of two versions walk both (seconds at a million files on a busy host): off
        # the event loop, which keeps every peer's heartbeat meanwhile.
        loop = asyncio.get_running_loop()
        refusal = await loop.run_in_executor(None, partial(check_publish, old, manifest, allow_shrink=allow_shrink))
        if refusal is not None:
            if refusal != self.refusal:
                self.swarm.event("error", f"not published: {refusal.reason} (hint: {refusal.hint})")
            self.refusal, self.pending = refusal, True
            return refusal
        if label is None:
            label = root.name if self._link is not None else ""
        self._rechecked.clear()
        delta = None
        if old is not None:
            d = await loop.run_in_executor(None, diff_manifests, old, manifest)
            log.info("folder changed: %d added, %d removed, %d changed (%d new chunks)",
                     len(d.added), len(d.removed), len(d.changed), d.new_chunks)
            delta = await loop.run_in_executor(None, prepare_delta, old, manifest)
        published_ms = self._next_signed_ms()
        signed = await loop.run_in_executor(
            None, lambda: sign_version(manifest, self.signing_key, published_ms=published_ms, label=label))
        self.manifest, self.signed, self.root = manifest, signed, root
        self.label, self.published_ms = label, published_ms
        self.refusal, self.pending = None, False
        self.swarm.set_manifest(manifest, signed=signed, delta=delta)
        self.swarm.event("info", f"published generation {manifest.generation[:12]}"
                                 + (f" labelled {show_path(label, 80)!r}" if label else ""))
        self.tree.published(manifest.generation, label, published_ms)
        return Published(manifest.generation, label, published_ms, changed=True)

    def _shown(self) -> ActiveVersion | None:
        """The version the origin serves, as a status shows a host's active version."""
        pub = published_view(self.signed, self.manifest.generation if self.manifest else None)
        return None if pub is None else ActiveVersion(pub.generation, pub.label, pub.published_ms,
                                                      pub.published_ms / 1000)

    async def _rollback(self, to: str | None) -> RolledBack | Refusal:
        """`lanscatter rollback --tree`: every host shows a version committed earlier."""
        out = self.tree.rollback(to)
        if isinstance(out, RollbackRefused):
            return Refusal(out.reason, out.hint)
        return RolledBack(out.generation, self.tree.label_of(out.generation), out.instead)

    def _source_root(self) -> Path:
        """The folder to scan now: the source, or the release its symlink points at."""
        self._link = _read_link(self.opts.folder)
        root = self.opts.folder.resolve()
        if not root.is_dir():
            raise ConfigError(f"the source {self.opts.folder} does not lead to a folder now",
                              "point it at the release folder to publish")
        return root

    def _report_refused(self, refused: tuple[RefusedName, ...]) -> None:
        """Report each name the scan left out once (until it goes away and comes back): the names
        in the log, only their count in the events (the status carries no file names)."""
        new = [r for r in refused if r not in self._refused]
        self._refused = set(refused)
        for r in new[:_REPORT_NAMES]:
            log.warning("skipped '%s': %s", r.shown, r.reason)
        if len(new) > _REPORT_NAMES:
            log.warning("skipped %d more names the protocol cannot carry", len(new) - _REPORT_NAMES)
        if new:
            self.swarm.event("warning", f"names the protocol cannot carry: {len(new)} more left out, "
                                        f"{len(refused)} in all (the master's log names them)")

    async def _rescan_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.opts.rescan_interval):
                    await self._rescan.wait()
            except TimeoutError:
                pass
            if self.mode == "on-change":
                await self._settle()
            self._rescan.clear()
            try:
                await self._rescan_once()
            except ConfigError as exc:
                log.warning("rescan failed: %s", exc)

    async def _settle(self) -> None:
        """Until nothing in the source changed for `settle_s` (as the file watcher sees it)."""
        loop = asyncio.get_running_loop()
        while (quiet := loop.time() - self._last_change) < self.opts.settle_s:
            await asyncio.sleep(self.opts.settle_s - quiet)

    async def _rescan_once(self) -> None:
        """One scan; what the mode lets it publish is published: on-change what settled, on-switch
        a switched link; anything else only marks the source as pending."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            root = self._source_root()
            started = loop.time()
            manifest = await self._scan(root)
            if self.mode == "on-change":
                await asyncio.sleep(_WATCH_LAG_S)    # what was written while it was read is known now
                if self._last_change >= started:     # written to while it was read: not settled
                    self._rescan.set()
                    return
                await self._offer(manifest, root, None, self.opts.allow_shrink)
            elif self.mode == "on-switch" and root != self.root:
                await self._offer(manifest, root, None, self.opts.allow_shrink)
            else:
                pending = self.manifest is None or manifest.generation != self.manifest.generation
                if pending and not self.pending:
                    log.info("the source differs from the published version; `lanscatter publish` "
                             "publishes it")
                self.pending = pending

    async def _link_loop(self) -> None:
        """A symlink source: a switch of the link publishes its new target."""
        while True:
            await asyncio.sleep(_LINK_POLL_S)
            if _read_link(self.opts.folder) != self._link:
                self.request_rescan("the source link was switched")

    async def _watch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        delay = _WATCH_RESTART_S

        def changed() -> None:
            nonlocal delay
            self._last_change = loop.time()
            self.request_rescan("folder changed")
            delay = _WATCH_RESTART_S

        while True:
            try:
                await watch_folder(self.root, changed, debounce_ms=_WATCH_DEBOUNCE_MS)
                return
            except (RuntimeError, OSError) as exc:
                # The watcher stops when the folder is moved or deleted, and cannot start while it
                # is missing or past the system's limit on watches (watchfiles also gives up on a
                # name it cannot decode, again at once while that name exists): rescan and watch
                # again, less and less often. A restart is not a change: counted as one, it would
                # keep an on-change source from ever settling; the periodic rescan and the scan's
                # own check cover what the watcher misses meanwhile.
                log.info("file watcher restarted after: %s", show_path(str(exc), 200))
                self.request_rescan("the file watcher stopped")
            await asyncio.sleep(delay)
            delay = min(delay * 2, _WATCH_RESTART_MAX_S)

    # ---- lifecycle ---------------------------------------------------------------------------
    def app(self) -> web.Application:
        return coordinator_app(self.swarm.handle_ws, [*self.server.routes(), *self.publish_endpoint.routes()],
                               self.status)

    async def start(self) -> None:
        # Listen first: peers join while the folder is hashed and get the generation the moment
        # the scan ends, instead of polling a port that is not open yet.
        self._runner, self.port = await bind_site(self.app(), self.opts.host, self.opts.port, self.opts.tls)
        self.swarm.start()
        if self.opts.watch and self.mode == "on-change":
            # Watched from before the first scan: a change made while the folder is hashed is seen,
            # and the watches are set up (a walk of the tree that holds the GIL: 0.5-0.7 s for
            # 10,000 folders here) before the first generation goes out, not as it does.
            self._tasks.append(asyncio.create_task(self._watch_loop(), name="watch"))
        try:
            await self._await_expected_peers()
            # Every mode publishes the source as found at start (a restarted origin serves again
            # what it had); the guards apply as to any publish.
            await self.publish()
        except BaseException:
            await self.stop()
            raise
        self._tasks.append(asyncio.create_task(self._rescan_loop(), name="rescan"))
        self._tasks.append(asyncio.create_task(self.tree.run(), name="tree-commit"))
        if self._link is not None:
            self._tasks.append(asyncio.create_task(self._link_loop(), name="source-link"))
        settle = f", settle {self.opts.settle_s:g} s" if self.mode == "on-change" else ""
        log.info("master %s serving %s on %s:%d (publish %s%s)", self.opts.name, self.root, self.opts.host,
                 self.port, self.mode, settle)

    async def _await_expected_peers(self) -> None:
        """Peers started together with this master join before its first generation appears, as
        they would be in a standing deployment when a new build lands; never for long."""
        want, limit = self.opts.expect_peers, self.opts.expect_wait_s
        if want <= 0:
            return
        log.info("waiting for %d peers to join before the first scan (at most %.0f s)", want, limit)
        loop = asyncio.get_running_loop()
        until = loop.time() + limit
        while len(self.swarm.peers) < want and loop.time() < until:
            await asyncio.sleep(0.05)
        if len(self.swarm.peers) < want:
            log.warning("%d of %d expected peers joined within %.0f s; scanning anyway",
                        len(self.swarm.peers), want, limit)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.swarm.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        self.cache.close()

    def status(self) -> StatusDoc:
        st = self.swarm.status(rx_bytes=self.counters.rx_bytes, tx_bytes=self.counters.tx_bytes)
        refusal = self.refusal
        return replace(st, skipped_names=len(self._refused), chunk_size_auto=self.opts.chunk_size == AUTO,
                       publish=PublishState(
            mode=self.mode, settle_s=self.opts.settle_s, pending=self.pending,
            refused=refusal.reason if refusal else None, hint=refusal.hint if refusal else None),
            commit=self.tree.status())


def _read_link(path: Path) -> str | None:
    """A symlink's target text (None: not a symlink, or gone)."""
    try:
        return os.readlink(path)
    except OSError:
        return None

