"""Waiting for a baseline's hosts to finish, and checking they got exactly the dataset."""

from __future__ import annotations

import filecmp
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lanscatter.deploy import process_stop

_POLL_S = 0.02


class BaselineFailed(RuntimeError):
    """A baseline did not deliver the dataset to every host in time."""


def wait_until_done(
    is_done: Mapping[str, Callable[[], bool]], start: float, timeout_s: float
) -> dict[str, float]:
    """Seconds from `start` (time.monotonic) until each host's `is_done()` first held."""
    done: dict[str, float] = {}
    deadline = start + timeout_s
    while len(done) < len(is_done):
        now = time.monotonic()
        if now > deadline:
            late = sorted(set(is_done) - set(done))
            raise BaselineFailed(f"not done after {timeout_s:.0f} s: {', '.join(late)}")
        for host, check in is_done.items():
            if host not in done and check():
                done[host] = time.monotonic() - start
        time.sleep(_POLL_S)
    return done


def exited_ok(proc: subprocess.Popen[Any]) -> Callable[[], bool]:
    """A done-check for a download process: True once it exited 0; raises if it failed."""

    def check() -> bool:
        code = proc.poll()
        if code is not None and code != 0:
            raise BaselineFailed(f"{proc.args!r} exited with {code}")
        return code == 0

    return check


def stop(procs: list[subprocess.Popen[Any]], grace_s: float = 5.0) -> None:
    process_stop.stop(procs, grace_s)


def check_same_files(expected: Path, got: Path) -> None:
    """Raise unless `got` holds every file of `expected` with the same bytes."""
    for path in sorted(p for p in expected.rglob("*") if p.is_file()):
        other = got / path.relative_to(expected)
        if not other.is_file() or not filecmp.cmp(path, other, shallow=False):
            raise BaselineFailed(f"{other} differs from {path}")
