"""The pure parts of `lanscatter up`: role command lines, host selection, backoff, the tracker and
its report, the demo data layout."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import pytest

from lanscatter.core.errors import ConfigError
from lanscatter.core.sizes import mbit_to_bytes
from lanscatter.core.status import read_status
from lanscatter.deploy.demo_data import demo_layout, fits, rehearsal_disk_need, write_demo
from lanscatter.deploy.supervisor import Backoff
from lanscatter.deploy.tracker import SyncTracker, bottleneck_bytes_per_s
from lanscatter.deploy.watch import Watcher
from lanscatter.topology import derive_plan, load_topology
from lanscatter.topology.derive import DeploymentPlan
from lanscatter.topology.hostmatch import Identity, select_host
from lanscatter.topology.roles import RunContext, role_command
from lanscatter.topology.summary import summary_lines

TREE = """\
dataset:
  source: data
  origin: o
  chunk_size: 1MiB
  secret: {value: s3cret-for-this-test}
sites:
  hq:
    hosts:
      o: 10.0.0.1
      h1: {address: 10.0.0.2, upload_limit: 10MB/s, slots: 5}
  region:
    gateway: rg
    hosts:
      rg: {address: 10.1.0.1, download_limit: 50Mbit}
      r1: 10.1.0.2
  branch:
    lan: 100Mbit
    gateway: bg
    hosts: [bg, b1]
wan:
  - between: [hq, region]
    bandwidth: 40Mbit
  - between: [region, branch]
    bandwidth: 20Mbit
