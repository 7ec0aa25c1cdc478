"""`lanscatter up` as a real process for integration tests: start, read its PID registry, stop, clean up."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from lanscatter.deploy.process_stop import send_signal, stop
from tests.ports import free_port


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def write_tree(path: Path, doc: dict[str, Any]) -> Path:
    """A site-tree file with free ports for every role (tests never use fixed ports)."""
    doc = json.loads(json.dumps(doc))
    doc.setdefault("defaults", {}).update(master_port=free_port(), peer_port=free_port())
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class UpRun:
    """One `lanscatter up` process; `close()` stops it and any role it left (by the PIDs it recorded)."""

    def __init__(self, tree: Path, *args: str, workdir: Path, log: Path) -> None:
        self.workdir = workdir
        self.log = log
        self.seen: set[int] = set()
        self._fh = open(log, "ab")  # noqa: SIM115 (closed in close)
        self.proc = subprocess.Popen([sys.executable, "-m", "lanscatter", "up", str(tree), "--workdir", str(workdir),
                                      "--headless", *args], stdout=self._fh, stderr=subprocess.STDOUT)

    def pids(self) -> dict[str, int]:
        try:
            roles = json.loads((self.workdir / "pids.json").read_text())["roles"]
        except (OSError, ValueError, KeyError):
            return {}
        self.seen.update(roles.values())
        return dict(roles)

    def wait(self, timeout: float) -> int:
        """Its exit code; meanwhile every role PID it records is remembered in `seen`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pids()
            try:
                return self.proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
        raise AssertionError(f"lanscatter up still running after {timeout:.0f} s\n{self.output()[-4000:]}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def report(self, path: Path) -> dict[str, Any]:
        return json.loads(path.read_text())  # type: ignore[no-any-return]

    def close(self) -> None:
        self.pids()
        stop([self.proc], 30)
        for pid in self.seen:            # a test failure must not leave roles behind
            if alive(pid):
                send_signal(pid, signal.SIGKILL)
        self._fh.close()


def wait_until(cond: Any, timeout: float, what: str, run: UpRun | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    tail = run.output()[-4000:] if run else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
