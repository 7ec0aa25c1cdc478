"""The supervisor of `lanscatter up`: runs role processes, restarts the ones that crash, stops all.

Rules:
- One OS process per role, each in its own session (process group): Ctrl-C in the terminal reaches
  only the orchestrator, which then stops the roles in order, and stopping a role's group also
  stops whatever it started.
- A process that exits while the supervisor is not stopping is restarted after a delay that doubles
  from `Backoff.first` up to `Backoff.cap`, and drops back to the first after a run longer than
  `Backoff.stable_after`. Every exit and restart is logged (here and in the role's log file).
- `stop()` sends SIGTERM to every process group, waits `stop_timeout`, then sends SIGKILL to what is
  left: no process it started survives it. On Linux every child also asks the kernel for SIGTERM
  when the orchestrator dies (PR_SET_PDEATHSIG), so even a SIGKILLed orchestrator leaves no role.
- `pids()` is the registry of the live processes it started, by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lanscatter.deploy.process_stop import send_signal, stop_async

log = logging.getLogger("lanscatter.up")

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    stable_after: float = 30.0

    def next(self, previous: float | None, ran_for: float) -> float:
        """The delay before the next restart, given the last delay and how long the run lasted."""
        if previous is None or ran_for >= self.stable_after:
            return self.first
        return min(self.cap, previous * self.factor)


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    name: str                                   # unique: a host name, or "hook:<host>"
    argv: tuple[str, ...]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)    # added to this process's environment
    cwd: Path | None = None
    # Awaited before the first start (e.g. until the upstream answers); restarts do not wait.
    before_start: Callable[[], Coroutine[Any, Any, None]] | None = None


@dataclass(frozen=True, slots=True)
class ProcessEvent:
    kind: str                                   # "started" | "exited" | "restart"
    name: str
    pid: int
    code: int | None = None                     # exit code; -N for signal N
    delay: float | None = None                  # before the restart


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec function that makes the child receive SIGTERM when this process dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:        # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)
    return arm


class Supervisor:
    def __init__(self, backoff: Backoff = Backoff(), stop_timeout: float = 8.0,
                 on_event: Callable[[ProcessEvent], None] | None = None) -> None:
        self.backoff = backoff
        self.stop_timeout = stop_timeout
        self.on_event = on_event
        self._procs: dict[int, tuple[str, asyncio.subprocess.Process]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._pre_exec = _parent_death_signal()
        self.restarts: dict[str, int] = {}

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def pids(self) -> dict[str, int]:
        """The live processes this supervisor started, by name."""
        return {name: pid for pid, (name, _) in self._procs.items()}

    # ---- running -----------------------------------------------------------------------------
    def keep_running(self, spec: ProcessSpec) -> None:
        """Start `spec` and restart it whenever it exits, until `stop()`."""
        self._tasks.append(asyncio.create_task(self._keep(spec), name=f"keep {spec.name}"))

    async def run_once(self, spec: ProcessSpec) -> int | None:
        """Run `spec` to its end (no restart); None when stopped before or while it ran."""
        if self.stopping:
            return None
        proc = await self._spawn(spec)
        code = await proc.wait()
        self._procs.pop(proc.pid, None)
        return None if self.stopping else code

    async def _keep(self, spec: ProcessSpec) -> None:
        if spec.before_start is not None:
            waiter = asyncio.create_task(spec.before_start())
            stop = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
            for t in (waiter, stop):
                t.cancel()
            await asyncio.gather(waiter, stop, return_exceptions=True)
        delay: float | None = None
        while not self.stopping:
            started = time.monotonic()
            proc = await self._spawn(spec)
            code = await proc.wait()
            self._procs.pop(proc.pid, None)
            if self.stopping:
                return
            delay = self.backoff.next(delay, time.monotonic() - started)
            log.warning("%s (pid %d) exited with %s after %.1f s; restarting in %.1f s", spec.name, proc.pid,
                        _describe(code), time.monotonic() - started, delay)
            _append(spec.log_path, f"=== exited with {_describe(code)}; restarting in {delay:.1f} s\n")
            self._emit(ProcessEvent("exited", spec.name, proc.pid, code, delay))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self.stopping:
                return
            self.restarts[spec.name] = self.restarts.get(spec.name, 0) + 1
            self._emit(ProcessEvent("restart", spec.name, proc.pid, code, delay))

    async def _spawn(self, spec: ProcessSpec) -> asyncio.subprocess.Process:
        out = _open_log(spec)
        try:
            proc = await asyncio.create_subprocess_exec(
                *spec.argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **spec.env}, cwd=spec.cwd, start_new_session=True,
                preexec_fn=self._pre_exec)
        finally:
            out.close()
        self._procs[proc.pid] = (spec.name, proc)
        log.debug("started %s (pid %d)", spec.name, proc.pid)
        self._emit(ProcessEvent("started", spec.name, proc.pid))
        if self.stopping:                 # stop() ran while this one was starting
            send_signal(proc.pid, signal.SIGTERM, group=True)
        return proc

    def _emit(self, event: ProcessEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    # ---- stopping ----------------------------------------------------------------------------
    async def stop(self) -> None:
        """SIGTERM every process group, SIGKILL what is left after `stop_timeout`; wait for all."""
        self._stopping.set()
        ended: set[int] = set()
        while fresh := [(name, proc) for pid, (name, proc) in list(self._procs.items()) if pid not in ended]:
            # A second round catches a process whose start was under way when the first began.
            ended.update(proc.pid for _, proc in fresh)
            await self._end(fresh)
            await asyncio.sleep(0)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _end(self, procs: list[tuple[str, asyncio.subprocess.Process]]) -> None:
        names = {proc.pid: name for name, proc in procs}

        def killing(proc: asyncio.subprocess.Process) -> None:
            log.warning("%s (pid %d) ignored SIGTERM for %.0f s: killing it", names[proc.pid], proc.pid,
                        self.stop_timeout)

        await stop_async([proc for _, proc in procs], self.stop_timeout, groups=names, on_kill=killing)


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


def _open_log(spec: ProcessSpec) -> IO[bytes]:
    """The role's log, opened for appending, with a line saying what starts (the child inherits it)."""
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(spec.log_path, "ab")  # noqa: SIM115 (the caller closes it once the child holds it)
    out.write(f"=== {time.strftime('%H:%M:%S')} start: {' '.join(spec.argv)}\n".encode())
    out.flush()
    return out


def _append(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)


# A closed SSH session (SIGHUP), Ctrl-C and SIGTERM all stop a run cleanly; exit 128 + signal.
EXIT_INTERRUPTED = {signal.SIGHUP: 129, signal.SIGINT: 130, signal.SIGTERM: 143}


def stop_on_signals(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Event, list[signal.Signals]]:
    """An event set by the first of EXIT_INTERRUPTED to arrive, and the signals received."""
    stop = asyncio.Event()
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        stop.set()
    for sig in EXIT_INTERRUPTED:
        loop.add_signal_handler(sig, on_signal, sig)
    return stop, received
