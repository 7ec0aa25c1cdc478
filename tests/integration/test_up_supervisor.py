"""The supervisor with real processes: a SIGKILLed process is restarted and the event logged; stop()
ends every process it started, including one that ignores SIGTERM and what that one started."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from lanscatter.deploy.supervisor import Backoff, ProcessEvent, ProcessSpec, Supervisor
from tests.integration.up_runs import alive


async def until(cond, timeout: float, what: str):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not (value := cond()):
            await asyncio.sleep(0.05)
        return value
    raise AssertionError(what)


SLEEPER = "import time; print('re' + 'ady', flush=True); time.sleep(120)"   # not in the argv line
# Ignores SIGTERM and starts a grandchild in its process group: only SIGKILL of the group ends both.
STUBBORN = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
            "print('grandchild=%d' % p.pid, flush=True); time.sleep(120)")


async def test_sigkilled_process_is_restarted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    events: list[ProcessEvent] = []
    sup = Supervisor(backoff=Backoff(first=0.2), on_event=events.append)
    log_path = tmp_path / "logs" / "worker.log"
    sup.keep_running(ProcessSpec("worker", (sys.executable, "-c", SLEEPER), log_path))
    try:
        first = await until(lambda: sup.pids().get("worker"), 10, "first start")
        await until(lambda: log_path.read_text().count("ready") == 1, 10, "first run's output")
        os.kill(first, signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="lanscatter.up"):
            second = await until(lambda: (p := sup.pids().get("worker")) and p != first and p, 10, "restart")
        assert alive(second) and not alive(first)
        assert sup.restarts == {"worker": 1}
        assert [e.kind for e in events] == ["started", "exited", "restart", "started"]
        assert events[1].code == -signal.SIGKILL
        assert any("worker" in r.getMessage() and "SIGKILL" in r.getMessage() and "restarting" in r.getMessage()
                   for r in caplog.records)
        await until(lambda: log_path.read_text().count("ready") == 2, 10, "second run's output")
        assert "exited with signal SIGKILL; restarting" in log_path.read_text()
    finally:
        await sup.stop()
    assert not alive(second) and sup.pids() == {}


async def test_stop_ends_every_process_even_one_ignoring_sigterm(tmp_path: Path) -> None:
    sup = Supervisor(stop_timeout=1.0)
    logs = tmp_path / "logs"
    sup.keep_running(ProcessSpec("stubborn", (sys.executable, "-c", STUBBORN), logs / "stubborn.log"))
    for i in range(3):
        sup.keep_running(ProcessSpec(f"w{i}", (sys.executable, "-c", SLEEPER), logs / f"w{i}.log"))
    try:
        found = await until(lambda: re.search(r"grandchild=(\d+)", (logs / "stubborn.log").read_text())
                            if (logs / "stubborn.log").exists() else None, 15, "stubborn started")
        await until(lambda: len(sup.pids()) == 4, 10, "all started")
    except BaseException:
        await sup.stop()
        raise
    grandchild = int(found.group(1))
    pids = list(sup.pids().values())
    assert all(alive(p) for p in [*pids, grandchild])
    async with asyncio.timeout(10):
        await sup.stop()
    await until(lambda: not any(alive(p) for p in [*pids, grandchild]), 5, "every process gone")
    assert sup.pids() == {}


async def test_a_process_is_not_restarted_once_stopping(tmp_path: Path) -> None:
    events: list[ProcessEvent] = []
    sup = Supervisor(backoff=Backoff(first=0.1), on_event=events.append)
    sup.keep_running(ProcessSpec("w", (sys.executable, "-c", SLEEPER), tmp_path / "w.log"))
    await until(lambda: sup.pids().get("w"), 10, "started")
    await sup.stop()
    await asyncio.sleep(0.3)
    assert [e.kind for e in events] == ["started"]
    assert await sup.run_once(ProcessSpec("late", (sys.executable, "-c", "pass"), tmp_path / "l.log")) is None
