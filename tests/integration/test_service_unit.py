"""`lanscatter service --write`: the files it writes, the unit checked by `systemd-analyze verify`
(where it exists), and the unit's ExecStart run as a process with its environment file: the
origin's master comes up on loopback with the secret from that file."""

from __future__ import annotations

import getpass
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from tests.ports import free_port

LANSCATTER = str(Path(sys.executable).with_name("lanscatter"))


def _tree(tmp_path: Path, port: int) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.txt").write_text("served by a unit\n")
    doc = {"dataset": {"name": "svc", "source": str(source), "origin": "origin",
                       "secret": {"env": "LSC_SVC_SECRET"}},
           "sites": {"hq": {"hosts": {"origin": {"address": "127.0.0.1", "master_port": port}}}}}
    path = tmp_path / "tree.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _service(tmp_path: Path, tree: Path, *extra: str, secret: str = "unit-secret-0123456789") -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "lanscatter", "service", str(tree), "--host", "origin",
            "--user", getpass.getuser(), "--lanscatter", LANSCATTER, "--config-dir", str(tmp_path / "etc"),
            "--unit-dir", str(tmp_path / "units"), "--state-dir", str(tmp_path / "state"), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "LSC_SVC_SECRET": secret})


def _unit_settings(unit: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in unit.read_text().splitlines() if re.match(r"^[A-Z]\w*=", line))


def _environment_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        out[name] = shlex.split(value)[0]       # one double-quoted word, as written
    return out


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def test_without_write_nothing_is_written(tmp_path: Path) -> None:
    done = _service(tmp_path, _tree(tmp_path, free_port()))
    assert done.returncode == 0, done.stderr
    assert "ExecStart=" in done.stdout and "LSC_SVC_SECRET=<the swarm secret>" in done.stdout
    assert not (tmp_path / "etc").exists() and not (tmp_path / "units").exists()


def test_the_written_unit_verifies_and_its_command_runs_the_host(tmp_path: Path) -> None:
    port = free_port()
    done = _service(tmp_path, _tree(tmp_path, port), "--write")
    assert done.returncode == 0, done.stderr
    unit = tmp_path / "units" / "lanscatter-svc.service"
    env_file = tmp_path / "etc" / "svc.env"
    assert (env_file.stat().st_mode & 0o777) == 0o600
    assert _environment_file(env_file) == {"LSC_SVC_SECRET": "unit-secret-0123456789"}
    assert (tmp_path / "etc" / "svc.yaml").read_bytes() == (tmp_path / "tree.yaml").read_bytes()

    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                                timeout=60, check=False)
        assert verify.returncode == 0, verify.stderr

    settings = _unit_settings(unit)
    assert settings["EnvironmentFile"] == str(env_file)
    argv = shlex.split(settings["ExecStart"].replace("%%", "%").replace("$$", "$"))
    env = {k: v for k, v in os.environ.items() if k != "LSC_SVC_SECRET"} | _environment_file(env_file)
    with open(tmp_path / "unit.log", "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"http://127.0.0.1:{port}/status"):
            assert proc.poll() is None, (tmp_path / "unit.log").read_text()
            assert time.monotonic() < deadline, "the origin never answered"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)            # what `systemctl stop` sends first (KillMode=mixed)
        assert proc.wait(timeout=20) == 143
        assert (tmp_path / "state" / "svc" / "logs" / "origin.log").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def test_writing_again_keeps_the_secret_in_place(tmp_path: Path) -> None:
    tree = _tree(tmp_path, free_port())
    assert _service(tmp_path, tree, "--write").returncode == 0
    again = _service(tmp_path, tree, "--write", secret="another-0123456789")
    assert again.returncode == 0, again.stderr
    assert _environment_file(tmp_path / "etc" / "svc.env") == {"LSC_SVC_SECRET": "unit-secret-0123456789"}


def test_a_tree_with_relative_paths_is_refused(tmp_path: Path) -> None:
    tree = tmp_path / "tree.yaml"
    tree.write_text(yaml.safe_dump({"dataset": {"name": "svc", "source": "relative/source", "origin": "o"},
                                    "sites": {"hq": {"hosts": ["o"]}}}))
    done = _service(tmp_path, tree)
    assert done.returncode == 2
    assert "dataset.source 'relative/source'" in done.stderr and "hint: make these paths absolute" in done.stderr
