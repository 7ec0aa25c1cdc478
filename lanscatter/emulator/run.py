"""`lanscatter emulate FILE`: every host of a site tree in its own namespace, on a shaped network.

The I/O shell that joins three parts that exist on their own:
- `Emulation` builds the network the file describes (`from_topology.net_spec`) and removes it on
  exit, Ctrl-C, SIGTERM or an error;
- the roles are the very command lines `lanscatter up` runs (`topology.roles.role_command`), each
  started as `ip netns exec <host namespace> ...` by the `up` supervisor. They get `--topology` and
  `--host` (their planner knows the tree and its link speeds) but never `--local`: the network itself
  is shaped, nothing in the program emulates it;
- the `up` watcher and tracker follow the distribution through the site masters' `/status`.

Reaching the masters: their addresses exist only inside the emulated namespaces, so the thread that
runs the watcher enters the origin's namespace (which routes to every site) for the run and leaves it
before teardown. Its polls cross WAN links as small requests downwards and status documents upwards;
the report counts WAN bytes in the downward direction only, from the parent router's interface
counters (TCP payload estimate, see `LinkCounters`), so those polls add a few hundred bytes a second
per relay at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanscatter.core.errors import ConfigError
from lanscatter.deploy.demo_data import DEFAULT_DEMO_SIZE, generate_demo
from lanscatter.deploy.supervisor import EXIT_INTERRUPTED, ProcessSpec, Supervisor, stop_on_signals
from lanscatter.deploy.tracker import SyncTracker
from lanscatter.deploy.watch import Watcher, start_gates
from lanscatter.disk.atomic_file import write_json_atomic
from lanscatter.emulator.from_topology import emulated_plan, net_spec, wan_link_names
from lanscatter.emulator.link_use import busy_use
from lanscatter.emulator.netns import (
    DelayMechanism,
    Emulation,
    EmulatorError,
    LinkCounters,
    support_problem,
)
from lanscatter.emulator.spec import NetSpec
from lanscatter.topology.derive import DeploymentPlan
from lanscatter.topology.origin_keys import run_keys
from lanscatter.topology.roles import (
    RunContext,
    link_flag_support,
    registered_commands,
    role_command,
    role_env,
)
from lanscatter.topology.tls_plan import plan_tls
from lanscatter.topology.validate import load_topology, warnings_of

log = logging.getLogger("lanscatter.emulate")

_CLONE_NEWNET = 0x40000000
LOCAL_WORKDIR = ".lanscatter-emulate"


@dataclass(frozen=True, slots=True)
class EmulateOptions:
    file: Path
    workdir: Path | None
    demo_data: int | None              # bytes; only when the source is missing
    exit_when_synced: bool
    report: Path | None
    timeout: float | None
    mechanism: DelayMechanism
    tag: str


def require_support() -> None:
    problem = support_problem()
    if problem:
        raise EmulatorError(f"cannot emulate here: {problem}",
                            "run as root on Linux with iproute2 (`ip`, `tc`) and /dev/net/tun")


@contextlib.contextmanager
def inside_namespace(namespace: str) -> Iterator[None]:
    """Run the calling thread inside the named network namespace, and bring it back afterwards.

    Sockets made meanwhile (and the threads and processes started from this thread) belong to it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
        try:
            if libc.setns(target, _CLONE_NEWNET) != 0:
                raise EmulatorError(f"cannot enter namespace {namespace}: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(target)
        try:
            yield
        finally:
            if libc.setns(home, _CLONE_NEWNET) != 0:
                raise EmulatorError(f"cannot return from namespace {namespace}: "
                                    f"{os.strerror(ctypes.get_errno())}")
    finally:
        os.close(home)


def wan_report(spec: NetSpec, plan: DeploymentPlan, before: dict[str, LinkCounters],
               after: dict[str, LinkCounters], dataset_bytes: int,
               samples: dict[str, list[tuple[float, int]]] | None = None) -> dict[str, Any]:
    """The report's `wan_links`, from the interface counters (parent -> child) over the run;
    with samples taken during the run, also how full each link was kept while busy."""
    out = {}
    for name, key in wan_link_names(spec).items():
        payload = after[name].tx_tcp_payload - before[name].tx_tcp_payload
        raw = after[name].tx_bytes - before[name].tx_bytes
        capacity = plan.link_map.links[key].bytes_per_s
        out[key] = {"bytes": payload, "raw_bytes": raw,
                    "ratio": round(payload / dataset_bytes, 4) if dataset_bytes else None,
                    "capacity_bytes_per_s": capacity}
        use = busy_use(samples.get(name, []), capacity) if samples else None
        if use is not None:
            out[key]["busy_s"], out[key]["busy_use"] = round(use[0], 2), round(use[1], 4)
    return out


async def sample_wan(emu: Emulation, into: dict[str, list[tuple[float, int]]], every: float = 0.25) -> None:
    """Append (seconds, TCP payload parent -> child) per WAN link every `every` s until cancelled."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while True:
        counters = await loop.run_in_executor(None, emu.wan_counters)
        now = loop.time() - t0
        for name, c in counters.items():
            into.setdefault(name, []).append((now, c.tx_tcp_payload))
        await asyncio.sleep(every)


def run_emulation(opts: EmulateOptions) -> int:
    require_support()
    topo = load_topology(opts.file)
    for warning in warnings_of(topo):
        log.warning("%s", warning)
    spec = net_spec(topo, opts.tag)
    workdir = (opts.workdir or opts.file.parent / LOCAL_WORKDIR).resolve()
    plan = emulated_plan(topo, spec, workdir)
    if any(h.role == "relay" for h in plan.hosts) and "proxy" not in registered_commands():
        raise ConfigError("this topology has relays, but this installation has no relay command")
    source = plan.dataset.source
    if not source.is_dir():
        if source.exists():
            raise ConfigError(f"the data set source {source} is not a folder",
                              "fix dataset.source in the topology")
        generate_demo(source, opts.demo_data or DEFAULT_DEMO_SIZE)
    secret = plan.dataset.secret_value()
    tls = plan_tls(topo, plan, [h.name for h in plan.hosts], workdir / "state", one_machine=True)
    origin_key, signing_key = run_keys(plan, plan.hosts, rehearsal=workdir, state_root=workdir / "state")
    ctx = RunContext(topology_file=opts.file.resolve(), state_root=workdir / "state", local=False,
                     workdir=None, link_flags=link_flag_support(), all_hosts=True,
                     origin_key=origin_key, signing_key=signing_key, tls=tls)
    env = role_env(secret)
    with Emulation(spec, delay_mechanism=opts.mechanism) as emu:
        log.info("emulated %d sites, %d hosts (WAN delay/loss: %s); logs in %s", len(spec.sites),
                 len(spec.hosts), emu.delay_mechanism or "none needed", workdir / "logs")
        before = emu.wan_counters()
        origin = plan.sites[0].master
        with inside_namespace(emu.namespace(origin)):
            samples: dict[str, list[tuple[float, int]]] = {}
            code, tracker, after = asyncio.run(_supervise(opts, plan, emu, ctx, env, workdir, samples))
        # asyncio.run put the default SIGTERM action back: keep tearing down on SIGTERM
        signal.signal(signal.SIGTERM, _exit_on_signal)
        report = tracker.report()
        report["wan_links"] = wan_report(spec, plan, before, after, tracker.dataset_bytes, samples)
    if opts.report is not None:
        report["wan_bytes_from"] = "interface counters, TCP payload estimate, parent -> child"
        report["emulated"] = True
        report["delay_mechanism"] = emu.delay_mechanism
        # known once the network is down: what each forwarder passed, lost on purpose, or overflowed
        names = wan_link_names(spec)
        report["forwarders"] = {names[name]: stats for name, stats in emu.forwarder_stats.items()}
        write_json_atomic(opts.report, report)
        log.info("report written to %s", opts.report)
    return code


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


async def _supervise(opts: EmulateOptions, plan: DeploymentPlan, emu: Emulation, ctx: RunContext,
                     env: dict[str, str], workdir: Path, samples: dict[str, list[tuple[float, int]]]) -> tuple[int, SyncTracker, dict[str, LinkCounters]]:
    loop = asyncio.get_running_loop()
    stop, stop_signal = stop_on_signals(loop)

    tracker = SyncTracker(plan)
    supervisor = Supervisor()
    watcher = Watcher(plan, tracker, plan.hosts)
    commands = [role_command(plan, h, ctx) for h in plan.hosts]
    gates = start_gates(commands)
    for h, cmd in zip(plan.hosts, commands):
        h.folder.parent.mkdir(parents=True, exist_ok=True)
        supervisor.keep_running(ProcessSpec(h.name, ("ip", "netns", "exec", emu.namespace(h.name), *cmd.argv),
                                            workdir / "logs" / f"{h.name}.log", env=env,
                                            before_start=gates[h.name]))

    watching = asyncio.create_task(watcher.run(), name="watch")
    sampling = asyncio.create_task(sample_wan(emu, samples), name="wan-samples")
    waits = {asyncio.create_task(stop.wait())}
    if opts.exit_when_synced:
        waits.add(asyncio.create_task(watcher.synced.wait()))
    try:
        done, _ = await asyncio.wait(waits | {watching}, timeout=opts.timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        timed_out = not done
        if watching.done():
            watching.result()
    finally:
        counters = emu.wan_counters()
        for t in (*waits, watching, sampling):
            t.cancel()
        await asyncio.gather(*waits, watching, sampling, return_exceptions=True)
        log.info("stopping %d roles", len(plan.hosts))
        await supervisor.stop()
    tracker.restarts.update(supervisor.restarts)
    if stop_signal:
        return EXIT_INTERRUPTED[stop_signal[0]], tracker, counters
    if timed_out and not tracker.synced():
        log.warning("not every host was in sync after %.0f s", opts.timeout or 0)
        return 1, tracker, counters
    return 0, tracker, counters
