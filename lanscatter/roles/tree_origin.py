"""The origin's side of tree activation: the I/O shell around `tree_commit.CommitBook`.

It learns each published version from the master, reads the tree's readiness off the master's
swarm whenever what its members hold changes (`step`, the swarm's `on_change`) (and once a second, for the deadline), sends the
commit down (`Swarm.set_commit`: every member now, and every member joining later), and keeps the
committed version, a rollback's hold and the history in `tree-commit.json` in the state folder, so
a restarted origin neither forgets a rollback nor commits the rolled-back version again.

A commit past its deadline is reported once (an error line and event) when the origin runs tree
activation; the status shows the state in any mode (`commit` in `/status`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from lanscatter.core import protocol as p
from lanscatter.core.manifest import show_path
from lanscatter.core.status import CommitState
from lanscatter.core.tree_commit import Commit, CommitBook, Overdue, RollbackRefused, Version
from lanscatter.disk.atomic_file import write_json_atomic
from lanscatter.roles.swarm import Swarm

log = logging.getLogger("lanscatter.roles.master")

STATE_FILE = "tree-commit.json"
_MAX_STATE_BYTES = 1 << 16
TICK_S = 1.0


class TreeOrigin:
    def __init__(self, swarm: Swarm, state_dir: Path, *, tree: bool, deadline_s: float,
                 sign: Callable[[str, str], p.Commit]) -> None:
        """`sign(generation, instead)`: the commit message with the origin's signed statement."""
        self.swarm = swarm
        self.tree = tree
        self._sign = sign
        self._path = state_dir / STATE_FILE
        self.book = self._restore(CommitBook(deadline_s=deadline_s))
        if (msg := self.book.message()) is not None:
            swarm.set_commit(sign(msg.generation, msg.instead))

    def _restore(self, book: CommitBook) -> CommitBook:
        try:
            with open(self._path, "rb") as fh:
                raw = fh.read(_MAX_STATE_BYTES + 1)
            if len(raw) > _MAX_STATE_BYTES:
                raise ValueError("it is too large")
            return book.restored(json.loads(raw))
        except FileNotFoundError:
            return book
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s (the tree's commits start afresh): %s", self._path, exc)
            return book

    def published(self, generation: str, label: str, published_ms: int) -> None:
        self.book.published(Version(generation, label, published_ms), time.monotonic())
        self.step()

    def step(self) -> None:
        """Commit the current version if every joined host holds it; report a missed deadline."""
        readiness = self.swarm.readiness()
        if readiness is None:
            return
        out = self.book.step(readiness, time.monotonic())
        if isinstance(out, Commit):
            self._send(out)
            self.swarm.event("info", f"committed generation {out.generation[:12]}{self._label(out.generation)}: "
                                     f"all {readiness.hosts} hosts joined hold it")
        elif isinstance(out, Overdue) and self.tree:
            waiting = ", ".join(out.readiness.waiting) or "?"
            self.swarm.event("error", f"generation {out.generation[:12]} not committed after {out.waited_s:.0f} s: "
                                      f"{out.readiness.ready} of {out.readiness.hosts} hosts hold it; waiting "
                                      f"for {waiting}. No host switched; it is committed once they all hold it")

    def rollback(self, to: str | None) -> Commit | RollbackRefused:
        out = self.book.rollback(to)
        if isinstance(out, Commit):
            self._send(out)
            what = (f"rolled the tree back to generation {out.generation[:12]}{self._label(out.generation)} "
                    f"instead of {out.instead[:12]}" if out.instead
                    else f"rolled the tree forward to generation {out.generation[:12]}")
            self.swarm.event("info", what)
        return out

    def label_of(self, generation: str) -> str:
        v = next((v for v in (self.book.committed, self.book.current, *self.book.history)
                  if v is not None and v.generation == generation), None)
        return v.label if v is not None else ""

    def _label(self, generation: str) -> str:
        label = self.label_of(generation)
        return f" labelled {show_path(label, 80)!r}" if label else ""

    def _send(self, commit: Commit) -> None:
        self.swarm.set_commit(self._sign(commit.generation, commit.instead))
        try:
            write_json_atomic(self._path, self.book.to_dict())
        except OSError as exc:
            log.warning("cannot keep the tree's commit in %s: %s", self._path, exc)

    async def run(self) -> None:
        """Once a second: the deadline passes even when nobody's holdings change."""
        while True:
            await asyncio.sleep(TICK_S)
            self.step()

    def status(self) -> CommitState:
        b, r = self.book, self.book.readiness
        return CommitState(mode="tree" if self.tree else "host", state=b.state(),
                           generation=b.current.generation if b.current else None,
                           committed=b.committed.generation if b.committed else None,
                           committed_label=b.committed.label if b.committed else None,
                           instead=b.held or None, deadline_s=b.deadline_s,
                           hosts=r.hosts if r else 0, ready=r.ready if r else 0,
                           waiting=r.waiting if r else ())
