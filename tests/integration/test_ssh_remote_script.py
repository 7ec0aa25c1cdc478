"""The script `up --ssh` runs on each host, run here under `sh` as sshd would run it (the SSH channel
is this test's pipe): it prints the version, waits for go, reads the secret and the tree file from
its input, starts the real `lanscatter up`, keeps the secret off every command line, and stops
exactly what it started when its input ends."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from lanscatter.deploy.ssh_commands import RemoteRun, go_message, parse_version, session_command
from tests.ports import free_port

LANSCATTER = str(Path(sys.executable).with_name("lanscatter"))


def _tree(tmp_path: Path, port: int) -> Path:
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "a.txt").write_text("hello\n")
    doc = {"dataset": {"name": "script", "source": str(tmp_path / "source"), "origin": "origin",
                       "secret": {"env": "LSC_SCRIPT_SECRET"}},
           "sites": {"hq": {"hosts": {"origin": {"address": "127.0.0.1", "master_port": port}}}}}
    path = tmp_path / "tree.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _start(tmp_path: Path, host: str) -> tuple[subprocess.Popen[bytes], int, bytes]:
    """The script for `host`, with the tree file to copy to `remote/tree.yaml`, once it has printed
    its version; returns the process, the origin's port and the tree file."""
    port = free_port()
    tree = _tree(tmp_path, port)
    run = RemoteRun(LANSCATTER, str(tmp_path / "remote" / "tree.yaml"), host, workdir=str(tmp_path / "work"),
                    secret_env="LSC_SCRIPT_SECRET", copy=True)
    with open(tmp_path / "out.log", "wb") as out:
        proc = subprocess.Popen(["sh", "-c", session_command(run)], stdin=subprocess.PIPE, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 20
    while parse_version((tmp_path / "out.log").read_text()) is None:
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "out.log").read_text()
        time.sleep(0.05)
    return proc, port, tree.read_bytes()


def test_the_script_runs_up_with_the_secret_and_stops_it_when_its_input_ends(tmp_path: Path) -> None:
    secret = "sec-" + secrets.token_hex(12)
    proc, port, tree = _start(tmp_path, "origin")
    try:
        assert proc.stdin is not None
        proc.stdin.write(go_message(secret, tree))
        proc.stdin.flush()
        url = f"http://127.0.0.1:{port}/status"
        deadline = time.monotonic() + 30
        while not _answers(url):
            assert proc.poll() is None, (tmp_path / "out.log").read_text()
            assert time.monotonic() < deadline, "the origin's master never answered"
            time.sleep(0.2)
        up = [p for p in _children(proc.pid) if b"\0up\0" in _cmdline(p)]
        assert len(up) == 1
        roles = _children(up[0])
        assert roles, "up started no role"
        environ = Path(f"/proc/{up[0]}/environ").read_bytes().split(b"\0")
        assert f"LANSCATTER_SECRET={secret}".encode() in environ
        assert f"LSC_SCRIPT_SECRET={secret}".encode() in environ
        assert not any(secret.encode() in _cmdline(int(p)) for p in os.listdir("/proc") if p.isdigit())
        assert (tmp_path / "remote" / "tree.yaml").read_bytes() == tree
        assert not list((tmp_path / "remote").glob("*.part.*"))

        proc.stdin.close()                       # what a closed SSH session does
        assert proc.wait(timeout=20) == 143      # `up` stopped by SIGTERM, its code passed on
        assert not any(os.path.exists(f"/proc/{p}") and _cmdline(p) for p in (*up, *roles))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=5)


def test_the_script_ends_with_up_when_up_ends_by_itself(tmp_path: Path) -> None:
    proc, _, tree = _start(tmp_path, "no-such-host")
    try:
        assert proc.stdin is not None
        proc.stdin.write(go_message(None, tree))
        proc.stdin.flush()
        code = proc.wait(timeout=30)            # input left open: the script must not wait for it
        out = (tmp_path / "out.log").read_text()
        assert code == 2, out
        assert "no host 'no-such-host'" in out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=5)


def test_a_host_told_no_starts_nothing(tmp_path: Path) -> None:
    proc, _, _ = _start(tmp_path, "origin")
    try:
        assert proc.stdin is not None
        proc.stdin.close()                       # what the control host does with an incompatible host
        assert proc.wait(timeout=20) == 96
        assert not (tmp_path / "remote").exists() and not (tmp_path / "work").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=5)


def test_a_tree_file_cut_short_is_not_put_in_place(tmp_path: Path) -> None:
    proc, _, tree = _start(tmp_path, "origin")
    try:
        assert proc.stdin is not None
        whole = go_message(None, tree)
        proc.stdin.write(whole[:-10])             # the connection drops in the middle of the file
        proc.stdin.close()
        assert proc.wait(timeout=20) == 98
        assert not (tmp_path / "remote" / "tree.yaml").exists()
        assert not list((tmp_path / "remote").glob("*.part.*"))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=5)
