"""`lanscatter up FILE`: run the roles of a site tree, supervised, and follow the distribution.

Real deployment: the same FILE on every host; each runs the roles of the host it is (found by its
names and addresses, or named with --host). `--local`: every host of the tree on this machine, each
on its own 127.0.0.x address with its own folder under the work directory (docs/orchestrator.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from lanscatter.atomic_file import write_json_atomic
from lanscatter.auth import new_secret
from lanscatter.deploy import ssh_up
from lanscatter.errors import ConfigError
from lanscatter.sizes import parse_size
from lanscatter.topology.demo_data import DEFAULT_DEMO_SIZE, generate_demo
from lanscatter.topology.derive import LOCAL_WORKDIR, DeploymentPlan, HostPlan, derive_plan
from lanscatter.topology.hooks import Hook, HookRunner
from lanscatter.topology.hostmatch import local_identity, select_host
from lanscatter.topology.orchestrator import (
    EXIT_INTERRUPTED,
    ProcessEvent,
    ProcessSpec,
    Supervisor,
    stop_on_signals,
)
from lanscatter.topology.origin_keys import run_keys
from lanscatter.topology.roles import (
    SECRET_ENV,
    RunContext,
    link_flag_support,
    registered_commands,
    role_command,
)
from lanscatter.topology.tls_plan import plan_tls
from lanscatter.topology.tracker import SyncTracker
from lanscatter.topology.validate import load_topology
from lanscatter.topology.watch import Watcher, start_gates

log = logging.getLogger("lanscatter.up")



@dataclass(frozen=True, slots=True)
class UpOptions:
    file: Path
    local: bool
    host: str | None
    workdir: Path | None
    demo_data: int | None              # bytes; None: the default size, only when the source is missing
    headless: bool
    exit_when_synced: bool
    report: Path | None
    on_synced: str | None
    timeout: float | None              # seconds; with --exit-when-synced
    tui: bool = False                  # show the terminal monitor (not headless, on a terminal)
    store_and_forward: bool = False    # relays hold their site back until they have everything

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> UpOptions:
        return cls(Path(args.file), args.local, args.host, Path(args.workdir) if args.workdir else None,
                   args.demo_data, args.headless, args.exit_when_synced,
                   Path(args.report) if args.report else None, args.on_synced, args.timeout,
                   tui=not args.headless and sys.stdin.isatty() and sys.stdout.isatty(),
                   store_and_forward=args.store_and_forward)


def default_workdir(opts: UpOptions, plan: DeploymentPlan) -> Path:
    """Logs and state: beside the YAML for a rehearsal, the user's cache for a real deployment."""
    if opts.workdir is not None:
        return opts.workdir.resolve()
    if opts.local:
        return (opts.file.parent / LOCAL_WORKDIR).resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "lanscatter" / "up" / plan.dataset.name


def _check_loopback(plan: DeploymentPlan) -> None:
    """A rehearsal needs every 127.0.0.x address; Linux routes all of 127.0.0.0/8 to loopback."""
    for h in plan.hosts[:2]:
        with socket.socket() as s:
            try:
                s.bind((h.address, 0))
            except OSError as exc:
                raise ConfigError(f"cannot listen on {h.address} for the rehearsal host {h.name}: {exc.strerror}",
                                  "the rehearsal needs the whole 127.0.0.0/8 on loopback (Linux has it; "
                                  "elsewhere add aliases, e.g. `ifconfig lo0 alias 127.0.0.2`)") from None


def _prepare_source(opts: UpOptions, plan: DeploymentPlan) -> None:
    source = plan.dataset.source
    if source.is_dir():
        if opts.demo_data is not None:
            log.info("%s exists: using it as it is (no demo data generated)", source)
        return
    if source.exists():
        raise ConfigError(f"the data set source {source} is not a folder", "fix dataset.source in the topology")
    generate_demo(source, opts.demo_data or DEFAULT_DEMO_SIZE)


def _hooks(opts: UpOptions, hosts: list[HostPlan]) -> dict[str, Hook]:
    """A host's own on_synced (from the topology) wins; --on-synced covers the hosts without one."""
    out = {}
    for h in hosts:
        command = h.on_synced or opts.on_synced
        if command:
            out[h.name] = Hook(h.name, h.site, h.folder, command)
    return out


