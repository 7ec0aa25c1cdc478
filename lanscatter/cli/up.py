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
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from lanscatter.core.auth import new_secret
from lanscatter.core.errors import ConfigError
from lanscatter.core.sizes import format_bytes, parse_size
from lanscatter.deploy import ssh_up
from lanscatter.deploy.demo_data import (
    DEFAULT_DEMO_SIZE,
    existing_size,
    fits,
    free_bytes,
    generate_demo,
    rehearsal_disk_need,
)
from lanscatter.deploy.hooks import Hook, HookRunner
from lanscatter.deploy.process_stop import stop_async
from lanscatter.deploy.supervisor import (
    EXIT_INTERRUPTED,
    ProcessEvent,
    ProcessSpec,
    Supervisor,
    stop_on_signals,
)
from lanscatter.deploy.tracker import SyncTracker
from lanscatter.deploy.watch import Watcher, start_gates
from lanscatter.disk.atomic_file import write_json_atomic
from lanscatter.topology.derive import LOCAL_WORKDIR, DeploymentPlan, HostPlan, derive_plan
from lanscatter.topology.hostmatch import Identity, local_identity, select_host
from lanscatter.topology.origin_keys import run_keys
from lanscatter.topology.roles import (
    RunContext,
    link_flag_support,
    registered_commands,
    role_command,
    role_env,
)
from lanscatter.topology.summary import summary_lines
from lanscatter.topology.tls_plan import plan_tls
from lanscatter.topology.validate import load_topology, warnings_of

log = logging.getLogger("lanscatter.up")

HOST_POLL_S = 2.0     # how often `up --host X` asks the site masters (a rehearsal: 0.5 s)

MONITOR_STOP_S = 3.0        # the monitor restores the terminal within this after SIGTERM



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
                   tui=not args.headless and on_a_terminal(),
                   store_and_forward=args.store_and_forward)


def on_a_terminal() -> bool:
    """The monitor reads keys from stdin and draws on stderr (Textual does); the summary goes to stdout."""
    return all(stream.isatty() for stream in (sys.stdin, sys.stdout, sys.stderr))


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


def _check_ports_free(hosts: list[HostPlan]) -> None:
    """A rehearsal's ports, taken before it starts, mean another rehearsal (or node) runs there: its
    roles would fail to bind and restart in a loop while the monitor showed the other run's figures."""
    for h in hosts:
        ports = {"master": (h.master_port,), "peer": (h.peer_port,), "relay": (h.master_port, h.peer_port)}[h.role]
        for port in ports:
            if not port:
                continue
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)     # a closing connection is no user
                try:
                    s.bind((h.address, port))
                except OSError as exc:
                    raise ConfigError(
                        f"{h.address}:{port}, the port of the rehearsal host {h.name} ({h.role}), is taken: "
                        f"{exc.strerror}; another rehearsal or lanscatter node runs there",
                        "stop it first (Ctrl-C in its terminal), or give this tree other ports "
                        "(defaults: master_port, peer_port)") from None


