"""A peer's folder and the versions it takes: the manifests, deltas and commits the master sends,
checked, staged and activated; the holdings announced again after every reconcile; which version
the folder shows and which it stages.

A manifest is applied only when the origin's signed statement comes with it and checks out against
the origin's key (`--origin-key`, or the key pinned at first use; `signing_keys.OriginTrust`);
anything else is refused, the folder is left as it is, and the peer reconnects. A folder this node
has not synced before is not wiped: a first sync that would delete anything stops with the list
unless `adopt` (first_sync.py); `dry_run` previews the sync of the first version and ends the run
(`DryRunDone`). A version this folder cannot hold (a path too long, a file too large, no space)
ends the connection, not the node.

The store follows `activate`: host and tree activation stage beside the active version
(staged_store.py; tree: switched on the origin's commit, tree_commit.py), per-file replaces each
file in place. One reconcile at a time; the holdings are not read while one runs. Logs as the peer
role (`lanscatter.roles.peer`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from itertools import islice

from lanscatter.core import protocol as p
from lanscatter.core.errors import (
    ConfigError,
    ManifestError,
    NoSpaceError,
    RemoteProtocolError,
    SignatureError,
)
from lanscatter.core.manifest import Manifest, show_path
from lanscatter.core.manifest_delta import apply_delta
from lanscatter.core.manifest_wire import decode_manifest
from lanscatter.core.safe_text import safe_text
from lanscatter.core.signing import SignedVersion, VersionStatement, describes
from lanscatter.core.status import ActiveVersion, StagedVersion
from lanscatter.core.tree_commit import Commit, HostView, host_action, may_switch
from lanscatter.disk.first_sync import (
    ADOPT_HINT,
    SyncPreview,
    mark_synced,
    preview_sync,
    refusal_text,
    synced_before,
)
from lanscatter.disk.signing_keys import NEWEST_FILE, PIN_FILE, OriginTrust
from lanscatter.disk.staged_store import StagedStore
from lanscatter.disk.store import MirrorStore
from lanscatter.roles.peer_downloads import log_crash
from lanscatter.roles.peer_options import PeerOptions

log = logging.getLogger("lanscatter.roles.peer")

# What a folder cannot hold of a generation that passed every check of the manifest (a path too
# long below this folder, a file larger than this file system takes): the generation is refused
# like a malformed one, and the node stays up.
_UNSTORABLE = frozenset({errno.ENAMETOOLONG, errno.EFBIG, errno.EOVERFLOW})


class DryRunDone(Exception):
    """The dry run's preview is taken: the run ends (not an error)."""


