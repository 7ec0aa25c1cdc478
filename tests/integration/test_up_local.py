"""`lanscatter up` end to end on one LAN: a local rehearsal mirrors the data set and writes the report;
a SIGKILLed role is restarted; SIGTERM leaves no process; a real deployment runs one host's roles."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.integration.nodes import make_tree, tree_state
from tests.integration.up_runs import UpRun, alive, wait_until, write_tree
from tests.ports import free_port

# Records its environment; fails on host c (a failing hook is logged, not retried).
HOOK = 'env | grep ^LANSCATTER_ | sort > "$HOOKS/$LANSCATTER_HOST.env"; [ "$LANSCATTER_HOST" != c ]'


def _single_lan(tmp_path: Path, source: Path, **peer_settings: object) -> Path:
    peers = {name: dict(peer_settings) or None for name in ("a", "b", "c")}
    return write_tree(tmp_path / "office.yaml", {
        "dataset": {"source": str(source), "origin": "o", "chunk_size": "256KiB", "secret": {"value": "t0ps3cret-for-this-test"}},
        "sites": {"office": {"hosts": {"o": None, **peers}}},
    })


def test_local_rehearsal_mirrors_runs_hooks_and_reports(tmp_path: Path, runs: list[UpRun],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "demo" / "source"                     # missing: generated as demo data
    tree = _single_lan(tmp_path, source)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    monkeypatch.setenv("HOOKS", str(hooks))
    work, report_path = tmp_path / "work", tmp_path / "report.json"
    run = UpRun(tree, "--local", "--demo-data", "3MiB", "--exit-when-synced", "--timeout", "60",
                "--report", str(report_path), "--on-synced", HOOK, workdir=work, log=tmp_path / "up.log")
    runs.append(run)
    assert run.wait(75) == 0, run.output()
    run.pids()

    want = tree_state(source)
    assert len(want) > 20
    for name in "abc":
        assert tree_state(work / "office" / name) == want, f"{name} differs from the origin"

    r = json.loads(report_path.read_text())
    file_bytes = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    assert 0.8 * file_bytes < r["dataset_bytes"] <= file_bytes      # distinct content: duplicates count once
    assert set(r["hosts"]) == {"o", "a", "b", "c"}
    assert r["hosts"]["o"] == {"site": "office", "role": "master", "folder": str(source), "done_s": 0.0}
    assert r["hosts"]["b"]["folder"] == str(work / "office" / "b")
    done = [h["done_s"] for h in r["hosts"].values()]
    assert all(isinstance(t, float) and t >= 0 for t in done)
    assert r["makespan_s"] == max(done) and r["sites"]["office"]["last_s"] == max(done)
    assert r["sites"]["office"]["p50_s"] == sorted(done)[1]
    assert r["wan_links"] == {} and r["synced"] is True
    assert r["efficiency"] is not None and r["efficiency"] > 0
    assert r["bottleneck_bytes_per_s"] == 1e9 / 8                 # the default LAN
    assert r["efficiency"] == pytest.approx(r["dataset_bytes"] / (1e9 / 8) / r["makespan_s"], rel=0.01)

    for name in "oabc":
        env = dict(line.split("=", 1) for line in (hooks / f"{name}.env").read_text().splitlines())
        assert env["LANSCATTER_HOST"] == name and env["LANSCATTER_GENERATION"] == r["generation"]
        assert env["LANSCATTER_FOLDER"] == r["hosts"][name]["folder"]
    assert "c: on-synced hook failed with exit code 1 (not retried" in run.output()
    assert "a: on-synced hook done" in run.output()
    assert (work / "logs" / "c.hooks.log").read_text().count("=== ") == 1
    assert json.loads((work / "pids.json").read_text())["roles"] == {}
    assert run.seen and not any(alive(p) for p in run.seen)
    assert (work / "logs" / "a.log").read_text().startswith("=== ")
    assert "Traceback" not in run.output()


def _status(url: str) -> dict | None:  # type: ignore[type-arg]
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]
    except OSError:
        return None


def test_sigkilled_role_is_restarted_and_sigterm_leaves_no_process(tmp_path: Path, runs: list[UpRun]) -> None:
    source = tmp_path / "source"
    make_tree(source)
    tree = _single_lan(tmp_path, source, download_limit="40Mbit")
    work = tmp_path / "work"
    run = UpRun(tree, "--local", "--report", str(tmp_path / "report.json"), workdir=work, log=tmp_path / "up.log")
    runs.append(run)
    first = wait_until(lambda: len(p := run.pids()) == 4 and p, 30, "every role started", run)
    killed = first["b"]
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: run.pids().get("b") not in (None, killed), 20, "b restarted", run)
    wait_until(lambda: "restarting b" in run.output(), 5, "the restart logged", run)
    assert "exited with signal SIGKILL" in run.output()
    origin_log = (work / "logs" / "o.log").read_text()
    master_port = int(origin_log.split("--port ")[1].split()[0])
    wait_until(lambda: (s := _status(f"http://127.0.0.2:{master_port}/status")) and s["synced"]
               and len(s["nodes"]) == 4, 60, "the swarm in sync after the restart", run)
    for name in "abc":
        assert tree_state(work / "office" / name) == tree_state(source)

    wait_until(lambda: "every host holds generation" in run.output(), 10, "the run seeing it", run)
    last = run.pids()
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait(30) == 128 + signal.SIGTERM  # a signal's code, though the report says synced
    assert run.seen >= set(first.values()) | set(last.values())
    wait_until(lambda: not any(alive(p) for p in run.seen), 5, "no role left")
    assert json.loads((work / "pids.json").read_text())["roles"] == {}
    assert "Traceback" not in run.output()
    report = json.loads((tmp_path / "report.json").read_text())      # written on a stop by signal too
    assert report["restarts"] == {"b": 1} and report["synced"] is True and report["outcome"] == "synced"
    assert "source: synced; generation" in run.output() and "restarts: b 1x" in run.output()   # the end summary


def test_ctrl_c_mid_run_stops_every_role_within_10_s_and_exits_130(tmp_path: Path, runs: list[UpRun]) -> None:
    source = tmp_path / "source"
    make_tree(source)
    tree = _single_lan(tmp_path, source, download_limit="2Mbit")          # slow: still running at the signal
    work = tmp_path / "work"
    run = UpRun(tree, "--local", workdir=work, log=tmp_path / "up.log")
    runs.append(run)
    wait_until(lambda: len(run.pids()) == 4, 30, "every role started", run)
    wait_until(lambda: "origin serving generation" in run.output(), 30, "the distribution under way", run)
    roles = set(run.pids().values())
    run.proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    assert run.wait(10) == 130
    wait_until(lambda: not any(alive(p) for p in roles), max(0.5, 10 - (time.monotonic() - t0)), "no role left")
    report = json.loads((work / "report.json").read_text())
    assert report["outcome"] == "interrupted" and report["synced"] is False
    out = run.output()
    assert "source: stopped before every host was in sync" in out and f"report: {work / 'report.json'}" in out


def test_real_deployment_runs_the_named_host_only(tmp_path: Path, runs: list[UpRun]) -> None:
    source = tmp_path / "source"
    make_tree(source)
    tree = write_tree(tmp_path / "two.yaml", {
        "dataset": {"source": str(source), "origin": "o", "chunk_size": "256KiB", "secret": {"value": "x-secret-for-this-test"}},
        "sites": {"office": {"hosts": {
            "o": {"address": "127.0.0.1", "master_port": free_port(), "peer_port": free_port()},
            "a": {"address": "127.0.0.1", "peer_port": free_port(), "folder": str(tmp_path / "copy")}}}},
    })
    both = []
    for name in ("a", "o"):                               # the peer first: it waits for its master
        run = UpRun(tree, "--host", name, "--exit-when-synced", "--timeout", "60", workdir=tmp_path / f"w-{name}",
                    log=tmp_path / f"up-{name}.log")
        runs.append(run)
        both.append(run)
    for run in both:
        assert run.wait(75) == 0, run.output()
    assert tree_state(tmp_path / "copy") == tree_state(source)
    assert set(json.loads((tmp_path / "w-a" / "pids.json").read_text())["roles"]) == set()
    assert (tmp_path / "w-a" / "logs" / "a.log").exists() and not (tmp_path / "w-a" / "logs" / "o.log").exists()
    assert "host a (peer)" in both[0].output() and "host o (master)" in both[1].output()


def test_a_machine_that_is_no_host_gets_the_candidates(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "far.yaml", {
        "dataset": {"source": str(tmp_path), "origin": "far-origin", "secret": {"value": "x-secret-for-this-test"}},
        "sites": {"hq": {"hosts": {"far-origin": "192.0.2.250", "far-peer": "192.0.2.251"}}},
    })
    out = subprocess.run([sys.executable, "-m", "lanscatter", "up", str(tree)], capture_output=True, text=True,
                         timeout=30, check=False)
    assert out.returncode == 2
    assert "is none of the hosts of" in out.stderr
    assert "hint: name it with --host NAME; hosts: far-origin (192.0.2.250), far-peer (192.0.2.251)" in out.stderr
    assert "Traceback" not in out.stderr


def test_roles_do_not_outlive_a_sigkilled_orchestrator(tmp_path: Path, runs: list[UpRun]) -> None:
    source = tmp_path / "source"
    make_tree(source)
    run = UpRun(_single_lan(tmp_path, source), "--local", workdir=tmp_path / "work", log=tmp_path / "up.log")
    runs.append(run)
    roles = wait_until(lambda: len(p := run.pids()) == 4 and p, 30, "every role started", run)
    run.proc.kill()                        # no chance to clean up: the kernel tells the roles
    run.proc.wait(timeout=10)
    wait_until(lambda: not any(alive(p) for p in roles.values()), 15, "roles gone after their parent")


def test_another_demo_size_over_an_existing_source_is_an_error_with_a_hint(tmp_path: Path) -> None:
    source = tmp_path / "source"
    make_tree(source)
    tree = _single_lan(tmp_path, source)
    r = subprocess.run([sys.executable, "-m", "lanscatter", "up", str(tree), "--local", "--headless", "--demo-data",
                        "64MiB", "--workdir", str(tmp_path / "work")], capture_output=True, text=True, timeout=30,
                       check=False)
    assert r.returncode == 2, r.stderr
    assert f"error: {source} already holds a " in r.stderr and "--demo-data asks for 64 MiB" in r.stderr
    assert f"hint: delete {source} to generate 64 MiB there" in r.stderr
    assert not (tmp_path / "work" / "office").exists()          # nothing started


def test_a_rehearsal_whose_ports_are_taken_says_so_before_starting(tmp_path: Path) -> None:
    # Another rehearsal of the same tree still running: its ports are taken on the same addresses.
    source = tmp_path / "source"
    make_tree(source)
    tree = _single_lan(tmp_path, source)
    port = yaml.safe_load(tree.read_text())["defaults"]["peer_port"]
    with socket.socket() as other:
        other.bind(("127.0.0.3", port))
        other.listen()
        r = subprocess.run([sys.executable, "-m", "lanscatter", "up", str(tree), "--local", "--headless",
                            "--workdir", str(tmp_path / "work")], capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 2, r.stderr
    assert f"error: 127.0.0.3:{port}, the port of the rehearsal host a (peer), is taken" in r.stderr
    assert "another rehearsal or lanscatter node runs there" in r.stderr and "hint: stop it first" in r.stderr
    assert not (tmp_path / "work" / "logs").exists()             # nothing started


def test_every_host_up_with_exit_when_synced_all_end_synced_across_a_relay(tmp_path: Path, runs: list[UpRun]) -> None:
    # A relay's up exits once its site is synced; the origin's up, which follows the whole tree,
    # must see that site finished (not wait forever on a silent relay) and report the tree synced.
    source = tmp_path / "source"
    make_tree(source)
    port = free_port
    tree = write_tree(tmp_path / "tree.yaml", {
        "tls": "off",                   # about following the tree, not TLS between hosts (test_tls.py)
        "dataset": {"source": str(source), "origin": "o", "chunk_size": "256KiB", "secret": {"value": "x-secret-for-this-test"}},
        "sites": {
            "hq": {"hosts": {"o": {"address": "127.0.0.1", "master_port": port(), "peer_port": port()}}},
            "br": {"gateway": "g", "hosts": {
                "g": {"address": "127.0.0.1", "master_port": port(), "peer_port": port(), "folder": str(tmp_path / "g")},
                "b": {"address": "127.0.0.1", "peer_port": port(), "folder": str(tmp_path / "b")}}}},
        "wan": [{"between": ["hq", "br"], "bandwidth": "100Mbit"}],
    })
    started = {}
    for name in ("b", "g", "o"):
        run = UpRun(tree, "--host", name, "--exit-when-synced", "--timeout", "60", "--report",
                    str(tmp_path / f"report-{name}.json"), workdir=tmp_path / f"w-{name}", log=tmp_path / f"up-{name}.log")
        runs.append(run)
        started[name] = run
    for run in started.values():
        assert run.wait(75) == 0, run.output()
    for name in "gb":
        assert tree_state(tmp_path / name) == tree_state(source)
    report = json.loads((tmp_path / "report-o.json").read_text())
    assert report["synced"] is True and report["outcome"] == "synced", report
    assert report["sites"]["br"]["synced"] is True and report["sites"]["br"]["hosts_done"] == 2
    assert "o: synced" not in started["o"].output() and "source: synced; generation" in started["o"].output()
