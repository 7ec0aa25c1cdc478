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
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lanscatter.emulator.from_topology import emulated_addresses, net_spec
from lanscatter.emulator.netns import Emulation, support_problem
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


def test_up_over_ssh_brings_up_follows_and_stops_a_three_site_tree(tmp_path: Path) -> None:
    source, hosts_root = tmp_path / "source", tmp_path / "hosts"
    (source / "nested").mkdir(parents=True)
    (source / "big.bin").write_bytes(os.urandom(2 * 2**20 + 4321))
    (source / "nested" / "small.txt").write_bytes(b"over ssh\n")
    draft = load_topology(_tree(tmp_path / "draft.yaml", source, hosts_root, None))
    spec = net_spec(draft, "t" + secrets.token_hex(2))
    addresses = emulated_addresses(spec)
    tree = _tree(tmp_path / "tree.yaml", source, hosts_root, addresses)
    config = write_ssh_setup(tmp_path / "ssh", addresses.values())
    secret = "s-" + secrets.token_hex(16)
    lanscatter = str(Path(sys.executable).with_name("lanscatter"))
    report_path = tmp_path / "report.json"
    argv = [sys.executable, "-m", "lanscatter", "up", str(tree), "--ssh", "--ssh-config", str(config),
            "--remote-lanscatter", lanscatter if os.path.exists(lanscatter) else "lanscatter",
            "--remote-file", str(tmp_path / "remote" / "tree.yaml"),
            "--remote-workdir", str(tmp_path / "remote-work"), "--workdir", str(tmp_path / "control"),
            "--exit-when-synced", "--timeout", "60", "--report", str(report_path)]
    with Emulation(spec) as emu:
        sshds = start_sshds(emu, tmp_path / "ssh", addresses)
        try:
            control = emu.exec("origin", argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "LSC_SSH_TEST_SECRET": secret})
            seen_secret = False
            deadline = time.monotonic() + 90
            while control.poll() is None and time.monotonic() < deadline:
                seen_secret = seen_secret or any(secret.encode() in c for c in _cmdlines())
                time.sleep(0.2)
            out = control.communicate(timeout=max(1.0, deadline - time.monotonic()))[0].decode(errors="replace")
            assert control.returncode == 0, out[-5000:]
            # only the sshds are left in the hosts' namespaces: every `up` and role stopped
            time.sleep(0.5)
            left = {h: subprocess.run(["ip", "netns", "pids", emu.namespace(h)], capture_output=True,
                                      text=True, timeout=10, check=True).stdout.split() for h in addresses}
            assert all(pids == [str(sshds[h].pid)] for h, pids in left.items()), left
            assert all(p.poll() is None for p in sshds.values()), "an sshd was stopped"
        finally:
            stop_sshds(sshds)
    assert not seen_secret, "the secret was on a command line"
    want = tree_state(source)
    for name in addresses:
        if name != "origin":
            assert tree_state(hosts_root / name) == want, f"{name} differs from the origin"
    report = json.loads(report_path.read_text())
    assert report["synced"] is True
    assert all(s["problem"] is None and s["exit_code"] in (143, 0) for s in report["ssh"].values()), report["ssh"]
    assert (tmp_path / "remote" / "tree.yaml").read_bytes() == tree.read_bytes()
    assert "holds generation" in out or "every host" in out, out[-3000:]