def _run_secret(plan: DeploymentPlan, local: bool) -> str | None:
    """The swarm secret the roles get. A rehearsal whose tree reads the secret from a variable
    that is not set runs with one made for the run rather than open."""
    ref = plan.dataset.secret
    if local and ref.kind == "env" and not os.environ.get(ref.ref, "").strip():
        log.info("$%s is not set: this rehearsal uses a swarm secret made for the run", ref.ref)
        return new_secret()
    return plan.dataset.secret_value()


def cmd_up(args: argparse.Namespace) -> int:
    if args.ssh:
        return ssh_up.cmd_up_ssh(args)
    opts = UpOptions.from_args(args)
    topo = load_topology(opts.file)
    plan = derive_plan(topo, local=opts.local, workdir=opts.workdir)
    if opts.local:
        hosts = list(plan.hosts)
    else:
        hosts = [select_host(plan.hosts, local_identity(), opts.host, str(opts.file))]
    if any(h.role == "relay" for h in hosts) and "proxy" not in registered_commands():
        raise ConfigError("this topology has relays, but this installation has no relay command (`lanscatter proxy`)",
                          "use a single-site topology, or a version of lanscatter with the relay")
    secret = _run_secret(plan, opts.local)
    workdir = default_workdir(opts, plan)
    if opts.local:
        _check_loopback(plan)
        _prepare_source(opts, plan)
    elif hosts[0].role == "master" and not plan.dataset.source.is_dir():
        raise ConfigError(f"this host is the origin, but its data set source {plan.dataset.source} is not a folder",
                          "create it, or fix dataset.source in the topology")
    link_flags = link_flag_support()
    commands = {"master", "proxy"} if any(h.role == "relay" for h in hosts) else {"master"}
    if opts.local and not commands <= link_flags:
        log.warning("the master and relay commands of this installation do not load the link map: "
                    "the rehearsal runs without the file's link speeds")
    tls = plan_tls(topo, plan, [h.name for h in hosts], workdir / "state", one_machine=opts.local)
    origin_key, signing_key = run_keys(plan, hosts, rehearsal=workdir if opts.local else None,
                                       state_root=workdir / "state")
    ctx = RunContext(topology_file=opts.file.resolve(), state_root=workdir / "state", local=opts.local,
                     workdir=workdir if opts.local else None, link_flags=link_flags,
                     store_and_forward=opts.store_and_forward, all_hosts=opts.local,
                     origin_key=origin_key, signing_key=signing_key, tls=tls)
    env = {SECRET_ENV: secret} if secret else {}
    log.info("%s: running %s", opts.file, "every host on this machine (rehearsal in " + str(workdir) + ")"
             if opts.local else f"host {hosts[0].name} ({hosts[0].role})")
    return asyncio.run(_run(opts, plan, hosts, ctx, env, workdir))


async def _run(opts: UpOptions, plan: DeploymentPlan, hosts: list[HostPlan], ctx: RunContext,
               env: dict[str, str], workdir: Path) -> int:
    loop = asyncio.get_running_loop()
    stop, stop_signal = stop_on_signals(loop)

    tracker = SyncTracker(plan)
    pid_file = workdir / "pids.json"

    def on_event(event: ProcessEvent) -> None:
        if event.kind == "restart":
            log.warning("restarting %s (restart #%d)", event.name, supervisor.restarts.get(event.name, 0))
            tracker.restarted(event.name)
        if event.kind in ("started", "exited"):
            write_json_atomic(pid_file, {"orchestrator": os.getpid(), "roles": supervisor.pids()})

    supervisor = Supervisor(on_event=on_event)
    hooks = HookRunner(supervisor, _hooks(opts, hosts), plan.dataset.name, workdir / "logs")
    watcher = Watcher(plan, tracker, hosts, on_complete=lambda done: hooks.host_synced(done.host, done.generation))
    commands = [role_command(plan, h, ctx) for h in hosts]
    gates = start_gates(commands)
    for h, cmd in zip(hosts, commands):
        h.folder.parent.mkdir(parents=True, exist_ok=True)
        supervisor.keep_running(ProcessSpec(h.name, cmd.argv, workdir / "logs" / f"{h.name}.log", env=env,
                                            before_start=gates[h.name]))
    log.info("logs in %s", workdir / "logs")

    watching = asyncio.create_task(watcher.run(), name="watch")
    waits: set[asyncio.Task[object]] = {asyncio.create_task(stop.wait())}
    if opts.tui:
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        waits.add(asyncio.create_task(_monitor(opts, workdir), name="monitor"))
    if opts.exit_when_synced:
        waits.add(asyncio.create_task(watcher.synced.wait()))
    try:
        done, _ = await asyncio.wait(waits | {watching}, timeout=opts.timeout, return_when=asyncio.FIRST_COMPLETED)
        timed_out = not done
        if watching.done():
            watching.result()              # a bug in the watcher: surface it
    finally:
        for t in (*waits, watching):
            t.cancel()
        await asyncio.gather(*waits, watching, return_exceptions=True)
        if opts.exit_when_synced and watcher.synced.is_set():
            await hooks.wait()             # the last host's hook belongs to this run
        log.info("stopping %d role%s", len(hosts), "s" if len(hosts) != 1 else "")
        await supervisor.stop()
        write_json_atomic(pid_file, {"orchestrator": os.getpid(), "roles": supervisor.pids()})
        if opts.report is not None:
            write_json_atomic(opts.report, tracker.report())
            log.info("report written to %s", opts.report)
    if stop_signal:
        return EXIT_INTERRUPTED[stop_signal[0]]
    if timed_out and not tracker.hosts_done(hosts):
        log.warning("not every host was in sync after %.0f s", opts.timeout or 0)
        return 1
    return 0


