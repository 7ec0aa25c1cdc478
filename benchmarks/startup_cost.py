#!/usr/bin/env python3
"""What each role costs to start, from its command to its first milestone: wall and CPU.

    .venv/bin/python benchmarks/startup_cost.py [--runs 5] [--tree DIR] [--size MiB]

A two-site tree (the origin and a peer in `hub`; a gateway and a peer in `branch`, behind a WAN link
with TLS, the default) on 127.0.0.x, its role command lines and environment made as `lanscatter up
--local` makes them (plan, TLS identities, the origin's key, `role_env` where the tree has it).
Each role is started alone, its upstream already running, and timed from its spawn:

- origin (`master`): listening (its /status answers), serving (a generation published);
- relay (`proxy`): listening, joined (the origin lists it), first chunk (the relay holds one);
- peer (of the relay): joined (the relay lists it).

CPU is the role process's own (user + system, /proc, 10 ms ticks) when the milestone was seen
(polled every 10 ms). Then where a role's CPU goes, measured in one process of the tree: the
interpreter, the command line and the role's imports, the site tree, the swarm secret's scrypt, the
TLS set-up. `--tree DIR` measures the lanscatter package in DIR (an older checkout, for a
before/after figure). Times are the minimum and the median of the runs (on a shared machine the
minimum is what the code costs); the load average is printed. Everything runs on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))    # the repository, for tests.ports
from tests.ports import free_ports

COLD_ADDRESSES = {"origin": "127.0.77.2", "gw": "127.0.77.3", "branch-1": "127.0.77.4"}


def _tree(port: int, hosts: dict[str, dict[str, str]] | None = None) -> str:
    """The benchmark's tree: `hosts` gives each host's settings (addresses, folders, fingerprints)
    for a real deployment; without, the hosts are named only (a rehearsal places them)."""
    def site(names: list[str]) -> str:
        if hosts is None:
            return f"[{', '.join(names)}]"
        return "{" + ", ".join(f"{n}: {{{', '.join(f'{k}: {v}' for k, v in hosts[n].items())}}}" for n in names) + "}"
    hub, branch = (["origin", "hub-1"], ["gw", "branch-1"]) if hosts is None else (["origin"], ["gw", "branch-1"])
    return f"""\
dataset:
  source: source
  origin: origin
  name: startup
  secret: {{value: startup-benchmark-secret}}
defaults: {{master_port: {port}, peer_port: {port + 1}}}
sites:
  hub:
    lan: 1Gbit
    hosts: {site(hub)}
  branch:
    lan: 100Mbit
    switch: none
    gateway: gw
    hosts: {site(branch)}
wan:
  - between: [hub, branch]
    bandwidth: 50Mbit
    latency: 10ms
"""


# Run inside the tree under test: the role commands and environment `up --local` would give.
PLAN = """
import json, sys
from pathlib import Path
from lanscatter.topology.derive import derive_plan
from lanscatter.topology.origin_keys import run_keys
from lanscatter.topology.roles import RunContext, link_flag_support, role_command
from lanscatter.topology.tls_plan import plan_tls
from lanscatter.topology.validate import load_topology
file, workdir = Path(sys.argv[1]), Path(sys.argv[2])
topo = load_topology(file)
plan = derive_plan(topo, local=True, workdir=workdir)
hosts = list(plan.hosts)
tls = plan_tls(topo, plan, [h.name for h in hosts], workdir / "state", one_machine=True)
origin_key, signing_key = run_keys(plan, hosts, rehearsal=workdir, state_root=workdir / "state")
ctx = RunContext(topology_file=file, state_root=workdir / "state", local=True, workdir=workdir,
                 link_flags=link_flag_support(), origin_key=origin_key, signing_key=signing_key, tls=tls)
secret = plan.dataset.secret_value()
try:
    from lanscatter.topology.roles import role_env
    env = role_env(secret)
except ImportError:                       # before the roles got the stretched key
    env = {"LANSCATTER_SECRET": secret}
