"""What a peer tells its operator: states in words, figures in the product's units, one summary."""

from __future__ import annotations

import dataclasses

import aiohttp

from lanscatter.core.status import read_status
from lanscatter.roles.node_progress import Snapshot, figures, master_summary, peer_summary, state_line
from lanscatter.roles.peer import connect_failure

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
        "peer: synced; generation abcdef012345, 24 MiB of 24 MiB after 12.3 s; 90 chunks fetched, 6 copied locally")
    assert peer_summary("peer", ALONE, 60.0, 0, 0) == (
        "peer: never got a generation from 10.0.0.1:10564 (connecting to 10.0.0.1:10564 (attempt 3, retrying: "
        "connection refused))")


def test_master_summary_counts_the_peers_in_sync() -> None:
    status = {"generation": "0123456789abcdef", "chunks": 4, "bytes": 4 * 2**20,
              "nodes": [{"name": "m", "have": 4, "tx_bytes": 6 * 2**20}, {"name": "a", "have": 4}, {"name": "b", "have": 1}]}
    assert master_summary(read_status(status)) == "master: generation 0123456789ab, 4 MiB in 4 chunks; served 6 MiB; 1/2 peers in sync"


def test_a_refused_connection_is_said_without_tls_words() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 9, False, True, None, None, None)
    exc = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)"))
    assert "ssl:default" in str(exc)                      # what aiohttp itself says
    assert connect_failure(exc) == "connection refused"