"""


def _plan(tmp_path: Path, text: str = TREE, local: bool = False) -> DeploymentPlan:
    f = tmp_path / "tree.yaml"
    f.write_text(text)
    return derive_plan(load_topology(f), local=local, workdir=tmp_path / "w" if local else None)


def _ctx(tmp_path: Path, link_flags: frozenset[str] = frozenset()) -> RunContext:
    return RunContext(tmp_path / "tree.yaml", tmp_path / "state", local=False, workdir=None,
                      link_flags=link_flags, python="py")


# ---- role commands ---------------------------------------------------------------------------------
def test_role_commands_follow_the_plan(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    ctx = _ctx(tmp_path)
    origin = role_command(plan, plan.host("o"), ctx)
    assert origin.argv[:4] == ("py", "-m", "lanscatter", "master")
    assert origin.argv[4] == str(tmp_path / "data")
    assert ["--listen", "10.0.0.1", "--port", "10564", "--chunk-size", f"{2**20}B"] == list(origin.argv[5:11])
    assert origin.status_url == "http://10.0.0.1:10564/status"
    assert "--expect-peers" not in origin.argv           # the other hosts are not this run's to wait for
    every = role_command(plan, plan.host("o"), dataclasses.replace(ctx, all_hosts=True))
    joining = [h.name for h in plan.hosts if h.upstream == ("10.0.0.1", 10564)]
    assert every.argv[every.argv.index("--expect-peers") + 1] == str(len(joining)) and len(joining) >= 2

    relay = role_command(plan, plan.host("rg"), ctx)
    assert relay.argv[3:6] == ("proxy", "10.0.0.1:10564", "/var/lib/lanscatter/data")
    assert "--peer-port" in relay.argv and relay.argv[relay.argv.index("--peer-port") + 1] == "10565"
    assert mbit_to_bytes(relay.argv[relay.argv.index("--dl-rate") + 1]) == pytest.approx(50e6 / 8)

    peer = role_command(plan, plan.host("h1"), ctx)
    assert peer.argv[3] == "peer" and peer.status_url == "http://10.0.0.2:10565/status"
    assert mbit_to_bytes(peer.argv[peer.argv.index("--ul-rate") + 1]) == pytest.approx(10e6)
    assert peer.argv[peer.argv.index("--slots") + 1] == "5"
    assert peer.argv[peer.argv.index("--state-dir") + 1] == str(tmp_path / "state" / "h1")

    branch_peer = role_command(plan, plan.host("b1"), ctx)
    assert branch_peer.argv[4] == "bg:10564"          # its site's relay, by name as written
    for cmd in (origin, relay, peer):                  # the secret never goes on a command line
        assert "--secret" not in cmd.argv and "s3cret-for-this-test" not in cmd.argv


def test_link_flags_only_where_supported(tmp_path: Path) -> None:
    plan = _plan(tmp_path, local=True)
    ctx = RunContext(tmp_path / "tree.yaml", tmp_path / "state", local=True, workdir=tmp_path / "w",
                     link_flags=frozenset({"master"}), python="py")
    origin = role_command(plan, plan.host("o"), ctx).argv
    assert origin[-7:] == ("--topology", str(tmp_path / "tree.yaml"), "--host", "o", "--local", "--workdir",
                           str(tmp_path / "w"))
    assert "--topology" not in role_command(plan, plan.host("rg"), ctx).argv
    assert "--topology" not in role_command(plan, plan.host("r1"), ctx).argv


# ---- host selection --------------------------------------------------------------------------------
def test_host_selection_by_name_address_or_flag(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    nobody = Identity(frozenset({"laptop"}), frozenset({"192.168.1.5"}))
    assert select_host(plan.hosts, Identity(frozenset(), frozenset({"10.1.0.2"})), None, "t.yaml").name == "r1"
    assert select_host(plan.hosts, Identity(frozenset({"bg"}), frozenset()), None, "t.yaml").name == "bg"
    assert select_host(plan.hosts, nobody, "h1", "t.yaml").name == "h1"
    with pytest.raises(ConfigError) as err:
        select_host(plan.hosts, nobody, None, "t.yaml")
    assert "none of the hosts of t.yaml" in err.value.message
    assert "--host" in (err.value.hint or "") and "r1 (10.1.0.2)" in (err.value.hint or "")
    with pytest.raises(ConfigError) as err:
        select_host(plan.hosts, nobody, "rgg", "t.yaml")
    assert "did you mean 'rg'" in err.value.message
    with pytest.raises(ConfigError) as err:
        select_host(plan.hosts, Identity(frozenset({"bg"}), frozenset({"10.0.0.1"})), None, "t.yaml")
    assert "matches 2 hosts" in err.value.message and "--host" in (err.value.hint or "")


def test_backoff_doubles_to_a_cap_and_resets_after_a_stable_run() -> None:
    b = Backoff(first=0.5, factor=2, cap=4, stable_after=30)
    delays = []
    d = None
    for _ in range(6):
        d = b.next(d, ran_for=1)
        delays.append(d)
    assert delays == [0.5, 1, 2, 4, 4, 4]
    assert b.next(4, ran_for=31) == 0.5


# ---- tracker and report --------------------------------------------------------------------------
def _status(gen: str, chunks: int, nodes: dict[str, int], synced: bool = False,
            links: dict[str, int] | None = None, size: int = 1000) -> dict:  # type: ignore[type-arg]
    return {"generation": gen, "chunks": chunks, "bytes": size, "synced": synced,
            "nodes": [{"name": n, "have": h} for n, h in nodes.items()],
            "links": [{"name": k, "bytes": v} for k, v in (links or {}).items()]}


def test_tracker_done_times_links_and_report(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    t = SyncTracker(plan)
    assert t.observe(0.5, "region", read_status(_status("g1", 4, {"rg": 4}))) == []       # origin's generation unknown
    first = t.observe(1.0, "hq", read_status(_status("g1", 4, {"o": 4, "h1": 1, "rg": 2})))
    assert [c.host for c in first] == ["o"] and first[0].done_s == 0
    t.observe(2.0, "region", read_status(_status("g1", 4, {"rg": 3, "r1": 0}, links={"wan:hq>region": 600})))
    t.restarted("rg")                                                          # its counter starts again
    t.observe(2.5, "region", read_status(_status("g1", 4, {"rg": 3, "r1": 0}, links={"wan:hq>region": 100})))
    assert t.link_bytes("wan:hq>region") == 700
    t.observe(3.0, "region", read_status(_status("g1", 4, {"rg": 4, "r1": 4}, synced=True, links={"wan:hq>region": 50})))
    assert t.link_bytes("wan:hq>region") == 750                                # a restart it was not told of
    done = t.observe(3.5, "hq", read_status(_status("g1", 4, {"o": 4, "h1": 4, "rg-2": 4}, synced=True)))
    assert {c.host for c in done} == {"h1"}
    assert not t.synced()
    t.observe(6.0, "branch", read_status(_status("g1", 4, {"bg": 4, "b1": 4}, synced=True, links={"wan:region>branch": 1000})))
    assert t.synced()
    r = t.report()
    assert r["dataset_bytes"] == 1000 and r["makespan_s"] == 5.0
    assert r["hosts"]["o"] == {"site": "hq", "role": "master", "folder": str(tmp_path / "data"), "done_s": 0.0}
    assert r["hosts"]["rg"]["done_s"] == 2.0 and r["hosts"]["b1"]["done_s"] == 5.0
    assert r["sites"]["hq"] == {"hosts": 2, "hosts_done": 2, "p50_s": 0.0, "last_s": 2.5, "synced": True}
    assert r["sites"]["region"]["p50_s"] == 2.0 and r["sites"]["region"]["last_s"] == 2.0
    assert r["wan_links"]["wan:hq>region"]["bytes"] == 750 and r["wan_links"]["wan:hq>region"]["ratio"] == 0.75
    assert r["wan_links"]["wan:region>branch"]["ratio"] == 1.0
    # The slowest path: origin -> branch crosses the 20 Mbit link.
    assert r["bottleneck_bytes_per_s"] == pytest.approx(20e6 / 8)
    assert r["ideal_s"] == pytest.approx(1000 / (20e6 / 8), abs=1e-3)
    assert r["efficiency"] == pytest.approx(r["ideal_s"] / 5.0, abs=1e-4) and r["efficiency_clamped"] is False
    assert r["restarts"] == {"rg": 1}


def test_tracker_times_events_by_the_masters_clock_not_its_polls(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    t = SyncTracker(plan)
    # The origin published g1 0.4 s before this poll (its clock reads 1000.4 now); h1 completed
    # at 1001.1 by that clock and is seen at the poll 0.6 s later. A status without these times
    # falls back to the poll's time; a time in the future is not believed.
    st = _status("g1", 2, {"o": 2, "h1": 0})
    t.observe(2.0, "hq", read_status({**st, "time": 1000.4, "generation_at": 1000.0}))
    st = _status("g1", 2, {"o": 2, "h1": 2, "rg": 2})
    st["nodes"][1]["complete_at"] = 1001.1
    st["nodes"][2]["complete_at"] = 1002.0
    t.observe(3.3, "hq", read_status({**st, "time": 1001.7}))
    assert t.first_seen["g1"] == pytest.approx(1.6)
    assert t.done_s("h1") == pytest.approx(1.1)
    assert t.done_s("rg") == pytest.approx(1.7)       # complete_at after "time": the poll's time


def test_tracker_follows_a_new_generation(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    t = SyncTracker(plan)
    t.observe(1.0, "hq", read_status(_status("g1", 2, {"o": 2, "h1": 2}, synced=True)))
    assert t.done_s("h1") == 0.0
    t.observe(10.0, "hq", read_status(_status("g2", 3, {"o": 3, "h1": 1})))
    assert t.generation == "g2" and t.done_s("h1") is None and not t.synced()
    t.observe(12.0, "hq", read_status(_status("g2", 3, {"o": 3, "h1": 3}, synced=True)))
    assert t.done_s("h1") == 2.0                     # measured from when g2 appeared
    r = t.report()
    assert r["makespan_s"] is None and r["efficiency"] is None     # other sites not done
    assert r["sites"]["branch"] == {"hosts": 2, "hosts_done": 0, "p50_s": None, "last_s": None, "synced": False}


def test_bottleneck_of_a_single_lan_is_its_lan(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "dataset: {source: d, origin: a}\nsites:\n  s:\n    lan: 80Mbit\n    hosts: [a, b]\n")
    assert bottleneck_bytes_per_s(plan) == pytest.approx(10e6)
    assert not math.isinf(bottleneck_bytes_per_s(plan))


# ---- demo data ------------------------------------------------------------------------------------
def test_demo_layout_is_deterministic_and_mixed() -> None:
    a, b = demo_layout(64 * 2**20, seed=3), demo_layout(64 * 2**20, seed=3)
    assert a == b and a.total_bytes == 64 * 2**20
    assert demo_layout(64 * 2**20, seed=4) != a
    kinds = {f.kind for f in a.files}
    assert kinds == {"random", "text"}
    random_bytes = sum(f.size for f in a.files if f.kind == "random")
    assert 0.5 < random_bytes / a.total_bytes < 0.8
    keys = [(f.key, f.size) for f in a.files if f.size]
    assert len(keys) > len(set(keys)), "some files are duplicates"
    assert any(f.size == 0 for f in a.files) and a.empty_dirs
    assert len({f.path.split("/")[0] for f in a.files}) >= 4 and max(f.path.count("/") for f in a.files) >= 3


def test_demo_files_are_written_identically(tmp_path: Path) -> None:
    layout = demo_layout(2 * 2**20, seed=7)
    write_demo(tmp_path / "one", layout, seed=7)
    write_demo(tmp_path / "two", layout, seed=7)
    for f in layout.files:
        one, two = (tmp_path / "one" / f.path).read_bytes(), (tmp_path / "two" / f.path).read_bytes()
        assert one == two and len(one) == f.size
    for d in layout.empty_dirs:
        assert (tmp_path / "one" / d).is_dir()
    assert not (tmp_path / "one.partial").exists()


def test_a_real_host_is_done_when_its_own_part_is(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    t = SyncTracker(plan)
    t.observe(1.0, "hq", read_status(_status("g1", 2, {"o": 2, "h1": 0, "rg": 0})))
    assert not t.hosts_done([plan.host("r1")])
    # The peer's own status says it is complete: enough for its orchestrator, whatever its master says.
    t.observe_node(2.0, read_status(_status("g1", 2, {"r1": 2}, synced=True)))
    assert t.hosts_done([plan.host("r1")]) and t.done_s("r1") == 1.0
    assert not t.hosts_done([plan.host("rg")])            # a relay waits for its whole site
    t.observe(3.0, "region", read_status(_status("g1", 2, {"rg": 2, "r1": 2}, synced=True)))
    assert t.hosts_done([plan.host("rg")])
    assert not t.hosts_done([plan.host("o")])             # the origin waits for the whole tree
    t.observe_node(4.0, read_status(_status("g0", 2, {"h1": 2}, synced=True)))      # an older generation: not done
    assert t.done_s("h1") is None


def test_a_site_master_that_finished_and_exited_stays_synced_one_that_died_is_silent(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    t = SyncTracker(plan)
    t.observe(1.0, "hq", read_status(_status("g1", 2, {"o": 2, "h1": 2, "rg": 2}, synced=True)))
    t.observe(2.0, "region", read_status(_status("g1", 2, {"rg": 2, "r1": 2}, synced=True)))
    t.observe(2.0, "branch", read_status(_status("g1", 2, {"bg": 2, "b1": 1})))
    # Both relays stop answering: region had finished its site, branch had not.
    for now in (3.0, 30.0):
        t.observe(now, "region", None)
        t.observe(now, "branch", None)
    assert t.site_synced("region") and not t.site_synced("branch")
    assert t.silent_sites(30.0) == [("branch", 28.0)]
    assert t.last_seen("branch") == "1/2 hosts done, 75% of the chunks held"
    assert t.last_seen("hq") == "2/2 hosts done, 100% of the chunks held"
    t.observe(31.0, "branch", read_status(_status("g1", 2, {"bg": 2, "b1": 2}, synced=True)))
    assert t.silent_sites(31.0) == [] and t.synced()
    r = t.report()
    assert r["synced"] is True and all(site["synced"] for site in r["sites"].values())


def test_a_site_that_never_answered_is_silent_since_the_start(tmp_path: Path) -> None:
    t = SyncTracker(_plan(tmp_path))
    t.observe(25.0, "branch", None)
    assert t.silent_sites(25.0) == [("branch", 25.0)] and t.last_seen("branch") == "never answered"


def test_wan_links_report_data_and_wire_bytes_and_the_summary_says_both(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    t = SyncTracker(plan)
    t.observe(1.0, "hq", read_status(_status("g1", 2, {"o": 2, "h1": 2, "rg": 2}, synced=True)))
    st = _status("g1", 2, {"rg": 2, "r1": 2}, synced=True)
    st["links"] = [{"name": "wan:hq>region", "bytes": 820, "data_bytes": 1000}]
    t.observe(2.0, "region", read_status(st))
    link = t.report()["wan_links"]["wan:hq>region"]
    assert link["bytes"] == 820 and link["ratio"] == 0.82 and link["data_bytes"] == 1000 and link["data_ratio"] == 1.0
    t.restarted("o")
    report = {**t.report(), "outcome": "timed out", "logs": "/w/logs", "report": "/w/report.json"}
    text = "\n".join(summary_lines(report))
    assert text.splitlines()[0].startswith("data: timed out before every host was in sync; generation g1")
    assert "wan:hq>region: 0.977 KiB of data (1.00x the data set), 820 B on the wire (0.82x), LZ4 in flight" in text
    assert "  branch    0/2       -       -  (not synced)" in text
    assert "restarts: o 1x" in text and "logs:   /w/logs" in text and "report: /w/report.json" in text


def test_the_summary_lists_wan_links_in_the_trees_order_also_read_back_from_the_file() -> None:
    # The report file has its keys sorted; the monitor shows the summary from it, `up` from memory.
    report = {"site_order": ["hq", "zulu", "alpha"], "dataset_bytes": 10,
              "wan_links": {"wan:hq>zulu": {"bytes": 10}, "wan:hq>alpha": {"bytes": 10}}}
    back = json.loads(json.dumps(report, sort_keys=True))
    links = [line.split(":")[1] for line in summary_lines(back) if line.startswith("  wan:")]
    assert links == ["hq>zulu", "hq>alpha"] and summary_lines(back) == summary_lines(report)


def test_an_efficiency_clamped_at_the_ideal_says_why() -> None:
    # A rehearsal run again over copies already in place finishes far below the ideal of a full copy.
    report = {"makespan_s": 3.3, "ideal_s": 17.0, "efficiency": 1.0, "efficiency_clamped": True}
    assert ("  makespan 3.3 s; ideal 17.0 s; efficiency 100% (faster than the ideal: data already in place, "
            "or compressed in flight)") in summary_lines(report)


def test_rehearsal_disk_need_counts_the_source_once_and_a_copy_per_other_host() -> None:
    need = rehearsal_disk_need(512 * 2**20, hosts=11, source_exists=False)
    assert (need.source_bytes, need.copies, need.total) == (512 * 2**20, 10, 11 * 512 * 2**20)
    assert rehearsal_disk_need(100, hosts=3, source_exists=True).total == 200
    # The margin: 5 % of the file system, at least 1 GiB, stays free.
    assert fits(2**30, free=3 * 2**30, fs_size=10 * 2**30) and not fits(2**30, free=2**31 - 1, fs_size=10 * 2**30)
    assert not fits(4 * 2**30, free=10 * 2**30, fs_size=200 * 2**30)


def test_a_downstream_run_that_never_saw_the_origins_generation_takes_its_sites(tmp_path: Path) -> None:
    # The origin answered only before its scan ended, then its run was over: the relay's run
    # still learns the generation from its own site and can tell that site is done.
    plan = _plan(tmp_path)
    t = SyncTracker(plan)
    t.observe(0.5, "hq", read_status({**_status("g1", 0, {"o": 0}), "generation": None}))
    t.observe(1.0, "hq", None)
    assert t.last_seen("hq") == "answering, without a generation yet"
    t.observe(2.0, "region", read_status(_status("g1", 2, {"rg": 2, "r1": 2}, synced=True)))
    assert t.generation == "g1" and t.hosts_done([plan.host("rg"), plan.host("r1")])
    t.observe(3.0, "hq", read_status(_status("g2", 2, {"o": 2, "h1": 0})))             # the origin's word wins
    assert t.generation == "g2" and not t.hosts_done([plan.host("rg")])


def test_the_watcher_names_a_silent_site_master_and_what_it_said_last(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "lanscatter.up")
    plan = _plan(tmp_path)
    t = SyncTracker(plan)
    w = Watcher(plan, t, plan.hosts, silent_after=20.0, warn_every=60.0)
    t.observe(1.0, "hq", read_status(_status("g1", 2, {"o": 2, "h1": 2, "rg": 2}, synced=True)))
    t.observe(1.0, "region", read_status(_status("g1", 2, {"rg": 2, "r1": 2}, synced=True)))
    t.observe(1.0, "branch", read_status(_status("g1", 2, {"bg": 2, "b1": 1})))
    for now in (2.0, 10.0, 22.0, 30.0, 83.0):
        t.observe(now, "region", None)
        t.observe(now, "branch", None)
        w._note_sites(now)
    text = caplog.text
    assert "site region: rg finished its site and stopped answering" in text
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2                            # at 20 s of silence, then a minute later
    assert warnings[0].startswith("site branch: bg at http://") and "has not answered for 21 s" in warnings[0]
    assert warnings[0].endswith("last seen: 1/2 hosts done, 75% of the chunks held")


def test_the_headless_line_waits_for_the_first_generation_and_gives_an_eta_once_a_rate_is_known(
        tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    t = SyncTracker(plan)
    w = Watcher(plan, t, plan.hosts)
    assert w.progress_line(0.5).endswith("| waiting for the origin's first generation (o scans its folder)")
    t.observe(1.0, "hq", read_status(_status("g1", 4, {"o": 4, "h1": 0, "rg": 0})))
    assert "| hq 1/2  50% | region 0/2   0% | branch 0/2   0% | ETA -- |" in w.progress_line(1.0)
    t.observe(2.0, "region", read_status(_status("g1", 4, {"rg": 2, "r1": 0})))
    assert "| ETA -- |" in w.progress_line(2.0)                          # one second of progress says little
    t.observe(5.0, "hq", read_status(_status("g1", 4, {"o": 4, "h1": 4, "rg": 2})))
    line = w.progress_line(5.0)
    assert "| ETA 9s |" in line, line            # 1.5 more host copies in 4 s, 3.5 left: 9.3 s at that rate
    for site, nodes in (("hq", {"o": 4, "h1": 4, "rg": 4}), ("region", {"rg": 4, "r1": 4}),
                        ("branch", {"bg": 4, "b1": 4})):
        t.observe(6.0, site, read_status(_status("g1", 4, nodes, synced=True)))
    assert "ETA" not in w.progress_line(6.0)                             # done: the hosts say so


def test_leaving_the_monitor_tells_a_finished_run_from_an_interrupted_one() -> None:
    from lanscatter.cli.up import _left_monitor

    assert _left_monitor(0, in_sync=True) == 0              # q once every host is in sync
    assert _left_monitor(0, in_sync=False) == 130           # q before: a script must not take it for done
    assert _left_monitor(130, in_sync=True) == 130          # Ctrl-C in the monitor, as in a shell
    assert _left_monitor(143, in_sync=False) == 143         # the monitor stopped by SIGTERM
    assert _left_monitor(1, in_sync=True) == 130            # the monitor failed: not a clean end


def test_a_rehearsal_without_a_secret_gets_one_made_for_the_run(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from lanscatter.cli.up import _run_secret
    from lanscatter.core.auth import check_secret
    from lanscatter.topology.problems import TopologyError

    monkeypatch.delenv("LANSCATTER_SECRET", raising=False)
    no_secret = TREE.replace("  secret: {value: s3cret-for-this-test}\n", "")
    made = _run_secret(_plan(tmp_path, no_secret, local=True), local=True)
    assert made is not None and made != _run_secret(_plan(tmp_path, no_secret, local=True), local=True)
    check_secret(made)
    with pytest.raises(TopologyError, match="secret-missing"):       # a real deployment never runs open
        _run_secret(_plan(tmp_path, no_secret), local=False)
    assert _run_secret(_plan(tmp_path, local=True), local=True) == "s3cret-for-this-test"
    monkeypatch.setenv("LANSCATTER_SECRET", "from-the-environment-1")
    assert _run_secret(_plan(tmp_path, no_secret, local=True), local=True) == "from-the-environment-1"
