"""Polls every site master's `/status`, feeds the tracker, prints live progress, fires hooks.

The I/O shell around `SyncTracker`: one GET per site master every `interval` seconds (they answer
without the swarm secret and carry no file names). Progress is one log line every few seconds: per
site, hosts done of hosts and the mean share of chunks held; the ETA by the product's one rule
(`core/eta.py`: `ETA --` until the mean rate has been measured); per WAN link, bytes carried and
their ratio to the data set. Each host's and each site's completion is logged when it is first seen.

A site master that does not answer is never waited on in silence: once it has been silent for
`silent_after` seconds without having finished its site, a warning names it, its address, how long
and what it said last, and repeats every `warn_every` seconds. One that finished its site and then
stopped answering (a relay whose `up` exits when done) is logged once as finished. A site with
standby gateways is asked at each of them, and the one whose status says it is active counts.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import logging
import math
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from lanscatter.core.eta import MeanRateEta
from lanscatter.core.sizes import format_bytes
from lanscatter.core.status import StatusDoc, StatusError
from lanscatter.deploy.tracker import Completion, SyncTracker, wan_links_of
from lanscatter.net.status_client import get_status
from lanscatter.topology.derive import DeploymentPlan, HostPlan
from lanscatter.topology.roles import RoleCommand, status_url

log = logging.getLogger("lanscatter.up")

async def wait_until_answers(url: str, interval: float = 0.3) -> None:
    """Return once `url` answers a GET with 200 (cancel to give up)."""
    while True:
        try:
            await asyncio.to_thread(get_status, url, 2.0)
            return
        except StatusError:
            return                       # it answers (what it says is for the watcher to judge)
        except (OSError, http.client.HTTPException):
            await asyncio.sleep(interval)


async def wait_until_all_answer(urls: Sequence[str], limit_s: float) -> None:
    """Return once every url answers, or after limit_s seconds whichever comes first."""
    try:
        async with asyncio.timeout(limit_s):
            await asyncio.gather(*(wait_until_answers(u, interval=0.1) for u in urls))
    except TimeoutError:
        log.warning("not every role answered within %.0f s; starting the origin anyway", limit_s)


def start_gates(commands: Sequence[RoleCommand], limit_s: float = 30.0
                ) -> dict[str, Callable[[], Coroutine[Any, Any, None]] | None]:
    """What each role waits for before it starts, by host name.

    Relays and peers start at once and retry until their upstream answers. The origin waits
    (at most limit_s) until the other roles started here answer, so they are already joined when
    its first generation appears: the run then measures the distribution, not process start-up,
    as it is in a standing deployment where a new build lands on the origin."""
    others = [c.status_url for c in commands if c.role != "master"]
    return {c.host: (functools.partial(wait_until_all_answer, others, limit_s)
                     if c.role == "master" and others else None) for c in commands}


class Watcher:
    def __init__(self, plan: DeploymentPlan, tracker: SyncTracker, scope: Sequence[HostPlan], *,
                 interval: float = 0.5, progress_every: float = 3.0, silent_after: float = 20.0,
                 warn_every: float = 60.0, on_complete: Callable[[Completion], None] | None = None,
                 on_synced: Callable[[], None] | None = None) -> None:
        """`scope`: the hosts this run is responsible for (`synced` is about them, docs/orchestrator.md)."""
        self.plan = plan
        self.scope = list(scope)
        self.tracker = tracker
        self.interval = interval
        self.progress_every = progress_every
        self.on_complete = on_complete
        self.on_synced = on_synced
        self.silent_after = silent_after
        self.warn_every = warn_every
        self.synced = asyncio.Event()
        self._site_done: set[tuple[str, str]] = set()      # (site, generation) logged as synced
        self._warned: dict[str, float] = {}                 # site -> when its silence was last told
        self._finished_told: set[str] = set()
        # A site with standby gateways is described by whichever of them is active.
        self._urls = {site: [status_url(*addr) for addr in heads] for site, heads in plan.site_heads().items()}
        # Peers of this run are asked directly: their site master may be gone once the tree is done.
        self._own = [status_url(h.address, h.peer_port) for h in self.scope if h.role == "peer" and not plan.local]
        self._started = time.monotonic()
        self._generation: str | None = None
        self._eta = MeanRateEta()
        self._malformed: set[str] = set()                   # urls whose answer was told to be unusable

    def now(self) -> float:
        return time.monotonic() - self._started

    async def run(self) -> None:
        """Poll until cancelled; `synced` is set while the hosts in scope have done their part."""
        timeout = max(2.0, self.interval * 4)
        last_line = 0.0
        while True:
            heads = [(site, url) for site, urls in self._urls.items() for url in urls]
            answers = await asyncio.gather(*(self._get(url, timeout) for url in [*(u for _, u in heads), *self._own]))
            now = self.now()
            for site, status in _active_heads(heads, answers).items():
                for done in self.tracker.observe(now, site, status):
                    self._completed(done)
            for status in answers[len(heads):]:
                for done in self.tracker.observe_node(now, status):
                    self._completed(done)
            self._note_generation()
            self._note_sites(now)
            if self.tracker.hosts_done(self.scope):
                if not self.synced.is_set():
                    if self.tracker.synced():
                        log.info("every host holds generation %s", (self.tracker.generation or "")[:12])
                    log.info("%s", self.progress_line())
                    if self.on_synced is not None:
                        self.on_synced()
                self.synced.set()
            else:
                self.synced.clear()
                if time.monotonic() - last_line >= self.progress_every:
                    last_line = time.monotonic()
                    log.info("%s", self.progress_line())
            await asyncio.sleep(self.interval)

    async def _get(self, url: str, timeout: float) -> StatusDoc | None:
        """The status at `url`, or None when it does not answer with one (told once per url)."""
        try:
            status = await asyncio.to_thread(get_status, url, timeout)
        except (OSError, http.client.HTTPException):
            return None
        except StatusError as exc:
            if url not in self._malformed:
                self._malformed.add(url)
                log.warning("%s answers with no usable status document: %s", url, exc)
            return None
        self._malformed.discard(url)
        return status

    def _note_generation(self) -> None:
        gen = self.tracker.generation
        if gen is not None and gen != self._generation:
            if self._generation is not None:
                log.info("the origin has a new generation %s: following it", gen[:12])
            else:
                log.info("origin serving generation %s: %s in %d chunks", gen[:12],
                         format_bytes(self.tracker.dataset_bytes), self.tracker.chunks)
            self._generation = gen

    def _note_sites(self, now: float) -> None:
        """Log sites that just finished, finished masters gone quiet, and silences past the limit."""
        gen = self.tracker.generation
        for s in self.plan.sites:
            if gen and self.tracker.site_synced(s.name) and (s.name, gen) not in self._site_done:
                self._site_done.add((s.name, gen))
                _, _, last = self._site_times(s.name)
                log.info("site %s synced%s", s.name, f" after {last:.1f} s" if last is not None else "")
            if (s.name in self.tracker.silent_since and self.tracker.site_synced(s.name)
                    and s.name not in self._finished_told):
                self._finished_told.add(s.name)
                log.info("site %s: %s finished its site and stopped answering", s.name, s.master)
        for site, silent_s in self.tracker.silent_sites(now):
            if silent_s < self.silent_after or now - self._warned.get(site, -math.inf) < self.warn_every:
                continue
            self._warned[site] = now
            plan = self.plan.site(site)
            log.warning("site %s: %s at %s has not answered for %.0f s; last seen: %s", site,
                        ", ".join((plan.master, *plan.standbys)), ", ".join(self._urls[site]), silent_s,
                        self.tracker.last_seen(site))

    def _site_times(self, site: str) -> tuple[int, int, float | None]:
        times = [t for h in self.plan.hosts if h.site == site and (t := self.tracker.done_s(h.name)) is not None]
        total = sum(1 for h in self.plan.hosts if h.site == site)
        return len(times), total, max(times) if times else None

    def _completed(self, done: Completion) -> None:
        if done.host != self.tracker.origin:
            log.info("%s complete after %.1f s", done.host, done.done_s)
        if self.on_complete is not None:
            self.on_complete(done)

    def progress_line(self, now: float | None = None) -> str:
        """The headless progress line at `now` (seconds since the run started; default: now)."""
        now = self.now() if now is None else now
        t = self.tracker
        parts = [f"{now:6.1f}s"]
        if t.generation is None:        # the origin is still scanning and publishing: no figure means anything yet
            return f"{parts[0]} | waiting for the origin's first generation ({self.plan.sites[0].master} scans its folder)"
        held = hosts = 0.0
        for s in self.plan.sites:
            done, total, share = t.site_progress(s.name)
            parts.append(f"{s.name} {done}/{total}" + ("" if done == total else f" {share:4.0%}"))
            held, hosts = held + share * total, hosts + total
        left = self._eta.update(held, hosts, now)
        if left != 0.0:                 # the product's one ETA rule: nothing until the mean rate is known
            parts.append("ETA --" if left is None else f"ETA {left:.0f}s")
        for link in wan_links_of(self.plan):
            carried, data = t.link_bytes(link), t.link_data_bytes(link)
            shown = carried if data is None else data
            ratio = f" ({shown / t.dataset_bytes:.2f}x)" if t.dataset_bytes else ""
            wire = f", {format_bytes(carried)} on the wire" if data is not None and carried != data else ""
            parts.append(f"{link} {format_bytes(shown)}{ratio}{wire}")
        return " | ".join(parts)


def _active_heads(heads: Sequence[tuple[str, str]], answers: Sequence[StatusDoc | None]
                  ) -> dict[str, StatusDoc | None]:
    """Per site, the status of the head that describes its swarm: its master, or the gateway whose
    status says it is active (a standby's status describes only itself); None when none answers."""
    out: dict[str, StatusDoc | None] = {}
    for (site, _url), status in zip(heads, answers):
        standby = status is not None and status.gateway is not None and not status.gateway.active
        if out.get(site) is None and not standby:
            out[site] = status
        else:
            out.setdefault(site, None)
    return out
