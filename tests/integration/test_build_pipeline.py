"""The README's build pipeline, as written: `lanscatter up` on every host of a site tree whose
source is a `current` symlink and whose hosts run `activate: tree`; the pipeline copies a build
into a release folder and switches the link with the README's two commands; `lanscatter status`
shows every host on the new release; `lanscatter rollback --tree` puts the old one back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.integration.nodes import make_tree, tree_state
from tests.integration.up_runs import UpRun, write_tree
from tests.ports import free_port

SECRET = "x-secret-for-this-test"


def _status(tree: Path) -> dict[str, Any] | None:
    done = subprocess.run([sys.executable, "-m", "lanscatter", "status", str(tree), "--json"], capture_output=True,
                          text=True, check=False, timeout=30)
    return json.loads(done.stdout) if done.returncode == 0 else None


def _all_show(tree: Path, label: str) -> dict[str, Any] | None:
    r = _status(tree)
    hosts = [h for s in (r or {}).get("sites", []) for h in s["hosts"] if h["role"] != "master"]
    ok = r is not None and hosts and all(h["active"] and h["active"]["label"] == label for h in hosts)
    return r if ok else None


def _read(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def _wait(cond: Any, timeout: float, what: str, runs: list[UpRun]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := cond():
            return value
        time.sleep(0.5)
    logs = "\n".join(run.output()[-3000:] for run in runs)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")


def test_the_readme_build_pipeline_works_as_written(tmp_path: Path, runs: list[UpRun]) -> None:
    builds = tmp_path / "srv" / "builds"
    make_tree(builds / "releases" / "1234")
    (builds / "current").symlink_to("releases/1234")
    make_tree(tmp_path / "build-output", seed=2)
    port = free_port
    origin_port = port()
    # Each host's hook says which version its folder shows when it runs.
    hook = f'echo "$LANSCATTER_GENERATION $(readlink -f "$LANSCATTER_FOLDER")" >> {tmp_path}/hook-$LANSCATTER_HOST.log'
    tree = write_tree(tmp_path / "site-tree.yaml", {
        "tls": "off",
        "dataset": {"source": str(builds / "current"), "origin": "build-01", "chunk_size": "256KiB",
                    "secret": {"value": SECRET}},
        "defaults": {"activate": "tree", "on_synced": hook},
        "sites": {
            "hq": {"hosts": {
                "build-01": {"address": "127.0.0.1", "master_port": origin_port, "peer_port": port()},
                "hq-1": {"address": "127.0.0.1", "peer_port": port(), "folder": str(tmp_path / "hq-1")}}},
            "branch": {"gateway": "gw-b", "hosts": {
                "gw-b": {"address": "127.0.0.1", "master_port": port(), "peer_port": port(),
                         "folder": str(tmp_path / "gw-b")},
                # slower: the others hold each release a few seconds before the commit
                "b1": {"address": "127.0.0.1", "peer_port": port(), "folder": str(tmp_path / "b1"),
                       "download_limit": "8Mbit"}}}},
        "wan": [{"between": ["hq", "branch"], "bandwidth": "100Mbit"}],
    })
    for name in ("hq-1", "b1", "gw-b", "build-01"):
        runs.append(UpRun(tree, "--host", name, workdir=tmp_path / f"w-{name}", log=tmp_path / f"up-{name}.log"))
    _wait(lambda: _all_show(tree, "1234"), 90, "every host on release 1234", runs)

    # The README's pipeline, with /srv/builds here.
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    steps = ["cp -a build-output /srv/builds/releases/1235",
             "ln -sfn releases/1235 /srv/builds/current.new && mv -T /srv/builds/current.new /srv/builds/current"]
    for step in steps:
        assert step in readme
        subprocess.run(["bash", "-ec", step.replace("/srv/builds", str(builds))], cwd=tmp_path, check=True,
                       timeout=30)
    report = _wait(lambda: _all_show(tree, "1235"), 90, "every host on release 1235", runs)
    assert report["behind"] == [] and report["current"]["label"] == "1235"
    for name in ("hq-1", "gw-b", "b1"):
        assert tree_state(tmp_path / name) == tree_state(builds / "releases" / "1235")
    shown = subprocess.run([sys.executable, "-m", "lanscatter", "status", str(tree)], capture_output=True, text=True,
                           check=False, timeout=30)
    assert shown.returncode == 0 and "origin: version '1235'" in shown.stdout
    assert "hosts behind: 0 of 3" in shown.stdout and "tree commit (tree activation): committed" in shown.stdout
    # The hooks ran after the switch: each saw the folder showing the version it was run for.
    generation = report["current"]["generation"]
    for name in ("hq-1", "gw-b", "b1"):
        lines = _wait(lambda name=name: [ln.split() for ln in _read(tmp_path / f"hook-{name}.log")
                                         if ln.startswith(generation)], 30, f"{name}'s hook", runs)
        assert all(Path(folder).name == generation[:16] for _, folder in lines), lines

    back = subprocess.run([sys.executable, "-m", "lanscatter", "rollback", "--tree", f"127.0.0.1:{origin_port}"],
                          capture_output=True, text=True, check=False, timeout=30,
                          env={**os.environ, "LANSCATTER_SECRET": SECRET})
    assert back.returncode == 0 and "labelled '1234'" in back.stdout, back.stderr
    report = _wait(lambda: _all_show(tree, "1234"), 60, "every host back on release 1234", runs)
    assert report["behind"] == []
    assert tree_state(tmp_path / "b1") == tree_state(builds / "releases" / "1234")
