"""The SSH sessions of one `up --ssh` run: one `ssh` process per host, all at once.

Each host's session (`ssh_commands.session_command`) first prints the host's lanscatter version;
this side checks it against its own protocol range and answers `go` with the secret and the tree
file, or ends the session's input. A host passes or fails on its own and starts at once: a slow
host holds nobody else back. At most `parallel` sessions are being set up (connected and checked)
at the same time. The rest of a session's output (the remote `up`'s lines) goes to the host's log
file here. Stopping ends every session's input, which makes each host stop the one `up` it
started; sessions still open after `STOP_WAIT_S` are cut (their hosts then see the input end too).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lanscatter import __version__
from lanscatter.core.protocol import MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
from lanscatter.deploy.process_stop import send_signal
from lanscatter.deploy.ssh_commands import (
    RemoteRun,
    RemoteVersion,
    SshOptions,
    compatibility_problem,
    go_message,
    last_lines,
    parse_version,
    session_command,
    ssh_argv,
    unreachable_reason,
)
from lanscatter.deploy.supervisor import EXIT_INTERRUPTED
from lanscatter.topology.derive import HostPlan

log = logging.getLogger("lanscatter.deploy")

CHECK_TIMEOUT_S = 60.0        # connect and answer with a version
STOP_WAIT_S = 20.0            # a remote `up` stops its roles within 8 s (SIGKILL after that)
_VERSION_LINES = 20           # lines read for the version (a login banner may come first)
_LINE_LIMIT = 4096            # a longer line is not a version


@dataclass(slots=True)
class HostSession:
    host: HostPlan
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    code: int | None = None
    problem: str | None = None                 # why this host is not used
    version: RemoteVersion | None = None


def our_version() -> RemoteVersion:
    return RemoteVersion(__version__, (MIN_PROTOCOL_VERSION, PROTOCOL_VERSION))


@dataclass(frozen=True, slots=True)
class SessionSettings:
    ssh: SshOptions
    lanscatter: str                            # on the hosts
    tree_file: str                             # on the hosts
    workdir: str | None                        # the hosts' `up --workdir`
    secret: str | None
    secret_env: str | None                     # the variable the tree reads the secret from, if not the usual
    tree: bytes | None                         # the tree file's bytes, when the sessions copy it
    parallel: int
    on_synced: str | None = None               # the hosts' `up --on-synced`


class SshHosts:
    def __init__(self, settings: SessionSettings, sessions: list[HostSession]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.none_usable = asyncio.Event()
        self._stopping = False
        self._limit = asyncio.Semaphore(settings.parallel)
        self._checked = 0
        self._started = time.monotonic()

    def start(self) -> list[asyncio.Task[None]]:
        """Open every host's session; the tasks end when the sessions do."""
        self._started = time.monotonic()
        return [asyncio.create_task(self._run(s), name=f"ssh {s.host.name}") for s in self.sessions]

    async def _run(self, s: HostSession) -> None:
        st = self.settings
        run = RemoteRun(st.lanscatter, st.tree_file, s.host.name, st.workdir, st.secret_env,
                        copy=st.tree is not None, on_synced=st.on_synced)
        argv = ssh_argv(st.ssh, s.host.address, session_command(run))
        out = _open_log(s.log_path, f"ssh {s.host.address}: lanscatter up --host {s.host.name}")
        try:
            async with self._limit:
                if self._stopping:
                    return
                try:
                    s.proc = await asyncio.create_subprocess_exec(
                        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.STDOUT, start_new_session=True, limit=_LINE_LIMIT)
                except OSError as exc:
                    s.problem = f"cannot run {st.ssh.ssh}: {exc.strerror}"
                else:
                    await self._check(s, out)
            self._note_checked()
            if s.proc is None:
                return
            assert s.proc.stdout is not None
            while chunk := await s.proc.stdout.read(65536):
                out.write(chunk)
                out.flush()
            s.code = await s.proc.wait()
        finally:
            out.close()
        if s.problem is None and not self._stopping:
            log.warning("%s: its part ended by itself (%s): %s", s.host.name, _describe(s.code),
                        last_lines(_tail(s.log_path)) or "no output")

    async def _check(self, s: HostSession, out: IO[bytes]) -> None:
        """Read the host's version; answer go (with the secret and the tree file) or end its input."""
        assert s.proc is not None and s.proc.stdin is not None and s.proc.stdout is not None
        said: list[str] = []
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                while s.version is None and len(said) < _VERSION_LINES:
                    try:
                        raw = await s.proc.stdout.readline()
                    except ValueError:          # a line past the limit: not a version
                        raw = b"(a long line)\n"
                    if not raw:
                        break
                    out.write(raw)
                    said.append(raw.decode(errors="replace"))
                    s.version = parse_version(said[-1])
        except TimeoutError:
            s.problem = f"no answer within {CHECK_TIMEOUT_S:.0f} s"
            _signal_session(s.proc, signal.SIGKILL)
        if self._stopping:
            s.proc.stdin.close()
            return
        if s.problem is None and s.version is None:
            code = await s.proc.wait()
            s.problem = unreachable_reason(code, "".join(said))
        elif s.version is not None:
            s.problem = compatibility_problem(our_version(), s.version)
        if s.problem is not None:
            s.proc.stdin.close()                # the host's session ends before it starts anything
            return
        try:
            s.proc.stdin.write(go_message(self.settings.secret, self.settings.tree))
            await s.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass                                # the session ended at once: its exit code says why

    def _note_checked(self) -> None:
        self._checked += 1
        if self._checked < len(self.sessions) or self._stopping:
            return
        usable = sum(1 for s in self.sessions if s.problem is None)
        log.info("%d of %d hosts checked and started in %.1f s", usable, len(self.sessions),
                 time.monotonic() - self._started)
        _report_unusable(self.sessions)
        if not usable:
            self.none_usable.set()

    async def stop(self, runs: list[asyncio.Task[None]]) -> None:
        """End every session's input; cut those still open after STOP_WAIT_S."""
        self._stopping = True
        live = [s for s in self.sessions if s.proc is not None and s.proc.returncode is None]
        if live:
            log.info("stopping %d host%s", len(live), "s" if len(live) != 1 else "")
        for s in live:
            assert s.proc is not None and s.proc.stdin is not None
            s.proc.stdin.close()
        _, pending = await asyncio.wait(runs, timeout=STOP_WAIT_S)
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if not pending:
                break
            for s in self.sessions:
                if s.proc is not None and s.proc.returncode is None:
                    if signum == signal.SIGTERM:
                        log.warning("%s did not confirm its stop within %.0f s: closing its connection",
                                    s.host.name, STOP_WAIT_S)
                    _signal_session(s.proc, signum)
            _, pending = await asyncio.wait(pending, timeout=5.0)
        for task in pending:
            task.cancel()           # its output pipe is held by something that outlived its ssh
        for s, result in zip(self.sessions, await asyncio.gather(*runs, return_exceptions=True)):
            if isinstance(result, Exception):
                log.error("%s: its session failed: %r", s.host.name, result)

    def report(self) -> dict[str, dict[str, object]]:
        return {s.host.name: {"problem": s.problem, "exit_code": s.code,
                              "version": s.version.version if s.version else None} for s in self.sessions}

    def report_stops(self) -> None:
        clean = {0, *EXIT_INTERRUPTED.values()}
        for s in self.sessions:
            if s.problem is None and s.code not in clean:
                log.warning("%s: stopped with %s: %s", s.host.name, _describe(s.code), last_lines(_tail(s.log_path)))


