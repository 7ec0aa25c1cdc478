"""`lanscatter up FILE --ssh`: bring up, follow and stop a whole site tree from one control host.

The I/O shell around `ssh_commands`:
1. every host is checked over SSH, in parallel (at most `--parallel` connections being set up at
   once): its `lanscatter --version` must share a protocol version with this one; the tree file is
   copied to it in the same connection (unless `--no-copy`). Hosts that cannot be reached or used
   are listed with the reason; the others go on.
2. each usable host runs its own part, `lanscatter up FILE --host X --headless`, in one long SSH
   session whose standard input first carries the swarm secret and then stays open: the remote
   `up` runs as long as the session does. Its output goes to `<workdir>/logs/<host>.log` here.
3. the distribution is followed through the site masters' `/status`, as `up` does (`Watcher`,
   `SyncTracker`): this host must reach their control ports (docs/deploy.md).
4. Ctrl-C, SIGTERM, `--exit-when-synced` or `--timeout` close every session's input: each host
   stops the one `up` it started (which stops its roles) and reports its exit status. Sessions
   that do not end within `STOP_WAIT_S` are cut (the remote side sees the input end as well).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from lanscatter import __version__
from lanscatter.atomic_file import write_json_atomic
from lanscatter.deploy.portable import relative_paths
from lanscatter.deploy.ssh_commands import (
    SECRET_ENV,
    RemoteRun,
    RemoteVersion,
    SshOptions,
    check_command,
    compatibility_problem,
    last_lines,
    parse_version,
    secret_line,
    ssh_argv,
    unreachable_reason,
    up_command,
)
from lanscatter.errors import ConfigError, LanscatterError
from lanscatter.protocol import MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
from lanscatter.topology.derive import DeploymentPlan, HostPlan, derive_plan
from lanscatter.topology.orchestrator import EXIT_INTERRUPTED, stop_on_signals
from lanscatter.topology.tracker import SyncTracker
from lanscatter.topology.validate import load_topology
from lanscatter.topology.watch import Watcher

log = logging.getLogger("lanscatter.deploy")

CHECK_TIMEOUT_S = 60.0        # connect, `lanscatter --version`, copy the file
STOP_WAIT_S = 20.0            # a remote `up` stops its roles within 8 s (SIGKILL after that)
_OUTPUT_LIMIT = 64 * 1024     # of a check's answer kept (it comes from another host)


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

    @classmethod
    def from_args(cls, args: argparse.Namespace, dataset: str) -> SshUpOptions:
        if args.local or args.host:
            raise ConfigError("--ssh runs every host of the tree; it does not go with --local or --host",
                              "drop --local/--host")
        if args.parallel < 1:
            raise ConfigError("--parallel must be at least 1")
        workdir = Path(args.workdir).resolve() if args.workdir else (
            Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lanscatter" / "deploy" / dataset)
        ssh = SshOptions(config=args.ssh_config, user=args.ssh_user, options=tuple(args.ssh_option or ()))
        return cls(Path(args.file), ssh, args.remote_lanscatter, args.remote_file, not args.no_copy,
                   args.remote_workdir, args.parallel, workdir, args.exit_when_synced, args.timeout,
                   Path(args.report) if args.report else None)


@dataclass(slots=True)
class HostSession:
    host: HostPlan
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    code: int | None = None
    problem: str | None = None                 # why this host is not used (set by the check)
    version: RemoteVersion | None = None
    output: list[str] = field(default_factory=list)


def our_version() -> RemoteVersion:
    return RemoteVersion(__version__, (MIN_PROTOCOL_VERSION, PROTOCOL_VERSION))


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
    first_line = secret_line(secret)
    remote_file = opts.remote_file or default_remote_file(plan, opts.file)
    sessions = [HostSession(h, opts.workdir / "logs" / f"{h.name}.log") for h in plan.hosts]
    log.info("%s: %d hosts over SSH; logs in %s", opts.file, len(sessions), opts.workdir / "logs")
    return asyncio.run(_run(opts, plan, sessions, remote_file, first_line,
                            secret_env if secret_env != SECRET_ENV else None))


async def _run(opts: SshUpOptions, plan: DeploymentPlan, sessions: list[HostSession], remote_file: str,
               first_line: bytes, secret_env: str | None) -> int:
    loop = asyncio.get_running_loop()
    stop, stop_signal = stop_on_signals(loop)
    started = time.monotonic()
    content = opts.file.read_bytes() if opts.copy else None
    limit = asyncio.Semaphore(opts.parallel)
    checking: asyncio.Future[Any] = asyncio.gather(
        *(_check(opts, s, remote_file if opts.copy else None, content, limit) for s in sessions))
    stopped: asyncio.Task[Any] = asyncio.create_task(stop.wait())
    await asyncio.wait({checking, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not checking.done():
        checking.cancel()
        await asyncio.gather(checking, return_exceptions=True)
        stopped.cancel()
        return EXIT_INTERRUPTED[stop_signal[0]]
    usable = [s for s in sessions if s.problem is None]
    _report_unusable(sessions)
    if not usable:
        stopped.cancel()
        raise LanscatterError("no host of the tree could be used", "see the reasons above")
    log.info("%d of %d hosts checked in %.1f s; starting them", len(usable), len(sessions),
             time.monotonic() - started)

    tracker = SyncTracker(plan)
    origin = plan.host(plan.sites[0].master)
    # Scope: the origin, whose part is done once the whole tree is in sync; the site masters'
    # status covers every host, so no host is asked directly.
    watcher = Watcher(plan, tracker, [origin])
    runs = [asyncio.create_task(_keep(opts, s, remote_file, first_line, secret_env), name=f"ssh {s.host.name}")
            for s in usable]
    watching = asyncio.create_task(watcher.run(), name="watch")
    waits: set[asyncio.Task[object]] = {stopped}
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
        log.info("stopping %d host%s", len(usable), "s" if len(usable) != 1 else "")
        await _stop(usable)
        await asyncio.gather(*runs, return_exceptions=True)
        if opts.report is not None:
            report = tracker.report()
            report["ssh"] = {s.host.name: {"problem": s.problem, "exit_code": s.code,
                                           "version": s.version.version if s.version else None}
                             for s in sessions}
            write_json_atomic(opts.report, report)
            log.info("report written to %s", opts.report)
    _report_stops(usable)
    if stop_signal:
        return EXIT_INTERRUPTED[stop_signal[0]]
    if timed_out and not tracker.synced():
        log.warning("not every host was in sync after %.0f s", opts.timeout or 0)
        return 1
    return 0


async def _check(opts: SshUpOptions, s: HostSession, copy_to: str | None, content: bytes | None,
                 limit: asyncio.Semaphore) -> None:
    """Connect, read the remote version, copy the tree file; sets `s.problem` on failure."""
    argv = ssh_argv(opts.ssh, s.host.address, check_command(opts.remote_lanscatter, copy_to))
    async with limit:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE if content is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            s.problem = f"cannot run {opts.ssh.ssh}: {exc.strerror}"
            return
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                out, err = await proc.communicate(content)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            s.problem = f"no answer within {CHECK_TIMEOUT_S:.0f} s"
            return
    stdout, stderr = out[:_OUTPUT_LIMIT].decode(errors="replace"), err[-_OUTPUT_LIMIT:].decode(errors="replace")
    s.version = parse_version(stdout)
    if proc.returncode != 0 and s.version is None:
        s.problem = unreachable_reason(proc.returncode, stderr)
        return
    if s.version is None:
        s.problem = f"`{opts.remote_lanscatter} --version` said {last_lines(stdout, 1)!r}, not a lanscatter version"
        return
    why = compatibility_problem(our_version(), s.version)
    if why is not None:
        s.problem = why
    elif proc.returncode != 0:
        s.problem = f"cannot store the tree file at {copy_to}: {last_lines(stderr, 1) or proc.returncode}"


def _report_unusable(sessions: list[HostSession]) -> None:
    bad = [s for s in sessions if s.problem is not None]
    if not bad:
        return
    log.warning("%d host%s cannot be used (the others go on):", len(bad), "s" if len(bad) != 1 else "")
    for s in bad:
        log.warning("  %s (%s): %s", s.host.name, s.host.address, s.problem)
    if any("not installed" in (s.problem or "") for s in bad):
        log.warning("install lanscatter on those hosts (pipx install, or a wheel: docs/deploy.md), "
                    "or name its path there with --remote-lanscatter")


async def _keep(opts: SshUpOptions, s: HostSession, remote_file: str, first_line: bytes,
                secret_env: str | None) -> None:
    """Run the host's part for as long as the session lasts; log how it ended."""
    run = RemoteRun(opts.remote_lanscatter, remote_file, s.host.name, opts.remote_workdir, secret_env)
    argv = ssh_argv(opts.ssh, s.host.address, up_command(run))
    out = _open_log(s.log_path, f"ssh {s.host.address}: lanscatter up --host {s.host.name}")
    try:
        s.proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=out,
                                                      stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()
    assert s.proc.stdin is not None
    try:
        s.proc.stdin.write(first_line)
        await s.proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass                            # the session ended at once: its exit code says why
    s.code = await s.proc.wait()
    if s.proc.stdin.is_closing():
        return                          # stopped by us
    log.warning("%s: its part ended by itself (%s): %s", s.host.name, _describe(s.code),
                last_lines(_tail(s.log_path)) or "no output")


