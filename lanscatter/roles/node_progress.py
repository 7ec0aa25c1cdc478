"""What `lanscatter peer` and `proxy` show the operator while they run, and what every node says at
the end: a state line, a progress bar on a terminal (log lines elsewhere), a summary.

States, in order: `connecting to MASTER (attempt n, retrying: why)` until the first join,
`joined MASTER, waiting for its first generation`, `syncing`, `synced`; `reconnecting to MASTER ...`
when a joined node lost its master. Off a terminal each change of state is one log line, and while
syncing a progress line every `LOG_EVERY_S`; never `0 B of 0 B` before anything is known.
`state_line`, `figures` and the summaries are pure (the tests read them); the loop is the I/O shell.
A master ends with `node_report` printed by `lanscatter.topology.summary`: the lines `up` ends with.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lanscatter.core.eta import MeanRateEta
from lanscatter.core.ideal import efficiency
from lanscatter.core.sizes import format_byte_rate, format_bytes
from lanscatter.core.status import StatusDoc

if TYPE_CHECKING:                # a master's summary needs none of the peer's modules to load
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
    link = node.link
    return Snapshot(master=link.master_text, connected=link.connected,
                    joined_once=link.joined_once, attempts=link.connect_attempts, error=link.connect_error,
                    generation=st.generation, have=me.have, chunks=st.chunks, held=held, total=total,
                    rate=node.rx_rate(), sources=len(node.downloads.sources), synced=st.synced)


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


def peer_summary(role: str, s: Snapshot, sync_s: float | None, fetched_chunks: int, local_copies: int,
                 wire_bytes: int = 0, data_bytes: int = 0) -> str:
    """The line a peer or relay prints when it ends. `sync_s`: from the generation's arrival until
    the folder held it whole, or until now (not how long the node ran: a service runs for days).
    `wire_bytes`: what arrived on the network for `data_bytes` of chunk content; less when chunks
    came compressed."""
    if s.generation is None:
        return f"{role}: never got a generation from {s.master} ({state_line(s)})"
    state = "synced" if s.synced else f"stopped at {s.have}/{s.chunks} chunks"
    took = f", {sync_s:.{2 if sync_s < 1 else 1}f} s after it arrived" if sync_s is not None else ""
    line = (f"{role}: {state}; generation {s.generation[:12]}, {format_bytes(s.held)} of {format_bytes(s.total)}"
            f"{took}; {fetched_chunks} chunks fetched, {local_copies} copied locally")
    if data_bytes:
        line += (f"; {format_bytes(wire_bytes)} on the wire for {format_bytes(data_bytes)} "
                 f"({wire_bytes / data_bytes:.2f}x)")
    return line


def node_report(status: StatusDoc, *, bottleneck: float | None = None, log_file: str | None = None) -> dict[str, Any]:
    """A master's (or a relay's downstream side's) end, as a report `summary_lines` prints like the
    end of `lanscatter up`: per site, the median and last time a node it serves became complete
    after its generation was published; the makespan; the ideal and efficiency when the caller knows
    the rate of the ideal run (`bottleneck`, bytes/s); bytes per WAN link; where the log is. A node
    restarts nothing, so its summary has no restarts line."""
    home = status.site or "lan"                           # a master run by hand knows no site name
    published = status.generation_at
    times: dict[str, list[float | None]] = {}
    for n in status.nodes:
        took = max(0.0, n.complete_at - published) if n.complete_at is not None and published is not None else None
        times.setdefault(n.site or home, []).append(took)
    sites = {}
    for site, ts in times.items():
        finished = sorted(t for t in ts if t is not None)
        sites[site] = {"hosts": len(ts), "hosts_done": len(finished),
                       "p50_s": finished[(len(finished) - 1) // 2] if finished else None,
                       "last_s": finished[-1] if finished and len(finished) == len(ts) else None,
                       "synced": len(finished) == len(ts)}
    every = [t for ts in times.values() for t in ts]
    makespan = max(t for t in every if t is not None) if every and None not in every else None
    # The swarm calls itself synced when the nodes still connected are; a node that left before it
    # was complete is a row "not synced" here, and the first line must not say otherwise.
    synced = status.synced and makespan is not None
    wan: dict[str, dict[str, Any]] = {}
    for link in status.links:                             # a relay's own link from upstream
        wan[link.name] = {"bytes": link.bytes, "data_bytes": link.data_bytes}
    for n in status.nodes:                                # the relays this master serves
        if n.role == "relay" and n.site and n.site != home:
            wan.setdefault(f"wan:{home}>{n.site}", {"bytes": n.rx_bytes, "data_bytes": None})
    ideal_s = round(status.bytes / bottleneck, 3) if bottleneck and status.bytes else None
    ratio = efficiency(ideal_s, makespan) if ideal_s is not None and makespan else None
    return {
        "dataset": " ".join(dict.fromkeys((status.role or "master", status.name))).strip(),
        # (only the node itself in its swarm, now or before: nobody was served, nothing is synced)
        "outcome": "alone" if len(status.nodes) <= 1 else "synced" if synced else "interrupted",
        "generation": status.generation, "dataset_bytes": status.bytes,
        "chunks": status.chunks, "synced": synced,
        "sites": sites, "site_order": list(times), "makespan_s": makespan,
        "ideal_s": ideal_s, "bottleneck_bytes_per_s": bottleneck,
        "efficiency": None if ratio is None else round(ratio.value, 4),
        "wan_links": wan, "logs": log_file,
    }


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
        self.logs = LogsAboveBar(self.progress)

    def show(self, state: str, s: Snapshot, text: str) -> None:
        self.progress.update(self.task, completed=s.held, total=s.total or None, state=state, figures=text)

    def stop(self) -> None:
        self.logs.stop()


class LogsAboveBar:
    """Starts a rich live display (a progress bar) with the log's terminal lines printed above it.

    The log's handlers hold the stderr they were given at start-up, which the display does not
    redirect: their lines would land in the middle of the bar. While the display runs they write
    to its stderr proxy instead, and get the real stderr back when it stops."""

    def __init__(self, live: Any) -> None:
        original = sys.stderr
        live.start()                    # replaces sys.stderr with a proxy that prints above the display
        self._live = live
        self._moved = [h for h in logging.getLogger().handlers
                       if type(h) is logging.StreamHandler and h.stream is original]
        for handler in self._moved:
            handler.setStream(sys.stderr)
        self._original = original

    def stop(self) -> None:
        self._live.stop()
        for handler in self._moved:
            handler.setStream(self._original)