cmds = {h.name: role_command(plan, h, ctx) for h in hosts}
print(json.dumps({"env": env, "argv": {n: list(c.argv) for n, c in cmds.items()},
                  "status": {n: c.status_url for n, c in cmds.items()},
                  "tls": {n: {"cert": str(t.identity / "cert.pem"), "key": str(t.identity / "key.pem")}
                          for n, t in tls.items() if t.identity is not None},
                  "fingerprints": sorted({f for t in tls.values() for f in t.pins})}))
"""

# Run inside the tree under test: a host's TLS identity made where its `up` looks, its fingerprint.
IDENTITY = """
import sys
from pathlib import Path
from lanscatter.net.tls import ensure_identity
print(ensure_identity(Path(sys.argv[1]), sys.argv[2]))
"""

# Run inside the tree under test: where one role's start-up CPU goes, step by step.
PHASES = """
import hashlib, json, resource, sys, time
from pathlib import Path
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
role, topology, host, cert, key, fingerprints = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
out = {"interpreter": cpu()}
t = cpu()
import lanscatter.cli
lanscatter.cli.build_parser({"master": "master", "relay": "proxy", "peer": "peer"}[role])
out["command line"] = cpu() - t
t = cpu()
if role == "master":
    import lanscatter.roles.master
elif role == "relay":
    import lanscatter.roles.relay
else:
    import lanscatter.roles.peer
import lanscatter.roles.node_progress
out["role imports"] = cpu() - t
if role != "peer":
    t = cpu()
    from lanscatter.topology import derive_plan, load_topology
    derive_plan(load_topology(Path(topology)), local=True, workdir=Path(topology).parent / "wd").link_map
    out["site tree"] = cpu() - t
t = cpu()
hashlib.scrypt(b"startup-benchmark-secret", salt=b"lanscatter swarm secret v1", n=2**15, r=8, p=1,
               maxmem=64 * 2**20, dklen=32)
out["secret (scrypt)"] = cpu() - t
t = cpu()
from lanscatter.net.tls import client_context, server_tls
if role != "peer" and cert != "-":
    server_tls(Path(cert), Path(key), required=False)
if role != "master" and fingerprints:
    client_context(fingerprints, None)
