"""`lanscatter up FILE --ssh`: bring up, follow and stop a whole site tree from one control host.

1. every host gets one SSH session (`ssh_sessions.py`), all in parallel (at most `--parallel`
   being set up at once): its `lanscatter --version` must share a protocol version with this one;
   then the session carries the secret and the tree file (unless `--no-copy`) and runs the host's
   part, `lanscatter up FILE --host X --headless`, for as long as it lasts. Hosts that cannot be
   reached or used are listed with the reason; the others go on.
2. each host's output goes to `<workdir>/logs/<host>.log` here.
3. the distribution is followed through the site masters' `/status`, as `up` does (`Watcher`,
   `SyncTracker`): this host must reach their control ports (docs/deploy.md).
4. Ctrl-C, SIGTERM, `--exit-when-synced` or `--timeout` close every session's input: each host
   stops the one `up` it started (which stops its roles) and reports its exit status. Sessions
   that do not end within `STOP_WAIT_S` are cut (the remote side sees the input end as well).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from lanscatter.core.errors import ConfigError, LanscatterError
from lanscatter.deploy.portable import relative_paths
from lanscatter.deploy.ssh_commands import SECRET_ENV, SshOptions, secret_line
from lanscatter.deploy.ssh_sessions import HostSession, SessionSettings, SshHosts
from lanscatter.deploy.supervisor import EXIT_INTERRUPTED, stop_on_signals
from lanscatter.deploy.tracker import SyncTracker
from lanscatter.deploy.watch import Watcher
from lanscatter.disk.atomic_file import write_json_atomic
from lanscatter.topology.derive import DeploymentPlan, derive_plan
from lanscatter.topology.validate import load_topology

log = logging.getLogger("lanscatter.deploy")


@dataclass(frozen=True, slots=True)
class SshUpOptions:
    file: Path
    ssh: SshOptions
    remote_lanscatter: str
    remote_file: str | None            # where the tree file is on the hosts (None: the default)
    copy: bool                         # copy FILE there first
    remote_workdir: str | None
    parallel: int
    workdir: Path                      # this host's logs
    exit_when_synced: bool
    timeout: float | None
    report: Path | None
    on_synced: str | None              # passed on to every host's `up`

    @classmethod
    def from_args(cls, args: argparse.Namespace, dataset: str) -> SshUpOptions:
        if args.local or args.host:
            raise ConfigError("--ssh runs every host of the tree; it does not go with --local or --host",
                              "drop --local/--host")
        if args.demo_data is not None or args.store_and_forward:
            raise ConfigError("--demo-data and --store-and-forward are for rehearsals (--local), not --ssh")
        if args.parallel < 1:
            raise ConfigError("--parallel must be at least 1")
        workdir = Path(args.workdir).resolve() if args.workdir else (
            Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lanscatter" / "deploy" / dataset)
        ssh = SshOptions(config=args.ssh_config, user=args.ssh_user, options=tuple(args.ssh_option or ()))
        return cls(Path(args.file), ssh, args.remote_lanscatter, args.remote_file, not args.no_copy,
                   args.remote_workdir, args.parallel, workdir, args.exit_when_synced, args.timeout,
                   Path(args.report) if args.report else None, args.on_synced)


def default_remote_file(plan: DeploymentPlan, file: Path) -> str:
    """In the remote user's home (where an SSH session starts)."""
    return str(PurePosixPath(".cache", "lanscatter", "deploy", plan.dataset.name, file.name))


def secret_to_send(plan: DeploymentPlan) -> tuple[str | None, str | None]:
    """(the secret, the variable the tree reads it from) when the tree reads it from the
    environment: the control host passes it on. A `file:` secret is read on each host from its own
    copy of the file; an inline one travels in the tree file."""
    ref = plan.dataset.secret
    if ref.kind != "env":
        return None, None
    return plan.dataset.secret_value(), ref.ref


