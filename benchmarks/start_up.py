#!/usr/bin/env python3
"""What starting a role costs: the modules each command loads, the CPU time to parse its options,
and the time from a master's process start to the first byte of a chunk it serves on loopback.

    .venv/bin/python benchmarks/start_up.py [--runs 7] [--tree DIR]

`--tree DIR` measures the lanscatter package found in DIR (an older checkout, for a before/after
figure; the commands run there, with it first on PYTHONPATH). Times are the minimum and the median of the runs: the
minimum is what the machine can do, the median what it did while shared; the module counts do
not depend on the load. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))    # the repository, for tests.ports
from lanscatter.disk.hashing import new_hasher
from tests.ports import free_port

COMMANDS = ("peer", "proxy", "master", "up")
WATCHED = ("textual", "rich", "cryptography", "lanscatter_tui", "lanscatter.topology", "lanscatter.roles.master",
           "lanscatter.core.planner", "yaml")


def _env(tree: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _help(command: str, tree: Path | None) -> tuple[float, set[str], float]:
    """(CPU seconds, modules imported, summed self import seconds) of `lanscatter COMMAND --help`."""
    return _imports(["-m", "lanscatter", command, "--help"], tree)


def _imports(argv: list[str], tree: Path | None) -> tuple[float, set[str], float]:
    """(CPU seconds, modules imported, summed self import seconds) of `python ARGV`. CPU time (user
    and system), not wall time: on a shared machine it hardly depends on the others' load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv],
                          capture_output=True, text=True, env=_env(tree), cwd=tree, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    modules, self_us = set(), 0
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            own, _, name = line.removeprefix("import time:").split("|")
            if own.strip().isdigit():
                self_us += int(own)
                modules.add(name.strip())
    return cpu, modules, self_us / 1e6


def _first_byte(tmp: Path, tree: Path | None) -> float:
    """Seconds from a master's process start to the first byte of its one chunk (1 MiB)."""
    source = tmp / "src"
    source.mkdir(exist_ok=True)
    data = (source / "a.bin")
    if not data.exists():
        data.write_bytes(os.urandom(1 << 20))
    hasher = new_hasher()
    hasher.update(data.read_bytes())
    port = free_port()
    url = f"http://127.0.0.1:{port}/chunks/{hasher.hexdigest()}"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "lanscatter", "master", str(source), "--listen", "127.0.0.1",
                             "--port", str(port), "--insecure", "--chunking", "fixed", "--chunk-size", "4MiB",
                             "--state-dir", str(tmp / f"state-{port}")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(tree), cwd=tree)
    try:
        while time.monotonic() - started < 60:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.read(1):
                        return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.01)
        raise SystemExit("the master served nothing within 60 s")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _figure(values: list[float]) -> str:
    return f"min {min(values):.2f} s, median {statistics.median(values):.2f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--tree", type=Path, default=None, help="measure the lanscatter package in this folder")
    args = ap.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} (1 min)")
    for command in COMMANDS:
        runs = [_help(command, args.tree) for _ in range(args.runs)]
        modules = runs[-1][1]
        watched = sorted(w for w in WATCHED if any(m == w or m.startswith(w + ".") for m in modules))
        print(f"{command} --help: CPU {_figure([r[0] for r in runs])}; {len(modules)} modules, "
              f"imports {_figure([r[2] for r in runs])}; loads {', '.join(watched) or 'none of the watched'}")
    with tempfile.TemporaryDirectory() as tmp:
        # A peer whose master never answers: its whole start, up to its first connect (then 1 s).
        runs = [_imports(["-m", "lanscatter", "peer", f"127.0.0.1:{free_port()}", str(Path(tmp) / "p"),
                          "--listen", "127.0.0.1", "--port", "0", "--insecure", "--connect-timeout", "1",
                          "--state-dir", str(Path(tmp) / "ps")], args.tree) for _ in range(args.runs)]
        modules = runs[-1][1]
        watched = sorted(w for w in WATCHED if any(m == w or m.startswith(w + ".") for m in modules))
        print(f"peer start (until its first connect, then 1 s): CPU {_figure([r[0] for r in runs])}; "
              f"{len(modules)} modules, imports {_figure([r[2] for r in runs])}; loads {', '.join(watched) or 'none of the watched'}")
        firsts = [_first_byte(Path(tmp), args.tree) for _ in range(args.runs)]
    print(f"master start to first chunk byte: {_figure(firsts)}")


if __name__ == "__main__":
    main()
