"""Real `sshd`s inside the host namespaces of an emulated tree, for the `up --ssh` tests and benchmark.

Everything lives in one folder the caller gives: a client key, a host key, an `sshd_config`, the
authorized keys, the known hosts (every host's address with the host key) and an `ssh_config` that
uses them and nothing of this machine's own SSH setup. Each sshd listens on its namespace's address
only, in the foreground, and is started through `Emulation.exec`, so the emulation's teardown stops
it by PID if the caller has not.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from lanscatter.emulator.netns import Emulation

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def ssh_problem() -> str | None:
    """Why the SSH tests cannot run here, or None."""
    if not os.path.exists(SSHD):
        return "sshd is missing (scripts/ci-packages.sh installs openssh-server)"
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    return None


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lanscatter-test", "-f", str(path)],
                   check=True, timeout=30)
    return Path(f"{path}.pub").read_text()


def write_ssh_setup(folder: Path, addresses: Iterable[str]) -> Path:
    """Keys, sshd_config, known hosts and an ssh_config in `folder`; returns the ssh_config."""
    folder.mkdir(parents=True, exist_ok=True)
    client_pub = _keygen(folder / "id_ed25519")
    host_pub = _keygen(folder / "host_ed25519").split()
    (folder / "authorized_keys").write_text(client_pub)
    (folder / "known_hosts").write_text("".join(f"{a} {host_pub[0]} {host_pub[1]}\n" for a in addresses))
    (folder / "sshd_config").write_text(
        f"HostKey {folder / 'host_ed25519'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\n"
        "PidFile none\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel INFO\n"
        "MaxStartups 100\n")
    config = folder / "ssh_config"
    config.write_text(
        "Host *\n"
        f"  IdentityFile {folder / 'id_ed25519'}\n  IdentitiesOnly yes\n  IdentityAgent none\n"
        f"  UserKnownHostsFile {folder / 'known_hosts'}\n  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking yes\n  User root\n  LogLevel ERROR\n")
    return config


def start_sshds(emu: Emulation, folder: Path, hosts: Iterable[str], timeout_s: float = 15.0
                ) -> dict[str, subprocess.Popen[bytes]]:
    """One sshd per host on its namespace's address, port 22, logging to `folder/sshd-<host>.log`;
    returns once all listen."""
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)     # sshd's privilege separation folder
    procs = {}
    for h in hosts:
        with open(folder / f"sshd-{h}.log", "wb") as log:
            procs[h] = emu.exec(h, [SSHD, "-D", "-e", "-f", str(folder / "sshd_config"),
                                    "-o", f"ListenAddress={emu.address(h)}:22"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + timeout_s
    for h, proc in procs.items():
        while "Server listening" not in (folder / f"sshd-{h}.log").read_text(errors="replace"):
            if proc.poll() is not None:
                raise RuntimeError(f"sshd of {h} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"sshd of {h} did not start listening")
            time.sleep(0.05)
    return procs


def stop_sshds(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