def cmd_up_ssh(args: argparse.Namespace) -> int:
    topo = load_topology(Path(args.file))
    plan = derive_plan(topo)
    opts = SshUpOptions.from_args(args, plan.dataset.name)
    if opts.copy:
        moved = relative_paths(topo)
        if moved:
            raise ConfigError(f"{opts.file}: {', '.join(moved)} would be read relative to the copy on each host",
                              "make these paths absolute, or put the file on the hosts yourself and pass "
                              "--no-copy --remote-file PATH")
    secret, secret_env = secret_to_send(plan)
    secret_line(secret)                    # a secret that cannot be sent fails here, before any connection
    settings = SessionSettings(
        opts.ssh, opts.remote_lanscatter, opts.remote_file or default_remote_file(plan, opts.file),
        opts.remote_workdir, secret, secret_env if secret_env != SECRET_ENV else None,
        opts.file.read_bytes() if opts.copy else None, opts.parallel, opts.on_synced)
    return asyncio.run(_run(opts, plan, settings))


async def _run(opts: SshUpOptions, plan: DeploymentPlan, settings: SessionSettings) -> int:
    loop = asyncio.get_running_loop()
    stop, stop_signal = stop_on_signals(loop)
    sessions = [HostSession(h, opts.workdir / "logs" / f"{h.name}.log") for h in plan.hosts]
    log.info("%s: %d hosts over SSH; logs in %s", opts.file, len(sessions), opts.workdir / "logs")
    hosts = SshHosts(settings, sessions)
    runs = hosts.start()
    tracker = SyncTracker(plan)
    origin = plan.host(plan.sites[0].master)
    # Scope: the origin, whose part is done once the whole tree is in sync; the site masters'
    # status covers every host, so no host is asked directly.
    watcher = Watcher(plan, tracker, [origin])
    watching = asyncio.create_task(watcher.run(), name="watch")
    waits: set[asyncio.Task[Any]] = {asyncio.create_task(stop.wait()), asyncio.create_task(hosts.none_usable.wait())}
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
        await hosts.stop(runs)
        if opts.report is not None:
            report = tracker.report()
            report["ssh"] = hosts.report()
            write_json_atomic(opts.report, report)
            log.info("report written to %s", opts.report)
    hosts.report_stops()
    if stop_signal:
        return EXIT_INTERRUPTED[stop_signal[0]]
    if hosts.none_usable.is_set():
        raise LanscatterError("no host of the tree could be used", "see the reasons above")
    if timed_out and not tracker.synced():
        log.warning("not every host was in sync after %.0f s", opts.timeout or 0)
        return 1
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `up --ssh` (docs/deploy.md)."""
    g = p.add_argument_group("running every host over SSH (--ssh, docs/deploy.md)")
    g.add_argument("--ssh", action="store_true",
                   help="from this control host, start every host's part over SSH (your ssh config, agent "
                   "and known hosts; no password prompts), follow the distribution, stop them all on "
                   "Ctrl-C; --workdir is then where this host keeps their logs")
    g.add_argument("--ssh-config", metavar="FILE", help="ssh -F FILE")
    g.add_argument("--ssh-user", metavar="USER", help="log in as USER (default: your ssh config's)")
    g.add_argument("--ssh-option", metavar="KEY=VALUE", action="append", help="ssh -o KEY=VALUE (repeatable)")
    g.add_argument("--remote-lanscatter", metavar="PATH", default="lanscatter",
                   help="the lanscatter program on the hosts (default: `lanscatter` on their PATH)")
    g.add_argument("--remote-file", metavar="PATH",
                   help="where the tree file is on the hosts (default: ~/.cache/lanscatter/deploy/<dataset>/"
                   "<name of FILE>); FILE is copied there unless --no-copy")
    g.add_argument("--no-copy", action="store_true", help="the hosts already have the tree file (--remote-file)")
    g.add_argument("--remote-workdir", metavar="DIR", help="the hosts' `up --workdir`")
    g.add_argument("--parallel", type=int, default=32, metavar="N",
                   help="at most N SSH connections being set up at once (default 32)")
