"""`lanscatter up FILE --ssh` against real sshds: a three-site tree on an emulated network is
checked, started, followed and stopped from one control host, with the secret passed over SSH.

Every host of the tree is a network namespace with its own `sshd` (a key, host key, known hosts
and ssh_config made by the test). The control host is the origin's namespace: the emulated
addresses are routable only inside the emulated tree, never from this machine's own namespace,
so the control process runs where a real one would sit, on the origin's LAN. Needs root,
iproute2, /dev/net/tun and openssh-server; skipped with the reason elsewhere.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lanscatter.emulator.from_topology import emulated_addresses, net_spec
from lanscatter.emulator.netns import Emulation, support_problem
from lanscatter.emulator.spec import NetSpec
from lanscatter.topology.validate import load_topology
from tests.integration.nodes import tree_state
from tests.integration.ssh_hosts import ssh_problem, start_sshds, stop_sshds, write_ssh_setup

_problem = support_problem() or ssh_problem()
pytestmark = [pytest.mark.netns, pytest.mark.ssh, pytest.mark.skipif(_problem is not None, reason=_problem or "")]

SITES = {"hq": ["origin", "hq-1"], "east": ["east-gw", "east-1"], "west": ["west-gw", "west-1"]}


def _tree(path: Path, source: Path, hosts_root: Path, addresses: dict[str, str] | None) -> Path:
    def hosts(site: str) -> object:
        if addresses is None:
            return SITES[site]
        return {name: {"address": addresses[name], **({} if name == "origin" else {"folder": str(hosts_root / name)})}
                for name in SITES[site]}

    doc = {
        # The hosts' TLS identities would be made on their first start, after the tree is written:
        # this test is about bringing a tree up over SSH (TLS between hosts: test_tls.py).
        "tls": "off",
        "dataset": {"name": "sshdemo", "source": str(source), "origin": "origin", "chunk_size": "256KiB",
                    "secret": {"env": "LSC_SSH_TEST_SECRET"}},
        "sites": {
            "hq": {"lan": "1Gbit", "hosts": hosts("hq")},
            "east": {"lan": "1Gbit", "gateway": "east-gw", "hosts": hosts("east")},
            "west": {"lan": "1Gbit", "gateway": "west-gw", "hosts": hosts("west")},
        },
        "wan": [{"between": ["hq", "east"], "bandwidth": "100Mbit", "latency": "5ms"},
                {"between": ["hq", "west"], "bandwidth": "100Mbit", "latency": "5ms"}],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _cmdlines() -> list[bytes]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes())
            except OSError:
                continue
    return out


@dataclass
class Setup:
    source: Path
    hosts_root: Path
    spec: NetSpec
    addresses: dict[str, str]
    tree: Path
    config: Path


def _setup(tmp_path: Path) -> Setup:
    source, hosts_root = tmp_path / "source", tmp_path / "hosts"
    (source / "nested").mkdir(parents=True)
    (source / "big.bin").write_bytes(os.urandom(2 * 2**20 + 4321))
    (source / "nested" / "small.txt").write_bytes(b"over ssh\n")
    draft = load_topology(_tree(tmp_path / "draft.yaml", source, hosts_root, None))
    spec = net_spec(draft, "t" + secrets.token_hex(2))
    addresses = emulated_addresses(spec)
    tree = _tree(tmp_path / "tree.yaml", source, hosts_root, addresses)
    return Setup(source, hosts_root, spec, addresses, tree, write_ssh_setup(tmp_path / "ssh", addresses.values()))


def _control(tmp_path: Path, setup: Setup, *extra: str) -> list[str]:
    lanscatter = str(Path(sys.executable).with_name("lanscatter"))
    return [sys.executable, "-m", "lanscatter", "up", str(setup.tree), "--ssh", "--ssh-config", str(setup.config),
            "--remote-lanscatter", lanscatter if os.path.exists(lanscatter) else "lanscatter",
            "--remote-file", str(tmp_path / "remote" / "tree.yaml"),
            "--remote-workdir", str(tmp_path / "remote-work"), "--workdir", str(tmp_path / "control"),
            "--report", str(tmp_path / "report.json"), *extra]


def _left_in(emu: Emulation, hosts: list[str]) -> dict[str, list[str]]:
    """The PIDs in each host's namespace."""
    return {h: subprocess.run(["ip", "netns", "pids", emu.namespace(h)], capture_output=True, text=True,
                              timeout=10, check=True).stdout.split() for h in hosts}


