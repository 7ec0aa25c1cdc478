"""How long `lanscatter up FILE --ssh` takes to bring a tree up, for growing numbers of hosts.

For each size, builds an emulated three-site tree (`lanscatter.emulator`, hosts spread over the
sites in turn) with a real `sshd` in every host's namespace, starts `up --ssh` from the origin's
namespace (the control host), and measures from that start:
- checked: every host connected, its version read and the tree file copied (the control's line);
- serving: the origin serves its first generation (its scan of the data set done);
- first chunk: the first host other than the origin holds a verified chunk (the origin's /status,
  polled every 50 ms from inside the emulated network);
- synced: the control says every host holds the generation;
- stopped: Ctrl-C (SIGINT) until the control has stopped every host's part.

    sudo .venv/bin/python benchmarks/ssh_bringup.py [--hosts 4,8,12] [--size 32MiB] [--keep DIR]

As an operator would, it makes every host's TLS identity first (in the hosts' `up --workdir`) and
writes the fingerprints into the tree, so the WAN links run TLS (the default). `--keep DIR` keeps
each run's folder (the control's and every host's logs) under DIR.

Needs root, iproute2, /dev/net/tun and openssh-server (scripts/ci-packages.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lanscatter.core.ports import DEFAULT_MASTER_PORT
from lanscatter.core.sizes import parse_size
from lanscatter.emulator.from_topology import emulated_addresses, net_spec
from lanscatter.emulator.netns import Emulation, support_problem
from lanscatter.emulator.run import inside_namespace
from lanscatter.net.tls import ensure_identity
from lanscatter.topology.tls_plan import identity_dir
from lanscatter.topology.validate import load_topology
from tests.integration.ssh_hosts import ssh_problem, start_sshds, stop_sshds, write_ssh_setup

SITES = ("hq", "east", "west")


def _hosts(n: int) -> dict[str, list[str]]:
    out = {"hq": ["origin"], "east": ["east-gw"], "west": ["west-gw"]}
    for i in range(n - 3):
        out[SITES[i % 3]].append(f"{SITES[i % 3]}-{i // 3 + 1}")
    return out


def _tree(path: Path, source: Path, root: Path, hosts: dict[str, list[str]], addresses: dict[str, str] | None,
          fingerprints: dict[str, str] | None = None) -> Path:
    def site_hosts(site: str) -> object:
        if addresses is None:
            return hosts[site]
        return {h: {"address": addresses[h], **({} if h == "origin" else {"folder": str(root / h)}),
                    **({"tls_fingerprint": fingerprints[h]} if fingerprints else {})}
                for h in hosts[site]}

    doc = {"dataset": {"name": "bringup", "source": str(source), "origin": "origin", "chunk_size": "1MiB",
                       "secret": {"env": "BRINGUP_SECRET"}},
           "sites": {"hq": {"lan": "1Gbit", "hosts": site_hosts("hq")},
                     "east": {"lan": "1Gbit", "gateway": "east-gw", "hosts": site_hosts("east")},
                     "west": {"lan": "1Gbit", "gateway": "west-gw", "hosts": site_hosts("west")}},
           "wan": [{"between": ["hq", "east"], "bandwidth": "100Mbit", "latency": "5ms"},
                   {"between": ["hq", "west"], "bandwidth": "100Mbit", "latency": "5ms"}]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _first_chunk(namespace: str, url: str, t0: float, found: dict[str, float], stop: threading.Event) -> None:
    """Poll the origin's status from inside the emulated network until a host other than the origin
    holds a chunk."""
    with inside_namespace(namespace):
        while not stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    status = json.load(resp)
                if any(n.get("name") != "origin" and int(n.get("have") or 0) > 0 for n in status.get("nodes") or ()):
                    found["first_chunk"] = time.monotonic() - t0
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)


def measure(n: int, size: int, timeout_s: float, keep: Path | None) -> dict[str, float]:
    with contextlib.ExitStack() as stack:
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f"{n}-hosts-", dir=keep))
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ssh-bringup-")))
        source = tmp / "source"
        source.mkdir()
        (source / "data.bin").write_bytes(os.urandom(size))
        hosts = _hosts(n)
        draft = load_topology(_tree(tmp / "draft.yaml", source, tmp / "hosts", hosts, None))
        spec = net_spec(draft, "b" + secrets.token_hex(2))
        addresses = emulated_addresses(spec)
        fingerprints = {h: ensure_identity(identity_dir(tmp / "remote-work" / "state", h), h)
                        for site in hosts.values() for h in site}
        tree = _tree(tmp / "tree.yaml", source, tmp / "hosts", hosts, addresses, fingerprints)
        config = write_ssh_setup(tmp / "ssh", addresses.values())
        lanscatter = str(Path(sys.executable).with_name("lanscatter"))
        argv = [sys.executable, "-m", "lanscatter", "up", str(tree), "--ssh", "--ssh-config", str(config),
                "--remote-lanscatter", lanscatter, "--remote-file", str(tmp / "remote" / "tree.yaml"),
                "--remote-workdir", str(tmp / "remote-work"), "--workdir", str(tmp / "control")]
        marks: dict[str, float] = {}
        with Emulation(spec) as emu:
            sshds = start_sshds(emu, tmp / "ssh", addresses)
            try:
                t0 = time.monotonic()
                control = emu.exec("origin", argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "BRINGUP_SECRET": secrets.token_hex(16)})
                stop = threading.Event()
                url = f"http://{addresses['origin']}:{DEFAULT_MASTER_PORT}/status"
                poller = threading.Thread(target=_first_chunk, args=(emu.namespace("origin"), url, t0, marks, stop))
                poller.start()
                assert control.stdout is not None
                deadline = t0 + timeout_s
                for line in control.stdout:
                    now = time.monotonic() - t0
                    if "hosts checked" in line:
                        marks.setdefault("checked", now)
                    elif "origin serving generation" in line:
                        marks.setdefault("serving", now)
                    elif "every host holds generation" in line:
                        marks["synced"] = now
                        break
                    if time.monotonic() > deadline:
                        break
                stop.set()
                poller.join(timeout=5)
                t_stop = time.monotonic()
                control.send_signal(signal.SIGINT)
                control.communicate(timeout=60)
                marks["stopped"] = time.monotonic() - t_stop
            finally:
                stop_sshds(sshds)
        return marks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="4,8,12", help="tree sizes, comma-separated (each at least 3)")
    ap.add_argument("--size", type=parse_size, default=parse_size("32MiB"), help="data set size")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per tree")
    ap.add_argument("--keep", type=Path, default=None, metavar="DIR", help="keep each run's folder under DIR")
    args = ap.parse_args()
    problem = support_problem() or ssh_problem()
    if problem:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 2
    print(f"{'hosts':>5} {'checked':>8} {'serving':>8} {'1st chunk':>9} {'synced':>7} {'stop':>6}   (seconds)")
    for n in (int(x) for x in args.hosts.split(",")):
        m = measure(max(3, n), args.size, args.timeout, args.keep)
        cells = [f"{m[k]:8.2f}" if k in m else f"{'-':>8}" for k in ("checked", "serving", "first_chunk", "synced",
                                                                    "stopped")]
        print(f"{n:>5} {cells[0]} {cells[1]} {cells[2]:>9} {cells[3]:>7} {cells[4]:>6}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
