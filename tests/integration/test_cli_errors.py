"""Bad local input gives one `error:` line with a hint and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lanscatter.core.auth import new_secret
from tests.ports import free_port


def _run(*argv: str, timeout: float = 30, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {"LANSCATTER_SECRET": new_secret()} if env is None else env
    return subprocess.run([sys.executable, "-m", "lanscatter", *argv], capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, **env})


def _assert_clean_error(r: subprocess.CompletedProcess[str], words: str) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and words in errors[0], r.stderr
    assert "hint: " in r.stderr


def test_master_folder_missing(tmp_path: Path) -> None:
    _assert_clean_error(_run("master", str(tmp_path / "nope"), "--state-dir", str(tmp_path / "s")),
                        "does not exist")


def test_master_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _run("master", str(tmp_path), "--listen", "127.0.0.1", "--port", str(port), "--state-dir",
                 str(tmp_path / "s"), "--rescan-interval", "600")
    _assert_clean_error(r, "already in use")


def test_peer_folder_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    r = _run("peer", f"127.0.0.1:{free_port()}", str(tmp_path / "f"), "--listen", "127.0.0.1", "--port", "0",
             "--state-dir", str(tmp_path / "s"), "--connect-timeout", "1")
    _assert_clean_error(r, "is a file")


def test_master_that_does_not_answer(tmp_path: Path) -> None:
    r = _run("peer", f"127.0.0.1:{free_port()}", str(tmp_path / "p"), "--listen", "127.0.0.1", "--port", "0",
             "--state-dir", str(tmp_path / "s"), "--connect-timeout", "1")
    _assert_clean_error(r, "did not answer")


@pytest.mark.parametrize("argv", [["master"], ["peer", "x"], ["proxy"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    r = _run(*argv)
    assert r.returncode == 2 and "usage:" in r.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    r = _run("--debug", "master", str(tmp_path / "nope"), "--state-dir", str(tmp_path / "s"))
    assert r.returncode != 0 and "Traceback" in r.stderr and "error: " in r.stderr
