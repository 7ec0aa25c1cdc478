"""What a peer tells its operator: states in words, figures in the product's units, one summary."""

from __future__ import annotations

import dataclasses
import io
import logging
import socket
import sys
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import Progress, TextColumn

from lanscatter.core.status import read_status
from lanscatter.roles.master_link import connect_failure
from lanscatter.roles.node_progress import (
    LogsAboveBar,
    Snapshot,
    figures,
    node_report,
    peer_summary,
    state_line,
)
from lanscatter.topology.summary import summary_lines

ALONE = Snapshot(master="10.0.0.1:10564", connected=False, joined_once=False, attempts=3,
                 error="connection refused", generation=None, have=0, chunks=0, held=0, total=0, rate=0.0,
                 sources=0, synced=False)


def test_states_in_order() -> None:
    assert state_line(ALONE) == "connecting to 10.0.0.1:10564 (attempt 3, retrying: connection refused)"
    assert figures(ALONE, None) == ""                      # never '0 B of 0 B' before anything is known
    joined = dataclasses.replace(ALONE, connected=True, joined_once=True, attempts=0, error=None)
    assert state_line(joined) == "joined 10.0.0.1:10564, waiting for its first generation"
    syncing = dataclasses.replace(joined, generation="abcdef0123456789", have=40, chunks=96, held=10 * 2**20,
                                  total=24 * 2**20, rate=3 * 2**20, sources=2)
    assert state_line(syncing) == "syncing"
    assert figures(syncing, None) == "10 MiB of 24 MiB  3 MiB/s  ETA --  40/96 chunks  2 sources"
    assert figures(syncing, 4.6) == "10 MiB of 24 MiB  3 MiB/s  ETA 5s  40/96 chunks  2 sources"
    lost = dataclasses.replace(syncing, connected=False, attempts=1, error="timed out")
    assert state_line(lost) == "reconnecting to 10.0.0.1:10564 (attempt 1, retrying: timed out)"
    done = dataclasses.replace(syncing, have=96, held=24 * 2**20, synced=True)
    assert state_line(done) == "synced" and figures(done, 0.0) == "24 MiB of 24 MiB  96/96 chunks"
    assert peer_summary("peer", done, 12.34, 90, 6) == (
        "peer: synced; generation abcdef012345, 24 MiB of 24 MiB, 12.3 s after it arrived; 90 chunks fetched, "
        "6 copied locally")
    assert ", 0.04 s after it arrived;" in peer_summary("peer", done, 0.043, 90, 6)      # not '0.0 s'
    assert peer_summary("peer", syncing, 3.04, 40, 0) == (      # stopped short: the time it had so far
        "peer: stopped at 40/96 chunks; generation abcdef012345, 10 MiB of 24 MiB, 3.0 s after it arrived; "
        "40 chunks fetched, 0 copied locally")
    assert peer_summary("peer", ALONE, 60.0, 0, 0) == (
        "peer: never got a generation from 10.0.0.1:10564 (connecting to 10.0.0.1:10564 (attempt 3, retrying: "
        "connection refused))")


def test_a_master_ends_with_the_summary_up_ends_with() -> None:
    # The swarm says synced (the nodes still connected are), but b left before it was complete.
    status: dict[str, Any] = {"role": "master", "name": "origin", "site": "hq", "generation": "0123456789abcdef", "chunks": 4,
              "bytes": 4 * 2**20, "synced": True, "generation_at": 100.0,
              "nodes": [{"name": "origin", "site": "hq", "role": "master", "complete_at": 100.0},
                        {"name": "a", "site": "hq", "role": "peer", "complete_at": 103.0},
                        {"name": "b", "site": "hq", "role": "peer", "complete_at": None},
                        {"name": "gw", "site": "branch", "role": "relay", "complete_at": 108.5, "rx_bytes": 3 * 2**20}]}
    assert summary_lines(node_report(read_status(status), log_file="/var/log/m.log")) == [
        "master origin: stopped before every host was in sync; generation 0123456789ab, 4 MiB in 4 chunks",
        "  site    hosts  median    last",
        "  hq        2/3   0.0 s       -  (not synced)",
        "  branch    1/1   8.5 s   8.5 s",
        "  makespan -",
        "  wan:hq>branch: 3 MiB on the wire (0.75x)",
        "  logs:   /var/log/m.log",
    ]
    status["nodes"][2]["complete_at"] = 102.0
    lines = summary_lines(node_report(read_status(status), bottleneck=2**20))
    assert lines[0].startswith("master origin: synced;") and "  hq        3/3   2.0 s   3.0 s" in lines
    assert "  makespan 8.5 s; ideal 4.0 s at the 8.39 Mbit/s bottleneck; efficiency 47%" in lines
    assert not any("restarts" in line or "logs" in line for line in lines)    # a node restarts nothing


def test_a_master_stopped_before_any_peer_joined_does_not_say_synced() -> None:
    status: dict[str, Any] = {"role": "master", "name": "origin", "generation": "0123456789abcdef", "chunks": 3,
                              "bytes": 3 * 2**20, "synced": True, "generation_at": 100.0,
                              "nodes": [{"name": "origin", "role": "master", "complete_at": 100.0}]}
    lines = summary_lines(node_report(read_status(status)))
    assert lines[0] == "master origin: stopped before any peer joined; generation 0123456789ab, 3 MiB in 3 chunks"


def test_a_peer_says_what_crossed_the_wire_for_the_data() -> None:
    done = dataclasses.replace(ALONE, connected=True, generation="abcdef0123456789", have=96, chunks=96,
                               held=24 * 2**20, total=24 * 2**20, synced=True)
    assert peer_summary("peer", done, 2.0, 96, 0, 18 * 2**20, 24 * 2**20).endswith(
        "96 chunks fetched, 0 copied locally; 18 MiB on the wire for 24 MiB (0.75x)")


def test_a_refused_connection_is_said_without_tls_words() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 9, False, True, None, None, None)
    exc = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)"))
    assert "ssl:default" in str(exc)                      # what aiohttp itself says
    assert connect_failure(exc) == "connection refused"


def test_a_name_that_does_not_resolve_is_said_so_not_as_an_errno() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("origin.invalid", 10564, False, True, None, None, None)
    exc = aiohttp.ClientConnectorError(key, socket.gaierror(-2, "Name or service not known"))
    assert connect_failure(exc) == "cannot resolve origin.invalid: Name or service not known"


def test_log_lines_go_above_the_bar_while_it_runs() -> None:
    # The log's handler keeps the stderr it was given; rich redirects only sys.stderr itself.
    screen = io.StringIO()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    original = sys.stderr
    try:
        bar = Progress(TextColumn("bar"), console=Console(file=screen, force_terminal=True, width=60))
        shown = LogsAboveBar(bar)
        assert handler.stream is sys.stderr and sys.stderr is not original      # the display's proxy
        logging.getLogger("lanscatter.test").warning("a line above the bar")
        shown.stop()
        assert handler.stream is original and sys.stderr is original
        assert "a line above the bar" in screen.getvalue()
    finally:
        root.removeHandler(handler)