def test_up_over_ssh_brings_up_follows_and_stops_a_three_site_tree(tmp_path: Path) -> None:
    setup = _setup(tmp_path)
    secret = "s-" + secrets.token_hex(16)
    argv = _control(tmp_path, setup, "--exit-when-synced", "--timeout", "60")
    with Emulation(setup.spec) as emu, open(tmp_path / "control.out", "wb") as out:
        sshds = start_sshds(emu, tmp_path / "ssh", setup.addresses)
        try:
            control = emu.exec("origin", argv, stdout=out, stderr=subprocess.STDOUT,
                               env={**os.environ, "LSC_SSH_TEST_SECRET": secret})
            seen_secret = False
            deadline = time.monotonic() + 90
            while control.poll() is None and time.monotonic() < deadline:
                seen_secret = seen_secret or any(secret.encode() in c for c in _cmdlines())
                time.sleep(0.2)
            code = control.wait(timeout=max(1.0, deadline - time.monotonic()))
            said = (tmp_path / "control.out").read_text(errors="replace")
            assert code == 0, said[-5000:]
            # only the sshds are left in the hosts' namespaces: every `up` and role stopped
            time.sleep(0.5)
            left = _left_in(emu, list(setup.addresses))
            assert all(pids == [str(sshds[h].pid)] for h, pids in left.items()), left
            assert all(p.poll() is None for p in sshds.values()), "an sshd was stopped"
        finally:
            stop_sshds(sshds)
    assert not seen_secret, "the secret was on a command line"
    want = tree_state(setup.source)
    for name in setup.addresses:
        if name != "origin":
            assert tree_state(setup.hosts_root / name) == want, f"{name} differs from the origin"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["synced"] is True
    assert all(s["problem"] is None and s["exit_code"] == 143 for s in report["ssh"].values()), report["ssh"]
    assert (tmp_path / "remote" / "tree.yaml").read_bytes() == setup.tree.read_bytes()
    assert "every host holds generation" in said, said[-3000:]


def test_an_unreachable_host_is_listed_and_ctrl_c_stops_the_others(tmp_path: Path) -> None:
    setup = _setup(tmp_path)
    reachable = [h for h in setup.addresses if h != "west-1"]
    argv = _control(tmp_path, setup)
    with Emulation(setup.spec) as emu, open(tmp_path / "control.out", "wb") as out:
        sshds = start_sshds(emu, tmp_path / "ssh", reachable)
        try:
            control = emu.exec("origin", argv, stdout=out, stderr=subprocess.STDOUT,
                               env={**os.environ, "LSC_SSH_TEST_SECRET": secrets.token_hex(16)})
            deadline = time.monotonic() + 60
            said = ""
            while "east-1 complete" not in said:
                assert control.poll() is None and time.monotonic() < deadline, said[-5000:]
                time.sleep(0.2)
                said = (tmp_path / "control.out").read_text(errors="replace")
            control.send_signal(signal.SIGINT)
            code = control.wait(timeout=40)
            said = (tmp_path / "control.out").read_text(errors="replace")
            assert code == 130, said[-5000:]
            time.sleep(0.5)
            left = _left_in(emu, reachable)
            assert all(pids == [str(sshds[h].pid)] for h, pids in left.items()), left
        finally:
            stop_sshds(sshds)
    assert f"west-1 ({setup.addresses['west-1']}): ssh: connect to host" in said, said[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert "Connection refused" in report["ssh"]["west-1"]["problem"]
    assert all(report["ssh"][h]["problem"] is None and report["ssh"][h]["exit_code"] == 143 for h in reachable)
    assert tree_state(setup.hosts_root / "east-1") == tree_state(setup.source)