def _prepare_source(opts: UpOptions, plan: DeploymentPlan, workdir: Path) -> None:
    """The rehearsal's data set: generated when missing; an existing one of another size than
    --demo-data is an error. Says how much disk the rehearsal takes and where, and asks (or, with
    no terminal to ask on, refuses) before it would leave less than the free-space margin."""
    source = plan.dataset.source
    if source.exists() and not source.is_dir():
        raise ConfigError(f"the data set source {source} is not a folder", "fix dataset.source in the topology")
    size = opts.demo_data or DEFAULT_DEMO_SIZE
    if source.is_dir():
        have = existing_size(source)
        if opts.demo_data is not None and have != opts.demo_data:
            raise ConfigError(f"{source} already holds a {format_bytes(have)} data set; --demo-data asks for "
                              f"{format_bytes(opts.demo_data)}",
                              f"delete {source} to generate {format_bytes(opts.demo_data)} there, or leave "
                              "out --demo-data to use the data set as it is")
        size = have
    need = rehearsal_disk_need(size, len(plan.hosts), source.is_dir())
    held = sum(existing_size(h.folder) for h in plan.hosts if h.folder != source and h.folder.is_dir())
    writes = max(0, need.total - held)
    log.info("this rehearsal holds %s: the %s data set at %s%s and a copy for each of the %d other hosts "
             "under %s (%s of it there already; delete %s to free the copies)", format_bytes(size + need.copies_bytes),
             format_bytes(size), source, " (generated now)" if need.source_bytes else "", need.copies,
             workdir, format_bytes(held), workdir)
    free, fs_size = free_bytes(workdir)
    if writes and not fits(writes, free, fs_size):
        question = (f"writing {format_bytes(writes)} leaves less than the free-space margin on the file system "
                    f"of {workdir} ({format_bytes(free)} free)")
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise ConfigError(question, "free space, give a smaller --demo-data, or a --workdir on another file system")
        answer = input(f"{question}; continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise ConfigError("stopped before writing the rehearsal's data", "free space or give a smaller --demo-data")
    if not source.is_dir():
        generate_demo(source, size)


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
    topo = load_topology(Path(args.file))
    # What a valid file may not mean as written, before anything runs (as `validate` says it).
    for warning in warnings_of(topo):
        print(warning, file=sys.stderr)
    if args.ssh:
        return ssh_up.cmd_up_ssh(args)
    opts = UpOptions.from_args(args)
    plan = derive_plan(topo, local=opts.local, workdir=opts.workdir)
    if opts.local:
        hosts = list(plan.hosts)
    else:
        # Named: no need to learn this machine's names (getfqdn can wait on DNS).
        me = local_identity() if opts.host is None else Identity(frozenset(), frozenset())
        hosts = [select_host(plan.hosts, me, opts.host, str(opts.file))]
    if any(h.role == "relay" for h in hosts) and "proxy" not in registered_commands():
        raise ConfigError("this topology has relays, but this installation has no relay command (`lanscatter proxy`)",
                          "use a single-site topology, or a version of lanscatter with the relay")
    secret = _run_secret(plan, opts.local)
    workdir = default_workdir(opts, plan)
    if opts.local:
        _check_loopback(plan)
        _check_ports_free(hosts)
        _prepare_source(opts, plan, workdir)
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
    env = role_env(secret)
    if not opts.headless and not opts.tui:
        log.info("not on a terminal (stdin, stdout and stderr must all be one for the monitor): "
                 "progress as log lines, as with --headless")
    log.info("%s: running %s", opts.file, "every host on this machine (rehearsal in " + str(workdir) + ")"
             if opts.local else f"host {hosts[0].name} ({hosts[0].role})")
    return asyncio.run(_run(opts, plan, hosts, ctx, env, workdir))


# After its part is done, a relay's `up` keeps serving its last status this long before it stops,
# so an `up` following the whole tree (the origin's) sees that the site finished (it polls twice a
# second) and can tell a relay that finished and exited from one that died.
FINAL_STATUS_S = 3.0


@dataclass(slots=True)
class _Outcome:
    """How the run ended: `kind` is one of summary.OUTCOMES; `code` the exit code."""

    kind: str = "running"
    code: int = 0


async def _run(opts: UpOptions, plan: DeploymentPlan, hosts: list[HostPlan], ctx: RunContext,
               env: dict[str, str], workdir: Path) -> int:
    loop = asyncio.get_running_loop()
    stop, stop_signal = stop_on_signals(loop)

    tracker = SyncTracker(plan)
    pid_file = workdir / "pids.json"
    report_path = (opts.report or workdir / "report.json").resolve()

    def on_event(event: ProcessEvent) -> None:
        if event.kind == "restart":
            log.warning("restarting %s (restart #%d)", event.name, supervisor.restarts.get(event.name, 0))
            tracker.restarted(event.name)
        if event.kind in ("started", "exited"):
            write_json_atomic(pid_file, {"orchestrator": os.getpid(), "roles": supervisor.pids()})

    def report(outcome: str) -> dict[str, object]:
        doc = tracker.report()
        doc.update(outcome=outcome, logs=str(workdir / "logs"), report=str(report_path))
        return doc

    def on_synced() -> None:
        write_json_atomic(report_path, report("synced"))

    supervisor = Supervisor(on_event=on_event)
    hooks = HookRunner(supervisor, _hooks(opts, hosts), plan.dataset.name, workdir / "logs")
    # One host of a real tree asks every site's master: with every host doing so, 0.5 s would have
    # a 300-host tree's masters answer 600 requests a second each, and slow a tree's bring-up.
    watcher = Watcher(plan, tracker, hosts, on_complete=lambda done: hooks.host_synced(done.host, done.generation),
                      on_synced=on_synced, interval=0.5 if opts.local else HOST_POLL_S)
    commands = [role_command(plan, h, ctx) for h in hosts]
    gates = start_gates(commands)
    for h, cmd in zip(hosts, commands):
        h.folder.parent.mkdir(parents=True, exist_ok=True)
        supervisor.keep_running(ProcessSpec(h.name, cmd.argv, workdir / "logs" / f"{h.name}.log", env=env,
                                            before_start=gates[h.name]))
    log.info("logs in %s", workdir / "logs")

    watching = asyncio.create_task(watcher.run(), name="watch")
    stopped = asyncio.create_task(stop.wait())
    monitor: asyncio.Task[int] | None = None
    if opts.tui:
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        monitor = asyncio.create_task(_monitor(opts, workdir, report_path), name="monitor")
    synced = asyncio.create_task(watcher.synced.wait()) if opts.exit_when_synced else None
    outcome = _Outcome()
    try:
        waits = {t for t in (watching, stopped, monitor, synced) if t is not None}
        done, _ = await asyncio.wait(waits, timeout=opts.timeout, return_when=asyncio.FIRST_COMPLETED)
        if watching.done():
            watching.result()              # a bug in the watcher: surface it
        in_sync = tracker.hosts_done(hosts)
        kind = "synced" if in_sync else "interrupted"
        if stop_signal:
            outcome = _Outcome(kind, EXIT_INTERRUPTED[stop_signal[0]])
        elif monitor is not None and monitor in done:
            outcome = _Outcome(kind, _left_monitor(monitor.result(), in_sync))
        elif not done:
            outcome = _Outcome("synced", 0) if in_sync else _Outcome("timed out", 1)
            if not in_sync:
                log.warning("not every host was in sync after %.0f s", opts.timeout or 0)
        else:
            outcome = _Outcome("synced", 0)
            if monitor is not None:
                # The monitor shows the summary and keeps its screen until the operator leaves.
                await asyncio.wait({monitor, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if monitor.done():
                    outcome.code = _left_monitor(monitor.result(), True)
            elif not opts.local and any(h.role == "relay" for h in hosts):
                await asyncio.wait({stopped}, timeout=FINAL_STATUS_S)
            if stop_signal:
                outcome.code = EXIT_INTERRUPTED[stop_signal[0]]
    finally:
        for t in (watching, stopped, synced):
            if t is not None:
                t.cancel()
        await asyncio.gather(*(t for t in (watching, stopped, synced) if t is not None), return_exceptions=True)
        if monitor is not None and not monitor.done():
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)
        if outcome.kind == "synced" and opts.exit_when_synced:
            await hooks.wait()             # the last host's hook belongs to this run
        log.info("stopping %d role%s", len(hosts), "s" if len(hosts) != 1 else "")
        await supervisor.stop()
        write_json_atomic(pid_file, {"orchestrator": os.getpid(), "roles": supervisor.pids()})
        final = report(outcome.kind)
        write_json_atomic(report_path, final)
    print("\n".join(summary_lines(final)), flush=True)
    return outcome.code


def _left_monitor(code: int, in_sync: bool) -> int:
    """The exit code after the operator left the monitor: `q` is 0 once in sync, else an interrupt
    (130); Ctrl-C in it is always 130, as in a shell; a monitor stopped by signal N gives 128+N."""
    if code == 0:
        return 0 if in_sync else EXIT_INTERRUPTED[signal.SIGINT]
    return code if code > 128 else EXIT_INTERRUPTED[signal.SIGINT]


async def _monitor(opts: UpOptions, workdir: Path, report_path: Path) -> int:
    """The terminal monitor (`lanscatter tui`) in its own process on this terminal; its exit code.
    Leaving it stops the run. Log lines go to a file meanwhile, so they do not tear the screen."""
    argv = [sys.executable, "-m", "lanscatter", "tui", str(opts.file.resolve()), "--report", str(report_path)]
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
        return await proc.wait()
    finally:
        # SIGTERM: the monitor leaves the terminal as it found it, then exits.
        await stop_async([proc], MONITOR_STOP_S)
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
        "rehearsal. On a terminal, the monitor shows the run (q or Ctrl-C leaves it and stops the run); "
        "every run ends with a summary on stdout and a report (--report, default <workdir>/report.json). "
        "See docs/orchestrator.md.",
        epilog="Exit codes: 0 every host of this run in sync (--exit-when-synced, q in the monitor once synced, or "
        "--timeout reached in sync); 1 --timeout reached before; 130 Ctrl-C, or q before every host was in sync; "
        "143 / 129 SIGTERM / SIGHUP; 2 bad command line or file. The report's outcome says whether the tree was "
        "synced when a signal stopped it.")
    p.add_argument("file", metavar="FILE", help="the site-tree YAML file")
    p.add_argument("--host", metavar="NAME", help="run this host's roles (default: the host this machine is)")
    p.add_argument("--local", action="store_true",
                   help="rehearse the whole tree on this machine (127.0.0.x addresses, folders under --workdir)")
    p.add_argument("--workdir", metavar="DIR",
                   help="folders, state and logs of the run (default: .lanscatter-rehearsal beside FILE with "
                   "--local, else ~/.cache/lanscatter/up/<dataset>)")
    p.add_argument("--demo-data", type=parse_size, metavar="SIZE",
                   help=f"with --local, when the data set's source folder is missing: generate a demo data set "
                   f"of this size there (default {format_bytes(DEFAULT_DEMO_SIZE).replace(' ', '')}); an existing "
                   "source of another size is an error. The rehearsal also holds a copy per host under --workdir: "
                   "it says how much before it starts, and asks before filling the disk")
    p.add_argument("--headless", action="store_true",
                   help="no terminal monitor: progress lines on stderr (the default when stdin, stdout or "
                   "stderr is not a terminal)")
    p.add_argument("--exit-when-synced", action="store_true",
                   help="stop and exit 0 once every host holds the origin's current generation (real "
                   "deployment: once this host's roles have done their part); default: keep running and "
                   "follow changes at the origin")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="give up after S seconds (exit 1) if not done; for scripts and CI")
    p.add_argument("--store-and-forward", action="store_true",
                   help="relays pass nothing on until they hold the whole generation (to measure what "
                   "cut-through gains; not for real use)")
    p.add_argument("--report", metavar="FILE", help="the JSON report, written when the tree is first synced and "
                   "when the run ends (default <workdir>/report.json; docs/orchestrator.md)")
    p.add_argument("--on-synced", metavar="CMD",
                   help="command a host runs when its folder first becomes complete for a generation, with "
                   "LANSCATTER_HOST/SITE/FOLDER/DATASET/GENERATION in its environment (a host's own "
                   "on_synced in FILE wins)")
    ssh_up.add_arguments(p)
    p.set_defaults(func=cmd_up)
