"""What a run has achieved, from the status documents of the site masters: pure, no I/O, no clock.

The watcher feeds `observe(now, site, status)` with the `/status` JSON of each site's master (the
origin for the root site, the relay for the others), `now` in seconds since the run started.
From those it keeps:
- the origin's generation, and when it was published (the origin's status says when, on its own
  clock, so the poll interval does not shift it): every time of a generation is measured from
  there (the scan that precedes it is not distribution time);
- per host and generation, the moment the host held every chunk (`have == chunks` in a swarm
  whose generation is the origin's; the site master says when); that moment is the host's
  `done_s`; a host seen holding it only staged (waiting for the tree's commit) is done once it
  shows it;
- per WAN link, the bytes it carried, summed across restarts of the relay that reports it (a
  restarted relay starts counting from zero again);
- which sites are synced (the site's swarm says every node holds every chunk of the origin's
  generation). A site master that stops answering keeps its last status: one last seen synced at
  the origin's generation has *finished* (a relay whose `up` exits once its site is done), one last
  seen short of it has *stopped answering* (`silent_sites`), and the watcher says which and since when;
- per WAN link, the data bytes it brought (chunk content, as verified) beside the bytes on the
  wire (less when LZ4 shrank chunks in flight).
`report()` gives the JSON document of `--report` (docs/orchestrator.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lanscatter.core.ideal import efficiency, ideal_time
from lanscatter.core.status import StatusDoc
from lanscatter.topology.derive import DeploymentPlan, HostPlan


@dataclass(frozen=True, slots=True)
class Completion:
    host: str
    generation: str
    done_s: float                      # since the generation first appeared at the origin


@dataclass(slots=True)
class _Counter:
    """A byte counter that survives restarts of the process that reports it."""

    base: int = 0
    last: int = 0

    def see(self, value: int) -> None:
        if value < self.last:          # the reporter restarted and counts from zero again
            self.base += self.last
        self.last = value

    def restart(self) -> None:
        self.base += self.last
        self.last = 0

    @property
    def total(self) -> int:
        return self.base + self.last


@dataclass(slots=True)
class _HostState:
    have: int = 0
    chunks: int = 0
    done: dict[str, float] = field(default_factory=dict)   # generation -> seconds since run start


def wan_links_of(plan: DeploymentPlan) -> list[str]:
    """The WAN links data flows over: from each site's parent to the site."""
    return [f"wan:{s.parent}>{s.name}" for s in plan.sites if s.parent is not None]


def bottleneck_bytes_per_s(plan: DeploymentPlan) -> float:
    """The rate at which the ideal (`lanscatter.core.ideal`) delivers a copy to every host: dataset
    bytes / ideal time, whatever the size. `inf` when no link limits anything."""
    return ideal_time(plan.link_map, plan.sites[0].master, 1.0).bytes_per_s