class PeerFolder:
    """The folder and its versions. It queues frames for the master with `post` (and, for what
    goes in many frames, waits with `room` until few are queued), stops the
    downloads under way with `cancel_downloads` (which returns their transfer ids), has the node's
    figures sent with `stats`, and names the master in its logs with `master_text`; a relay hears
    of each generation reconciled (`on_manifest`) and each commit of the tree (`on_commit`)."""

    def __init__(self, opts: PeerOptions, *, post: Callable[[p.Message], None], room: Callable[[], Awaitable[None]],
                 cancel_downloads: Callable[[], Awaitable[list[int]]], stats: Callable[[], None],
                 master_text: Callable[[], str], on_manifest: Callable[[Manifest], None] | None = None,
                 on_commit: Callable[[p.Commit], None] | None = None) -> None:
        self._opts = opts
        self._post = post
        self._room = room
        self._cancel_downloads = cancel_downloads
        self._stats = stats
        self._master_text = master_text
        self._on_manifest = on_manifest      # each generation, once the folder is reconciled with it
        self._on_commit = on_commit          # each commit of the tree (a relay passes it down)
        self.store = (StagedStore(opts.folder, opts.state_dir, opts.keep, may_switch=self._may_switch)
                      if opts.activate in ("host", "tree") else MirrorStore(opts.folder, opts.state_dir))
        self.commit: Commit | None = None          # the tree's last commit (tree_commit.py)
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
        staged = self.store if isinstance(self.store, StagedStore) else None
        self.trust = OriginTrust(opts.origin_key, opts.state_dir / PIN_FILE, opts.state_dir / NEWEST_FILE,
                                 staged.newest_kept if staged else None, staged.commit_mark if staged else None)
        self._verify_lock = asyncio.Lock()
        self._reconcile_lock = asyncio.Lock()   # one reconcile at a time; holdings dropped between
        self.reconciling = False
        self._last_progress = (0, 0)
        self.taken_at: float | None = None          # monotonic: when `manifest` was taken
        self.complete_at: float | None = None       # ... and when the folder first held it whole
        self._housekeeping: set[asyncio.Task[None]] = set()    # old versions being deleted
        self.local_copies = 0

    def _may_switch(self, generation: str) -> bool:
        """Whether a generation staged whole may be shown now (tree activation: once committed)."""
        return may_switch(self._opts.activate == "tree", self.commit, generation)

    # ---- what the master sends ---------------------------------------------------------------
    async def take_commit(self, msg: p.Commit) -> None:
        """The tree's commit (tree_commit.py): switch to the committed version if it is staged
        whole here, roll back to a kept one, or wait; a relay passes it on to its site. Only a
        commit the origin signed, and none older than the newest followed here."""
        try:
            self.trust.check_commit(msg.generation, msg.instead, SignedVersion(msg.statement, msg.signature))
        except SignatureError as exc:
            log.error("refused a tree commit from %s, nothing switched: %s%s", self._master_text(), exc,
                      f" (hint: {exc.hint})" if exc.hint else "")
            return
        self.commit = Commit(msg.generation, msg.instead)
        if self._on_commit:
            self._on_commit(msg)
        store = self.store
        if not isinstance(store, StagedStore):
            return
        async with self._reconcile_lock:
            record = store.versions.active_record()
            view = HostView(tree=self._opts.activate == "tree",
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
        self._stats()

    async def take_manifest(self, msg: p.ManifestMsg) -> None:
        """A manifest from the master: decoded and checked, its signature checked, then applied.
        One this node refuses (malformed, out of bounds, or that this folder cannot hold) ends the
        connection with a clear line, like any malformed message; the node stays up and joins
        again. Decoded off the event loop: a million files take tens of seconds on a busy host,
        in which the loop would send nothing and the master would take this node for gone. The
        message is not held once decoded (its columns are as large again as the manifest): the
        caller hands it over (`PeerNode._handle`)."""
        wire, signed = msg.manifest, SignedVersion(msg.statement, msg.signature)
        del msg
        try:
            manifest = await asyncio.get_running_loop().run_in_executor(None, decode_manifest, wire)
        except ManifestError as exc:
            raise RemoteProtocolError(f"the master sent a manifest this node refuses: {exc}") from None
        del wire
        await self._take_version(manifest, signed)

    async def take_delta(self, msg: p.ManifestDelta) -> None:
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
                del base            # (`_new_manifest` lets it go once the new one is checked)
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
        if self._opts.dry_run or not (self._opts.adopt or self._synced_before or self._taken_over):
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
            log.error("refused a version from %s, the folder is left as it is: %s%s", self._master_text(),
                      exc, f" (hint: {exc.hint})" if exc.hint else "")
            raise RemoteProtocolError("the master sent a version the origin did not sign") from None

    async def _first_sync_check(self, manifest: Manifest) -> None:
        """A folder not synced before: stop rather than delete what the version lacks; with
        dry_run, keep the preview of the whole sync and end the run."""
        preview = await asyncio.get_running_loop().run_in_executor(
            None, partial(preview_sync, self.store.folder, manifest,
                          self.store.cache if self._opts.dry_run else None, downloads=self._opts.dry_run))
        if self._opts.dry_run:
            self.preview = preview
            raise DryRunDone
        if preview.delete:
            raise ConfigError(refusal_text(self.store.folder, preview), ADOPT_HINT)

    def _note_synced(self) -> None:
        """When the folder first held the generation whole; after the first complete sync the
        folder is this node's: later versions may delete."""
        if not self.complete():
            return
        if self.complete_at is None:
            self.complete_at = time.monotonic()
        if not self._synced_before:
            mark_synced(self._opts.state_dir, self.store.folder)
            self._synced_before = True

    def chunk_held(self) -> None:
        """A chunk was verified into the folder: the old versions go once a switch made them
        due, and the first complete sync is noted."""
        if isinstance(self.store, StagedStore) and self.store.prune_due:
            self._prune_soon(self.store)
        self._note_synced()

    async def resume(self, manifest: Manifest, signed: SignedVersion) -> None:
        """Take `manifest`, saved by an earlier run, as the current generation before any master
        answered (a relay serving its site while its upstream is away): checked against the
        origin's key like any version (SignatureError otherwise), the folder reconciled with it.
        Nothing is announced: the master hears of the holdings when it is joined."""
        statement = self.trust.check(manifest, signed, held=True)
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
            for transfer in await self._cancel_downloads():
                self._post(p.Report(transfer, False, 0.0, "the peer is reading its files again", blameless=True))
            await self._new_manifest(m, again=True)

    async def _new_manifest(self, manifest: Manifest, *, again: bool = False) -> None:
        """Reconcile the folder with `manifest` (again: only if it is still the current one; a
        newer one taken meanwhile has read the folder afresh already)."""
        await self._cancel_downloads()
        async with self._reconcile_lock:
            if again and self.manifest is not manifest:
                return
            # The store changes in a worker thread meanwhile: status readers must not look into it.
            self.reconciling = True
            # The new generation is checked (signed, past the first-sync check): it is the current
            # one from here, and the one before goes now, not after the reconcile (the store lets
            # go of it as it starts): a million files are some 150 MB a manifest. The folder
            # shows the old version until the new one is whole all the same (the store stages it
            # beside, or replaces each file whole); a reconcile that fails leaves this one current
            # and the store not complete, and the next join reconciles it again.
            if self.manifest is not manifest:
                self.taken_at, self.complete_at = time.monotonic(), None
            self.manifest = manifest
            self._last_progress = (0, 0)          # (none of it counted yet)
            try:
                stats = await asyncio.get_running_loop().run_in_executor(None, self.store.reconcile, manifest)
            finally:
                self.reconciling = False
        self._note_synced()
        self.local_copies += stats.copied_chunks
        log.info("generation %s: %d/%d chunks present (%d resumed, %d copied locally, %d deleted)",
                 manifest.generation[:12], self.store.held_count(), len(manifest.chunk_table()),
                 stats.resumed_chunks, stats.copied_chunks, len(stats.deleted))
        if self._on_manifest:
            self._on_manifest(manifest)
        # In pieces, the first replacing the set and the others adding to it: no frame to the
        # master is longer than its limit (p.MAX_FRAME), however many chunks there are; the
        # hashes are read from the store a piece at a time (in chunk table order), each piece
        # once the link has room (a million chunks queued at once were some 70 MB of frames).
        # A reconcile started meanwhile (a repair, a newer version) announces the holdings
        # again itself: these stop.
        epoch, held = self.store.epoch, self.store.held_chunks()
        self._post(p.Have(manifest.generation, list(islice(held, p.HAVE_PIECE)), replace=True))
        while True:
            await self._room()
            if self.store.epoch != epoch or not (piece := list(islice(held, p.HAVE_PIECE))):
                break
            self._post(p.Have(manifest.generation, piece))

    def _prune_soon(self, store: StagedStore) -> None:
        prune = asyncio.create_task(self._prune(store), name="prune of old versions")
        self._housekeeping.add(prune)
        prune.add_done_callback(self._housekeeping.discard)
        prune.add_done_callback(log_crash)

    async def _prune(self, store: StagedStore) -> None:
        """Old versions deleted after a switch, in a worker thread, never during a reconcile."""
        async with self._reconcile_lock:
            if store.prune_due:
                await asyncio.get_running_loop().run_in_executor(None, store.prune)

    # ---- what the folder holds and shows -----------------------------------------------------
    def complete(self) -> bool:
        return self.manifest is not None and not self.reconciling and self.store.complete()

    def progress(self) -> tuple[int, int]:
        """(bytes held, dataset bytes) of distinct content (the last figures while reconciling)."""
        m = self.manifest
        if m is None or self.reconciling or self.store.manifest is not m:
            return self._last_progress
        self._last_progress = (self.store.held_bytes(), m.total_bytes)
        return self._last_progress

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
                             else "", held / total if total else float(self.complete()), self.complete())
