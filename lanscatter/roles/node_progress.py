"""What `lanscatter peer` and `proxy` show the operator while they run, and what every node says at
the end: a state line, a progress bar on a terminal (log lines elsewhere), a summary.

States, in order: `connecting to MASTER (attempt n, retrying: why)` until the first join,
`joined MASTER, waiting for its first generation`, `syncing`, `synced`; `reconnecting to MASTER ...`
when a joined node lost its master. Off a terminal each change of state is one log line, and while
syncing a progress line every `LOG_EVERY_S`; never `0 B of 0 B` before anything is known.
`state_line`, `figures` and the summaries are pure (the tests read them); the loop is the I/O shell.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass

from lanscatter.core.eta import MeanRateEta
from lanscatter.core.sizes import format_byte_rate, format_bytes
from lanscatter.core.status import StatusDoc
from lanscatter.roles.peer import PeerNode

log = logging.getLogger("lanscatter.cli")

LOG_EVERY_S = 10.0
TICK_S = 0.25


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A peer (or a relay's upstream side) at one moment, as the operator is told of it."""

    master: str
    connected: bool
    joined_once: bool
    attempts: int
    error: str | None
    generation: str | None
    have: int
    chunks: int
    held: int                 # bytes of distinct content held
    total: int
    rate: float               # bytes/s received, over the last seconds
    sources: int              # nodes it is downloading from now
    synced: bool


def snapshot(node: PeerNode) -> Snapshot:
    st = node.status()
    me = st.nodes[0]
    held, total = node.progress()
    return Snapshot(master=node.master_text, connected=node.connected,
                    joined_once=node.joined_once, attempts=node.connect_attempts, error=node.connect_error,
                    generation=st.generation, have=me.have, chunks=st.chunks, held=held, total=total,
                    rate=node.rx_rate(), sources=len(node.sources), synced=st.synced)


def state_line(s: Snapshot) -> str:
    if not s.connected:
        verb = "reconnecting to" if s.joined_once else "connecting to"
        why = f": {s.error}" if s.error else ""
        return f"{verb} {s.master} (attempt {max(1, s.attempts)}, retrying{why})"
    if s.generation is None:
        return f"joined {s.master}, waiting for its first generation"
    return "synced" if s.synced else "syncing"


def figures(s: Snapshot, eta_s: float | None) -> str:
    """'12 MiB of 24 MiB  3 MiB/s  ETA 4s  40/96 chunks  2 sources' (empty before a generation)."""
    if s.generation is None:
        return ""
    eta = "" if s.synced else ("  ETA --" if eta_s is None else f"  ETA {eta_s:.0f}s")
    rate = f"  {format_byte_rate(s.rate)}" if not s.synced else ""
    sources = f"  {s.sources} source{'s' if s.sources != 1 else ''}" if not s.synced else ""
    return f"{format_bytes(s.held)} of {format_bytes(s.total)}{rate}{eta}  {s.have}/{s.chunks} chunks{sources}"


def peer_summary(role: str, s: Snapshot, elapsed_s: float, fetched_chunks: int, local_copies: int) -> str:
    """The line a peer or relay prints when it ends."""
    if s.generation is None:
        return f"{role}: never got a generation from {s.master} ({state_line(s)})"
    state = "synced" if s.synced else f"stopped at {s.have}/{s.chunks} chunks"
    return (f"{role}: {state}; generation {s.generation[:12]}, {format_bytes(s.held)} of {format_bytes(s.total)} "
            f"after {elapsed_s:.1f} s; {fetched_chunks} chunks fetched, {local_copies} copied locally")


def master_summary(status: StatusDoc) -> str:
    """The line a master prints when it ends: what it served and who is in sync."""
    peers = status.nodes[1:]
    chunks = status.chunks
    done = sum(1 for n in peers if chunks and n.have >= chunks)
    served = status.nodes[0].tx_bytes if status.nodes else 0
    gen = (status.generation or "")[:12] or "none"
    return (f"master: generation {gen}, {format_bytes(status.bytes)} in {chunks} chunks; "
            f"served {format_bytes(served)}; {done}/{len(peers)} peers in sync")


async def follow_peer(node: PeerNode, role: str, *, until_synced: bool = False) -> None:
    """Show `node`'s state and progress until cancelled (or synced, with `until_synced`)."""
    bar = _Bar() if sys.stderr.isatty() else None
    eta = MeanRateEta()
    last_state, last_log = "", 0.0
    try:
        while True:
            s = snapshot(node)
            now = time.monotonic()
            state = state_line(s)
            left = eta.update(s.held, s.total, now) if s.total else None
            if bar is not None:
                bar.show(state, s, figures(s, left))
            elif _kind(state) != _kind(last_state) or (not s.synced and now - last_log >= LOG_EVERY_S):
                text = figures(s, left)
                log.info("%s: %s%s", role, state, f": {text}" if text else "")
                last_log = now
            last_state = state
            if until_synced and s.synced:
                return
            await asyncio.sleep(TICK_S)
    finally:
        if bar is not None:
            bar.stop()


def _kind(state: str) -> str:
    """The state without its figures ('connecting', 'joined', 'syncing', ...): a change is news."""
    return state.split(" ", 1)[0]


class _Bar:
    """The rich progress bar on a terminal: state, bar, then the figures (our units, our ETA)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("{task.fields[state]:<9.60}"), BarColumn(),
                                 TextColumn("{task.fields[figures]}"))
        self.task = self.progress.add_task("sync", total=None, state="", figures="")
        self.progress.start()

    def show(self, state: str, s: Snapshot, text: str) -> None:
        self.progress.update(self.task, completed=s.held, total=s.total or None, state=state, figures=text)

    def stop(self) -> None:
        self.progress.stop()
