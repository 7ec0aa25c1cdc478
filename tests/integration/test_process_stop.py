"""The one rule for stopping processes we started (deploy/process_stop.py), on real processes:
SIGTERM, a grace time, SIGKILL for what ignored it, by PID, the whole group where asked."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from lanscatter.deploy.process_stop import alive, stop, stop_async, stop_pids

OBEYS = "import time; print('up', flush=True); time.sleep(60)"
IGNORES = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
           "time.sleep(60)")


def _start(code: str, **kw: object) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, **kw)  # type: ignore[call-overload]
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"    # its handler is in place
    return proc  # type: ignore[no-any-return]


def test_term_first_then_kill_what_ignores_it() -> None:
    obeys, ignores = _start(OBEYS), _start(IGNORES)
    began = time.monotonic()
    killed = stop([obeys, ignores], 1.0)
    assert killed == [ignores] and 1.0 <= time.monotonic() - began < 5
    assert obeys.returncode == -15 and ignores.returncode == -9


def test_a_group_goes_with_its_leader(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = (f"import subprocess, sys; c = subprocess.Popen([sys.executable, '-c', {IGNORES!r}], "
            f"stdout=subprocess.PIPE); c.stdout.readline(); open({str(pid_file)!r}, 'w').write(str(c.pid)); "
            f"{IGNORES}")
    leader = _start(code, start_new_session=True)
    child = int(pid_file.read_text())
    assert stop([leader], 0.5, groups={leader.pid}) == [leader]
    deadline = time.monotonic() + 5
    while alive(child) and _state(child) != "Z" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(child) or _state(child) == "Z"      # killed (its parent is gone: init reaps it)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_processes_that_are_not_our_children_by_pid() -> None:
    ignores = _start(IGNORES)
    assert stop_pids([ignores.pid], 0.3) == [ignores.pid]
    assert ignores.wait(timeout=5) == -9


def test_the_asyncio_form() -> None:
    async def run() -> tuple[list[int], int | None, int | None]:
        obeys = await asyncio.create_subprocess_exec(sys.executable, "-c", OBEYS, stdout=subprocess.PIPE)
        ignores = await asyncio.create_subprocess_exec(sys.executable, "-c", IGNORES, stdout=subprocess.PIPE)
        for proc in (obeys, ignores):
            assert proc.stdout is not None
            async with asyncio.timeout(10):
                assert await proc.stdout.readline() == b"up\n"
        killed = await stop_async([obeys, ignores], 0.5)
        return [p.pid for p in killed], obeys.returncode, ignores.returncode

    killed, obeys_code, ignores_code = asyncio.run(run())
    assert len(killed) == 1 and obeys_code == -15 and ignores_code == -9
