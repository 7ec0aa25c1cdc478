"""Stopping processes we started: the one rule every part that starts processes follows (the
supervisor of `up`, the monitor `up` runs, the emulator, the tests).

The rule: SIGTERM to each, wait up to `grace_s` for all of them together, SIGKILL the ones still
running, reap them. Always by PID (a process that leads its own process group, started with
`start_new_session=True`, gets the signal for its whole group: what it started goes with it); never
by name. A process already gone is not an error.

Three forms of one rule, for the three kinds of handle: `stop` (subprocess.Popen, blocking),
`stop_async` (asyncio subprocesses) and `stop_pids` (processes we did not fork ourselves, such as
the ones left in a network namespace; they cannot be reaped here, so their end is polled).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Container, Sequence
from typing import Any

POLL_S = 0.02


def send_signal(pid: int, signum: int, *, group: bool = False) -> bool:
    """Signal process `pid` (its process group when `group`, `pid` being the group's leader).
    False when it is gone (or no longer ours to signal)."""
    try:
        if group:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop(procs: Sequence[subprocess.Popen[Any]], grace_s: float, *, groups: Container[int] = (),
         on_kill: Callable[[subprocess.Popen[Any]], None] | None = None) -> list[subprocess.Popen[Any]]:
    """Stop and reap children started with subprocess; the ones that had to be killed (one that
    outlives even SIGKILL for `grace_s`, stuck in the kernel, is left with `poll()` still None).

    `groups`: the pids whose whole process group gets the signals. `on_kill` hears of each process
    about to get SIGKILL (to say so)."""
    for proc in procs:
        if proc.poll() is None:
            send_signal(proc.pid, signal.SIGTERM, group=proc.pid in groups)
    deadline = time.monotonic() + grace_s
    killed = []
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            if on_kill is not None:
                on_kill(proc)
            send_signal(proc.pid, signal.SIGKILL, group=proc.pid in groups)
            killed.append(proc)
    for proc in killed:
        with contextlib.suppress(subprocess.TimeoutExpired):     # (the caller sees it still running)
            proc.wait(timeout=grace_s)
    return killed


async def stop_async(procs: Sequence[asyncio.subprocess.Process], grace_s: float, *, groups: Container[int] = (),
                     on_kill: Callable[[asyncio.subprocess.Process], None] | None = None
                     ) -> list[asyncio.subprocess.Process]:
    """`stop` for children started with asyncio; the ones that had to be killed."""
    for proc in procs:
        if proc.returncode is None:
            send_signal(proc.pid, signal.SIGTERM, group=proc.pid in groups)
    waits = [asyncio.ensure_future(proc.wait()) for proc in procs]
    if waits:
        await asyncio.wait(waits, timeout=grace_s)
    killed = [proc for proc in procs if proc.returncode is None]
    for proc in killed:
        if on_kill is not None:
            on_kill(proc)
        send_signal(proc.pid, signal.SIGKILL, group=proc.pid in groups)
    await asyncio.gather(*waits)
    return killed


def alive(pid: int) -> bool:
    """Whether process `pid` exists (a zombie counts until its parent reaps it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pids(pids: Sequence[int], grace_s: float) -> list[int]:
    """Stop processes that are not our children; the pids that had to be killed."""
    for pid in pids:
        send_signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    return [pid for pid in pids if alive(pid) and send_signal(pid, signal.SIGKILL)]