out["TLS set-up"] = cpu() - t
mods = [m for m in sys.modules if m.split(".")[0] in ("textual", "rich", "yaml", "lanscatter_tui", "prometheus_client")]
out["loaded"] = sorted({m.split(".")[0] for m in mods})
print(json.dumps(out))
"""


def _env(tree: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LANSCATTER_SECRET", "LANSCATTER_SWARM_KEY")}
    if tree is not None:
        env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def _cpu_of(pid: int) -> float:
    """User + system seconds of a running process (/proc, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            doc: dict[str, Any] = json.loads(resp.read())
            return doc
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None


def _lists(url: str, name: str) -> bool:
    nodes = (_status(url) or {}).get("nodes", ())
    return any(n.get("name") == name and n.get("online", True) for n in nodes)


def _holds_a_chunk(url: str, name: str) -> bool:
    nodes = (_status(url) or {}).get("nodes", ())
    return any(n.get("name") == name and n.get("have", 0) > 0 for n in nodes)


def _cpu_with_children(pid: int) -> float:
    """A process's CPU and that of its children (an `up` and the role it started)."""
    total = _cpu_of(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    for child in children:
        try:
            total += _cpu_with_children(int(child))
        except OSError:
            pass                      # ended meanwhile
    return total


class Proc:
    """A process started from its command line; `reach` records when milestones are seen: seconds
    since `since`, and the process's CPU (with its children's) then."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = log.stem
        self._log = open(log, "ab")  # noqa: SIM115 (closed in stop)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def reach(self, milestones: dict[str, Any], since: float, others: tuple[Proc, ...] = (),
              limit_s: float = 60.0) -> dict[str, tuple[float, float]]:
        marks, pending = {}, dict(milestones)
        while pending:
            for p in (self, *others):
                if p.proc.poll() is not None:
                    raise SystemExit(f"{p.name} exited ({p.proc.returncode}) before: {', '.join(pending)}")
            if time.monotonic() - since > limit_s:
                raise SystemExit(f"not within {limit_s:.0f} s: {', '.join(pending)} (see {self.name}'s log)")
            for name, seen in list(pending.items()):
                if seen():
                    marks[name] = (time.monotonic() - since, _cpu_with_children(self.proc.pid))
                    del pending[name]
            time.sleep(0.01)
        return marks

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _source(work: Path, size: int) -> None:
    source = work / "source"
    source.mkdir()
    for i in range(4):
        (source / f"f{i}.bin").write_bytes(os.urandom(size // 4))


def _one_run(base: Path, tree: Path | None, size: int, run: int
             ) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
    """Each role alone, its upstream running, as `up --local` starts it."""
    work = base / f"run{run}"
    work.mkdir()
    (work / "tree.yaml").write_text(_tree(free_ports(2)[0]))
    _source(work, size)
    out = subprocess.run([sys.executable, "-c", PLAN, str(work / "tree.yaml"), str(work / "wd")],
                         capture_output=True, text=True, env=_env(tree), cwd=tree, check=True)
    plan = json.loads(out.stdout)
    env, url = _env(tree, plan["env"]), plan["status"]
    marks: dict[str, tuple[float, float]] = {}
    roles: list[Proc] = []
    try:
        origin = Proc(plan["argv"]["origin"], env, work / "origin.log")
        roles.append(origin)
        marks.update({f"origin {k}": v for k, v in origin.reach({
            "listening": lambda: _status(url["origin"]) is not None,
            "serving": lambda: bool((_status(url["origin"]) or {}).get("generation"))}, origin.started).items()})
        relay = Proc(plan["argv"]["gw"], env, work / "gw.log")
        roles.append(relay)
        marks.update({f"relay {k}": v for k, v in relay.reach({
            "listening": lambda: _status(url["gw"]) is not None,
            "joined": lambda: _lists(url["origin"], "gw"),
            "first chunk": lambda: _holds_a_chunk(url["gw"], "gw")}, relay.started).items()})
        peer = Proc(plan["argv"]["branch-1"], env, work / "branch-1.log")
        roles.append(peer)
        marks.update({f"peer {k}": v for k, v in peer.reach({
            "joined": lambda: _lists(url["gw"], "branch-1")}, peer.started).items()})
    finally:
        for role in reversed(roles):
            role.stop()
    return marks, plan


def _cold_run(base: Path, tree: Path | None, size: int, run: int) -> dict[str, tuple[float, float]]:
    """Three hosts' `lanscatter up --host NAME` started together, as on real hosts (each with its
    own work folder); seconds from their start, and each host's CPU (its `up` and its role)."""
    work = base / f"cold{run}"
    work.mkdir()
    _source(work, size)
    fingerprints = {}
    for host in COLD_ADDRESSES:
        r = subprocess.run([sys.executable, "-c", IDENTITY,
                            str(work / host / "state" / host / "tls"), host],
                           capture_output=True, text=True, env=_env(tree), cwd=tree, check=True)
        fingerprints[host] = r.stdout.strip()
    port = free_ports(2, tuple(COLD_ADDRESSES.values()))[0]
    hosts = {h: {"address": a, "tls_fingerprint": fingerprints[h],
                 **({} if h == "origin" else {"folder": str(work / h / "folder")})}
             for h, a in COLD_ADDRESSES.items()}
    (work / "tree.yaml").write_text(_tree(port, hosts))
    env = _env(tree)
    url = {h: f"http://{a}:{port if h != 'branch-1' else port + 1}/status" for h, a in COLD_ADDRESSES.items()}
    ups: dict[str, Proc] = {}
    try:
        since = time.monotonic()
        for host in COLD_ADDRESSES:
            ups[host] = Proc([sys.executable, "-m", "lanscatter", "up", str(work / "tree.yaml"), "--host", host,
                              "--headless", "--workdir", str(work / host)], env, work / f"up-{host}.log")
        others = tuple(ups.values())
        marks = {f"origin {k}": v for k, v in ups["origin"].reach({
            "serving": lambda: bool((_status(url["origin"]) or {}).get("generation"))}, since, others).items()}
        marks.update({f"relay {k}": v for k, v in ups["gw"].reach({
            "joined": lambda: _lists(url["origin"], "gw"),
            "first WAN chunk": lambda: _holds_a_chunk(url["gw"], "gw")}, since, others).items()})
        marks.update({f"peer {k}": v for k, v in ups["branch-1"].reach({
            "joined": lambda: _lists(url["gw"], "branch-1")}, since, others).items()})
    finally:
        for up in ups.values():
            up.stop()
    return marks


def _phases(tree: Path | None, plan: dict[str, Any], topology: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for role, host in (("master", "origin"), ("relay", "gw"), ("peer", "branch-1")):
        tls = plan["tls"].get(host, {})
        r = subprocess.run([sys.executable, "-c", PHASES, role, str(topology), host, tls.get("cert", "-"),
                            tls.get("key", "-"), *plan["fingerprints"]],
                           capture_output=True, text=True, env=_env(tree), cwd=tree, check=True)
        out[role] = json.loads(r.stdout)
    return out


def _stale_bytecode(tree: Path | None) -> int:
    """The package's modules a process compiles at every start: no bytecode, or bytecode older than
    the source, where PYTHONDONTWRITEBYTECODE keeps the interpreter from writing it."""
    root = (tree or Path(__file__).resolve().parents[1]) / "lanscatter"
    stale = 0
    for source in root.rglob("*.py"):
        cached = Path(importlib.util.cache_from_source(str(source)))
        if not cached.exists() or cached.stat().st_mtime < source.stat().st_mtime:
            stale += 1
    return stale if os.environ.get("PYTHONDONTWRITEBYTECODE") else 0


def _figure(values: list[float]) -> str:
    return f"{min(values):5.2f} {statistics.median(values):5.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tree", type=Path, default=None, help="measure the lanscatter package in this folder")
    ap.add_argument("--size", type=int, default=16, help="the data set in MiB (default 16)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs' folders and logs here")
    args = ap.parse_args()
    tree = args.tree.resolve() if args.tree else None
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    stale = _stale_bytecode(tree)
    if stale:
        print(f"note: PYTHONDONTWRITEBYTECODE is set and {stale} of the package's modules have no current "
              "bytecode: every process compiles them at start (python -m compileall lanscatter)")
    runs: list[dict[str, tuple[float, float]]] = []
    colds: list[dict[str, tuple[float, float]]] = []
    phases: list[dict[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="startup-cost-") as scratch:
        tmp = args.keep or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        for i in range(args.runs):
            marks, plan = _one_run(tmp, tree, args.size << 20, i)
            runs.append(marks)
            phases.append(_phases(tree, plan, tmp / f"run{i}" / "tree.yaml"))
            colds.append(_cold_run(tmp, tree, args.size << 20, i))
    _table("each role alone, its upstream running; from its spawn to", "CPU: the role's", runs)
    _table("cold: the three hosts' `up --host` started together; from then to", "CPU: that host's up + role", colds)
    print("\nwhere a role's start-up CPU goes, s (min median)")
    steps = [k for k in phases[0]["relay"] if k != "loaded"]
    print(f"  {'':<18}" + "".join(f"{role:>14}" for role in phases[0]))
    for step in steps:
        cells = []
        for role in phases[0]:
            values = [p[role][step] for p in phases if step in p[role]]
            cells.append(_figure(values) if values else "")
        print(f"  {step:<18}" + "".join(f"{c:>14}" for c in cells))
    for role, doc in phases[0].items():
        print(f"  {role} also loaded: {', '.join(doc['loaded']) or 'none of textual, rich, yaml, the TUI, prometheus'}")


def _table(title: str, cpu: str, runs: list[dict[str, tuple[float, float]]]) -> None:
    print(f"\n{title:<44} wall s (min median)  {cpu}, s (min median)")
    for name in runs[0]:
        print(f"  {name:<42}  {_figure([r[name][0] for r in runs])}         {_figure([r[name][1] for r in runs])}")


if __name__ == "__main__":
    main()