async def _monitor(opts: UpOptions, workdir: Path) -> None:
    """The terminal monitor (`lanscatter tui`) in its own process on this terminal; quitting it
    stops the run. Log lines go to a file meanwhile, so they do not tear the screen."""
    argv = [sys.executable, "-m", "lanscatter", "tui", str(opts.file.resolve())]
    if opts.local:
        argv += ["--local", "--workdir", str(workdir)]
    root = logging.getLogger()
    screen_handlers = [h for h in root.handlers if type(h) is logging.StreamHandler]
    file_handler = logging.FileHandler(workdir / "logs" / "up.log")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    for h in screen_handlers:
        root.removeHandler(h)
    root.addHandler(file_handler)
    proc = await asyncio.create_subprocess_exec(*argv)
    try:
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        root.removeHandler(file_handler)
        file_handler.close()
        for h in screen_handlers:
            root.addHandler(h)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "up", help="run the roles of a site tree (this host's, or every host with --local)",
        description="Run the roles a site-tree file gives this host (found by its names and addresses, "
        "or --host), restart any that crashes, stop all on Ctrl-C or SIGTERM. With --local, run every "
        "host of the tree on this machine, each on its own 127.0.0.x address, link speeds emulated: a "
        "rehearsal. See docs/orchestrator.md.")
    p.add_argument("file", metavar="FILE", help="the site-tree YAML file")
    p.add_argument("--host", metavar="NAME", help="run this host's roles (default: the host this machine is)")
    p.add_argument("--local", action="store_true",
                   help="rehearse the whole tree on this machine (127.0.0.x addresses, folders under --workdir)")
    p.add_argument("--workdir", metavar="DIR",
                   help="folders, state and logs of the run (default: .lanscatter-rehearsal beside FILE with "
                   "--local, else ~/.cache/lanscatter/up/<dataset>)")
    p.add_argument("--demo-data", type=parse_size, metavar="SIZE",
                   help=f"with --local, when the data set's source folder is missing: generate a demo data set "
                   f"of this size there (default {DEFAULT_DEMO_SIZE // 2**20}MiB)")
    p.add_argument("--headless", action="store_true",
                   help="no terminal monitor: progress lines on stderr (the default when not on a terminal)")
    p.add_argument("--exit-when-synced", action="store_true",
                   help="stop and exit 0 once every host holds the origin's current generation (real "
                   "deployment: once this host's roles have done their part); default: keep running and "
                   "follow changes at the origin")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="give up after S seconds (exit 1) if not done; for scripts and CI")
    p.add_argument("--store-and-forward", action="store_true",
                   help="relays pass nothing on until they hold the whole generation (to measure what "
                   "cut-through gains; not for real use)")
    p.add_argument("--report", metavar="FILE", help="write a JSON report when the run ends (docs/orchestrator.md)")
    p.add_argument("--on-synced", metavar="CMD",
                   help="command a host runs when its folder first becomes complete for a generation, with "
                   "LANSCATTER_HOST/SITE/FOLDER/DATASET/GENERATION in its environment (a host's own "
                   "on_synced in FILE wins)")
    ssh_up.add_arguments(p)
    p.set_defaults(func=cmd_up)