def _report_unusable(sessions: list[HostSession]) -> None:
    bad = [s for s in sessions if s.problem is not None]
    if not bad:
        return
    log.warning("%d host%s cannot be used (the others go on):", len(bad), "s" if len(bad) != 1 else "")
    for s in bad:
        log.warning("  %s (%s): %s", s.host.name, s.host.address, s.problem)
    if any(s.host.role == "master" for s in bad):
        log.warning("the origin is among them: nothing is distributed until it runs")
    if any("not installed" in (s.problem or "") for s in bad):
        log.warning("install lanscatter on those hosts (pipx install, or a wheel: docs/deploy.md), "
                    "or name its path there with --remote-lanscatter")


def _signal_session(proc: asyncio.subprocess.Process, signum: signal.Signals) -> None:
    """Signal a session's ssh and its process group (a ProxyCommand it started, for one)."""
    send_signal(proc.pid, signum, group=True)


def _describe(code: int | None) -> str:
    if code == 255:
        return "ssh error 255"
    return f"exit code {code}" if code is None or code >= 0 else f"signal {-code}"


def _open_log(path: Path, what: str) -> IO[bytes]:
    """The host's log, opened for appending, with a line saying what starts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = open(path, "ab")  # noqa: SIM115 (closed by the session's task)
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