async def _stop(sessions: list[HostSession]) -> None:
    """End every session's input; cut those that do not end within STOP_WAIT_S."""
    live = [s for s in sessions if s.proc is not None and s.proc.returncode is None]
    for s in live:
        assert s.proc is not None and s.proc.stdin is not None
        s.proc.stdin.close()
    waits = {asyncio.create_task(s.proc.wait()) for s in live if s.proc is not None}
    if not waits:
        return
    _, pending = await asyncio.wait(waits, timeout=STOP_WAIT_S)
    for s in live:
        if s.proc is not None and s.proc.returncode is None:
            log.warning("%s did not confirm its stop within %.0f s: closing its connection", s.host.name, STOP_WAIT_S)
            with contextlib.suppress(ProcessLookupError):
                s.proc.terminate()
    if pending:
        _, still = await asyncio.wait(pending, timeout=5)
        for s in live:
            if s.proc is not None and s.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    s.proc.kill()
        await asyncio.gather(*still, return_exceptions=True)


def _report_stops(sessions: list[HostSession]) -> None:
    clean = {0, *EXIT_INTERRUPTED.values()}
    for s in sessions:
        if s.proc is None:
            continue
        code = s.proc.returncode
        if code not in clean:
            log.warning("%s: stopped with %s: %s", s.host.name, _describe(code), last_lines(_tail(s.log_path)))


def _describe(code: int | None) -> str:
    if code == 255:
        return "ssh error 255"
    return f"exit code {code}" if code is None or code >= 0 else f"signal {-code}"


def _open_log(path: Path, what: str) -> IO[bytes]:
    """The host's log, opened for appending, with a line saying what starts (ssh inherits it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = open(path, "ab")  # noqa: SIM115 (the caller closes it once ssh holds it)
    out.write(f"=== {time.strftime('%H:%M:%S')} {what}\n".encode())
    out.flush()
    return out


def _tail(path: Path, size: int = 4096) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - size))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


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
