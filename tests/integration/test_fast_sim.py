"""The compiled planner and simulator (scripts/build-fast-sim.py, mypyc) give exactly the results of
the Python sources: the same runs, transfer for transfer, on scenarios that exercise every path."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = [
    ["--nodes", "40", "--chunks", "120", "--slow-fraction", "0.1", "--fail-rate", "0.03", "--churn", "0.1"],
    ["--nodes", "30", "--chunks", "80", "--sites", "3", "--wan-mbps", "100,40", "--switch-mbps", "2000",
     "--fail-rate", "0.02", "--slow-fraction", "0.06"],
]

pytestmark = [pytest.mark.build, pytest.mark.skipif(
    shutil.which("cc") is None or importlib.util.find_spec("mypyc") is None,
    reason="needs a C compiler and mypyc")]


def _simulate(args: list[str], pythonpath: Path | None, cwd: Path) -> dict:  # type: ignore[type-arg]
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    out = subprocess.run([sys.executable, "-P", "-m", "lanscatter", "simulate", *args, "--quiet", "--json",
                          "--seed", "3"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout)


@pytest.mark.timeout(600)
def test_compiled_simulation_matches_the_sources(tmp_path: Path) -> None:
    fast = tmp_path / "fast"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-fast-sim.py"), "--out", str(fast)],
                   check=True, timeout=400, capture_output=True)
    assert list((fast / "lanscatter" / "core" / "planner").glob("__init__.*.so")), "the planner was not compiled"
    probe = subprocess.run([sys.executable, "-P", "-c", "import lanscatter.core.planner as p; print(p.__file__)"],
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(fast)}, capture_output=True,
                           text=True, check=True)
    assert probe.stdout.strip().endswith(".so")
    for args in SCENARIOS:
        assert _simulate(args, fast, tmp_path) == _simulate(args, None, tmp_path)
