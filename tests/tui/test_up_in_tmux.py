"""`lanscatter up --local` as an operator runs it, in a real terminal (tmux): the monitor shows the
run's summary when every host is synced and keeps it until `q`; the terminal then shows the same
summary and the exit code is 0. Ctrl-C in the monitor stops the run and every role at once: 130.

Marker `tmux`: left out of plain `pytest`, run by scripts/test.sh. Skipped when tmux is not installed
(scripts/ci-packages.sh installs it for CI).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.tmux,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


class Tmux:
    """One tmux server of our own (its own socket), one window running `command`."""

    def __init__(self, socket: Path, command: str, size: tuple[int, int] = (120, 40)) -> None:
        self.socket = socket
        # No client ever attaches: the window keeps the size it is given (not tmux's default 80x24).
        self._tmux("new-session", "-d", "-s", "up", "-x", str(size[0]), "-y", str(size[1]), command,
                   ";", "set-option", "-g", "window-size", "manual")

    def _tmux(self, *args: str) -> str:
        # COLUMNS and LINES, when the test runner's environment has them, would win over the window's size.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        return subprocess.run(["tmux", "-S", str(self.socket), "-f", "/dev/null", *args], capture_output=True,
                              text=True, check=True, timeout=10, env=env).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "up")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "up", *keys)

    def wait_for(self, cond: Callable[[str], bool], timeout_s: float, what: str) -> str:
        deadline = time.monotonic() + timeout_s
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if cond(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; the screen:\n{screen}")

    def close(self) -> None:
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], capture_output=True, timeout=10, check=False)


@pytest.fixture
def tmux_sessions(tmp_path: Path) -> Iterator[list[Tmux]]:
    started: list[Tmux] = []
    try:
        yield started
    finally:
        for t in started:
            t.close()


def _tree(tmp_path: Path, download_limit: str) -> Path:
    from tests.ports import free_port

    doc = {
        "dataset": {"name": "demo", "source": str(tmp_path / "source"), "origin": "o", "chunk_size": "256KiB",
                    "secret": {"value": "t0ps3cret-for-this-test"}},
        "defaults": {"master_port": free_port(), "peer_port": free_port()},
        "sites": {"office": {"hosts": {"o": None, "a": {"download_limit": download_limit},
                                       "b": {"download_limit": download_limit}}}},
    }
    path = tmp_path / "office.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _start(tmp_path: Path, sessions: list[Tmux], *args: str, download_limit: str = "200Mbit") -> Tmux:
    tree = _tree(tmp_path, download_limit)
    up = [sys.executable, "-m", "lanscatter", "up", str(tree), "--local", "--demo-data", "2MiB",
          "--workdir", str(tmp_path / "work"), *args]
    # The exit code lands in a file: the window closes with the command.
    command = f"{shlex.join(up)}; echo $? > {shlex.quote(str(tmp_path / 'exit'))}; sleep 30"
    session = Tmux(tmp_path / "tmux.sock", command)
    sessions.append(session)
    return session


def _exit_code(tmp_path: Path, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = (tmp_path / "exit").read_text() if (tmp_path / "exit").exists() else ""
        if text.strip():
            return int(text)
        time.sleep(0.1)
    raise AssertionError(f"lanscatter up did not end within {timeout_s:.0f} s")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_synced_run_keeps_its_screen_with_the_summary_until_q(tmp_path: Path, tmux_sessions: list[Tmux]) -> None:
    t = _start(tmp_path, tmux_sessions, "--exit-when-synced", "--timeout", "90")
    screen = t.wait_for(lambda s: "makespan" in s, 90, "the summary in the monitor")
    assert "demo: synced; generation" in screen and "office    3/3" in screen
    assert f"report: {tmp_path / 'work' / 'report.json'}" in screen
    assert "office: site synced" in screen                  # the log panel says when the site finished
    time.sleep(1.0)
    assert not (tmp_path / "exit").exists()                  # the screen stays until the operator leaves
    t.keys("q")
    assert _exit_code(tmp_path, 30) == 0
    after = t.wait_for(lambda s: "restarts:" in s, 10, "the summary on the terminal")
    assert "demo: synced; generation" in after and "makespan" in after
    assert json.loads((tmp_path / "work" / "report.json").read_text())["outcome"] == "synced"


def test_ctrl_c_in_the_monitor_stops_every_role_at_once(tmp_path: Path, tmux_sessions: list[Tmux]) -> None:
    t = _start(tmp_path, tmux_sessions, download_limit="1Mbit")     # slow: still running at Ctrl-C
    t.wait_for(lambda s: "office" in s and "node" in s, 60, "the monitor")
    pids_file = tmp_path / "work" / "pids.json"
    deadline = time.monotonic() + 30
    roles: dict[str, int] = {}
    while len(roles) < 3 and time.monotonic() < deadline:
        roles = json.loads(pids_file.read_text())["roles"] if pids_file.exists() else {}
        time.sleep(0.1)
    assert len(roles) == 3
    t.keys("C-c")
    try:
        assert _exit_code(tmp_path, 10) == 130
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in roles.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in roles.values())
    finally:
        for pid in roles.values():          # a failure must not leave roles behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    screen = t.wait_for(lambda s: "restarts:" in s, 10, "the summary on the terminal")
    assert "demo: stopped before every host was in sync" in screen