class SyncTracker:
    def __init__(self, plan: DeploymentPlan) -> None:
        self.plan = plan
        self.origin = plan.sites[0].master
        self.root_site = plan.sites[0].name
        self.hosts = {h.name: _HostState() for h in plan.hosts}
        self.statuses: dict[str, StatusDoc] = {}
        self.generation: str | None = None
        self.published: dict[str, Any] | None = None       # the origin's version: label, publish time
        self.first_seen: dict[str, float] = {}              # generation -> seconds since run start
        self.dataset_bytes = 0
        self.chunks = 0
        self.links: dict[tuple[str, str], _Counter] = {}    # (link, reporting site) -> wire bytes
        self.link_data: dict[tuple[str, str], _Counter] = {}  # (link, reporting site) -> data bytes
        self.restarts: dict[str, int] = {}
        self.answered_at: dict[str, float] = {}             # site -> last answer (seconds since start)
        self.silent_since: dict[str, float] = {}            # site -> first unanswered poll since then

    # ---- input -------------------------------------------------------------------------------
    def observe(self, now: float, site: str, status: StatusDoc | None) -> list[Completion]:
        """Record one site master's status (None: it did not answer); the hosts that just completed."""
        if status is None:
            self.silent_since.setdefault(site, now)
            return []
        self.silent_since.pop(site, None)
        self.answered_at[site] = now
        self.statuses[site] = status
        gen = status.generation
        if site == self.root_site and gen:
            if gen != self.generation:
                self.generation = gen
                self.first_seen.setdefault(gen, now - _age(status, status.generation_at, now))
            pub = status.published
            self.published = {"generation": pub.generation, "label": pub.label, "published_ms": pub.published_ms} \
                if pub is not None else None
            self.dataset_bytes = status.bytes
            self.chunks = status.chunks
        elif self.generation is None and gen and status.synced:
            # The origin was never seen with a generation (its run can end between two polls of a
            # host downstream): a site that says it holds a whole generation is the best there is.
            self.generation = gen
            self.first_seen.setdefault(gen, now - _age(status, status.generation_at, now))
            self.dataset_bytes = status.bytes
            self.chunks = status.chunks
        for link in status.links:
            if link.name.startswith("wan:"):
                self.links.setdefault((link.name, site), _Counter()).see(link.bytes)
                if link.data_bytes is not None:
                    self.link_data.setdefault((link.name, site), _Counter()).see(link.data_bytes)
        return self._completions(now, status)

    def observe_node(self, now: float, status: StatusDoc | None) -> list[Completion]:
        """Record a peer's own status (its chunk server's /status): it tells when that peer is done
        even when its site master is no longer there to say so."""
        if status is None:
            return []
        gen = status.generation
        if self.generation is None and gen:
            # The origin never answered with a generation (it was still scanning, then went away):
            # the peer's own generation is the best there is.
            self.generation = gen
            self.first_seen.setdefault(gen, now)
        return self._completions(now, status)

    def restarted(self, host: str) -> None:
        """The supervisor restarted `host`: counters it reported start again from zero."""
        self.restarts[host] = self.restarts.get(host, 0) + 1
        for s in self.plan.sites:
            if s.master == host:
                for counters in (self.links, self.link_data):
                    for (_name, site), counter in counters.items():
                        if site == s.name:
                            counter.restart()

    def _host_name(self, node_name: str) -> str | None:
        """The planned host behind a node name (a swarm renames a second `x` to `x-2`)."""
        if node_name in self.hosts:
            return node_name
        base = re.sub(r"-\d+$", "", node_name)
        return base if base in self.hosts else None

    def _completions(self, now: float, status: StatusDoc) -> list[Completion]:
        gen = status.generation
        if gen is None or gen != self.generation:
            return []
        chunks = status.chunks
        out = []
        for node in status.nodes:
            host = self._host_name(node.name)
            if host is None:
                continue
            state = self.hosts[host]
            have = node.have
            state.have, state.chunks = have, chunks
            # A host that holds the generation staged but does not show it yet (tree activation
            # waits for the commit) is not done: its hooks run once its folder shows it.
            waiting = node.staged is not None and node.staged.generation == gen
            if have >= chunks and not waiting and gen not in state.done:
                # the master says when the host completed: the poll interval adds nothing
                at = max(self.first_seen[gen], now - _age(status, node.complete_at, now))
                state.done[gen] = at
                out.append(Completion(host, gen, at - self.first_seen[gen]))
        return out

    # ---- views -------------------------------------------------------------------------------
    def done_s(self, host: str) -> float | None:
        gen = self.generation
        if gen is None or gen not in self.hosts[host].done:
            return None
        return round(self.hosts[host].done[gen] - self.first_seen[gen], 3)

    def site_synced(self, site: str) -> bool:
        """The site's swarm said, in its last answer, that it holds the origin's generation everywhere
        (a site master that finished and stopped answering stays synced)."""
        st = self.statuses.get(site)
        return bool(st and self.generation and st.generation == self.generation and st.synced)

    def silent_sites(self, now: float) -> list[tuple[str, float]]:
        """(site, seconds without an answer) of every site master not answering that has not
        finished: never answered since the run started, or stopped short of the generation."""
        out = []
        for s in self.plan.sites:
            since = self.silent_since.get(s.name)
            if since is None or self.site_synced(s.name):
                continue
            out.append((s.name, now - self.answered_at.get(s.name, 0.0)))
        return out

    def last_seen(self, site: str) -> str:
        """What the site master said last, in words (for a warning about its silence)."""
        if site not in self.statuses:
            return "never answered"
        if not self.statuses[site].generation:
            return "answering, without a generation yet"
        done, total, share = self.site_progress(site)
        gen = self.statuses[site].generation
        return (f"{done}/{total} hosts done, {share:.0%} of the chunks held"
                f"{'' if gen == self.generation else ', at another generation'}")

    def synced(self) -> bool:
        """Every site's swarm holds the origin's generation on every node, and every host was seen done."""
        return (self.generation is not None and all(self.site_synced(s.name) for s in self.plan.sites)
                and all(self.done_s(h) is not None for h in self.hosts))

    def hosts_done(self, hosts: Iterable[HostPlan]) -> bool:
        """Whether these hosts' roles have done their part: the origin when the whole tree is in sync,
        a relay when its site is, a peer when its folder is complete."""
        for h in hosts:
            if h.role == "master":
                ok = self.synced()
            elif h.role == "relay":
                ok = self.site_synced(h.site) and self.done_s(h.name) is not None
            else:
                ok = self.done_s(h.name) is not None
            if not ok:
                return False
        return True

    def site_progress(self, site: str) -> tuple[int, int, float]:
        """(hosts done, hosts, mean fraction of chunks held) for the current generation."""
        names = [h.name for h in self.plan.hosts if h.site == site]
        done = sum(1 for n in names if self.done_s(n) is not None)
        fractions = [1.0 if self.done_s(n) is not None else
                     (self.hosts[n].have / self.hosts[n].chunks if self.hosts[n].chunks else 0.0) for n in names]
        return done, len(names), sum(fractions) / len(fractions) if fractions else 1.0

    def link_bytes(self, link: str) -> int:
        """Bytes the link carried on the wire."""
        return max((c.total for (name, _), c in self.links.items() if name == link), default=0)

    def link_data_bytes(self, link: str) -> int | None:
        """Chunk content the link brought (None when its relay does not say)."""
        return max((c.total for (name, _), c in self.link_data.items() if name == link), default=None)

    # ---- the report ----------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        done = {h.name: self.done_s(h.name) for h in self.plan.hosts}
        hosts = {h.name: {"site": h.site, "role": h.role, "folder": str(h.folder), "done_s": done[h.name]}
                 for h in self.plan.hosts}
        finished = [t for t in done.values() if t is not None]
        makespan = max(finished) if finished and len(finished) == len(done) else None
        sites = {}
        for s in self.plan.sites:
            own = sorted(math.inf if (t := done[h.name]) is None else t for h in self.plan.hosts if h.site == s.name)
            p50 = own[(len(own) - 1) // 2] if own else math.inf
            sites[s.name] = {"hosts": len(own), "hosts_done": sum(1 for t in own if not math.isinf(t)),
                             "p50_s": None if math.isinf(p50) else p50,
                             "last_s": None if not own or math.isinf(own[-1]) else own[-1],
                             "synced": self.site_synced(s.name)}
        size = self.dataset_bytes
        wan = {}
        for name in wan_links_of(self.plan):
            carried, data = self.link_bytes(name), self.link_data_bytes(name)
            wan[name] = {"bytes": carried, "ratio": round(carried / size, 4) if size else None,
                         "data_bytes": data, "data_ratio": round(data / size, 4) if size and data is not None else None,
                         "capacity_bytes_per_s": self.plan.link_map.links[name].bytes_per_s}
        rate = bottleneck_bytes_per_s(self.plan)
        ideal = size / rate if size and not math.isinf(rate) else None
        # clamped at 1 (and flagged) where compressed chunks beat the ideal, which counts whole copies
        ratio = efficiency(ideal, makespan) if ideal is not None and makespan else None
        return {
            "dataset": self.plan.dataset.name, "generation": self.generation, "published": self.published,
            "dataset_bytes": size,
            "chunks": self.chunks, "synced": self.synced(), "makespan_s": makespan,
            "ideal_s": None if ideal is None else round(ideal, 3),
            "bottleneck_bytes_per_s": None if math.isinf(rate) else rate,
            "efficiency": None if ratio is None else round(ratio.value, 4),
            "efficiency_clamped": ratio is not None and ratio.clamped,
            "hosts": hosts, "sites": sites, "site_order": [s.name for s in self.plan.sites], "wan_links": wan,
            "restarts": dict(self.restarts),
            "local": self.plan.local,
        }


def _age(status: StatusDoc, at: float | None, now: float) -> float:
    """Seconds between a moment a status names and the status's own "time", both on the clock of
    the node that answered (0 when the moment is missing or the age is implausible)."""
    if at is None:
        return 0.0
    age = status.time - at
    return age if 0 <= age <= now else 0.0
