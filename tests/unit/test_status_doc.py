"""The status document (core/status.py): it round-trips through JSON, keeps the shape older readers
know, and reading anything a network can send gives a document or a StatusError, never a crash."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanscatter.core.status import (
    MAX_NODES,
    STATUS_VERSION,
    LinkStatus,
    NodeStatus,
    PublishedVersion,
    PublishState,
    StatusDoc,
    StatusError,
    StatusEvent,
    UpstreamStatus,
    read_status,
    to_json,
)
from lanscatter.core.status_feed import FeedDecoder
from lanscatter.net.status_client import parse_status

RECORDING = Path(__file__).parent.parent / "tui" / "feeds" / "rehearsal.jsonl"

FULL = StatusDoc(
    role="relay", name="gw-b", time=1_700_000_000.5, site="branch", generation="e3ed85ef3d9bdf936b142c4f",
    chunks=12, bytes=3 << 20, synced=False,
    published=PublishedVersion("e3ed85ef3d9bdf936b142c4f", "build 7", 1_700_000_000_000),
    nodes=(NodeStatus("gw-b", role="relay", site="branch", have=12, bitmap="//8P", inflight="AAAA", uploads=4,
                      ul_slots=3, ul_slots_used=3, tx_bytes=9, tx_rate=1.5, complete_at=1_700_000_000.0),
           NodeStatus("br-1", site="branch", online=False, have=2, bitmap="AwAA", inflight="BAAA", downloads=1,
                      dl_slots=2, dl_slots_used=1, ul_slots=2, avg_upload_s=0.25, rx_bytes=7)),
    links=(LinkStatus("wan:hq>branch", bytes=900, data_bytes=1000, bytes_per_s=2e6, rate=3.0),),
    events=(StatusEvent(1_700_000_000.25, "warning", "br-2 left"),),
    insecure=True, generation_at=1_699_999_999.0, chunking="cdc", chunk_size=1 << 18,
    skipped_names=2, publish=PublishState("on-change", 2.0, pending=True, refused="empty", hint="add files"),
    upstream=UpstreamStatus(True, "127.0.0.2:4000", generation="e3ed85ef3d9bdf936b142c4f", complete=True,
                            downloaded_chunks=12),
)


def test_a_document_round_trips_through_json() -> None:
    assert read_status(json.loads(json.dumps(to_json(FULL)))) == FULL
    peer = StatusDoc(role="peer", name="p1", time=5.0, nodes=(NodeStatus("p1", downloaded_chunks=3, local_copies=1),))
    text = json.dumps(to_json(peer))
    assert parse_status(text) == peer
    # a peer's document has none of the coordinator's fields, as before
    assert not {"generation_at", "chunking", "chunk_size", "publish", "upstream"} & set(json.loads(text))
    assert to_json(peer)["version"] == STATUS_VERSION


def _recorded_documents() -> list[dict[str, Any]]:
    decoders: dict[str, FeedDecoder] = {}
    out = []
    for line in RECORDING.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        out.append(decoders.setdefault(record["site"], FeedDecoder()).receive(record["message"]))
    return out


def test_recorded_documents_keep_their_shape_and_gain_only_the_slots_in_use() -> None:
    """A version 1 document (as recorded) reads and writes back with every key and value it had;
    what it gains is each node's slots in use, its transfers capped at its slots."""
    docs = _recorded_documents()
    assert len(docs) > 100
    for data in docs:
        back = to_json(read_status(data))
        for key, value in data.items():
            if key not in ("nodes", "events"):
                assert back[key] == value, key
        assert [e for e in back["events"]] == data["events"]
        for node, again in zip(data["nodes"], back["nodes"], strict=True):
            assert set(again) - set(node) <= {"dl_slots_used", "ul_slots_used"}
            for key, value in node.items():     # an optional field left out was null
                assert again.get(key) == value, key
            # A node recorded before the document carried them gains them: its transfers, capped.
            # (A newer recording has them as its node counted them; kept as they were, above.)
            if "dl_slots_used" not in node:
                assert again["dl_slots_used"] == min(node["downloads"], node["dl_slots"])
                assert again["ul_slots_used"] == min(node["uploads"], node["ul_slots"])
            assert again["dl_slots_used"] <= node["dl_slots"] and again["ul_slots_used"] <= node["ul_slots"]


def test_slots_in_use_never_exceed_the_slots() -> None:
    with pytest.raises(ValueError, match="slots in use"):
        NodeStatus("a", ul_slots=3, ul_slots_used=4)
    data = to_json(FULL)
    data["nodes"][0]["ul_slots_used"] = 9            # a node that says more: capped at its slots
    assert read_status(data).nodes[0].ul_slots_used == 3


@pytest.mark.parametrize(("where", "value"), [
    ("chunks", -1), ("chunks", 2**70), ("chunks", True), ("chunks", "12"), ("time", math.nan), ("time", math.inf),
    ("synced", 1), ("nodes", {}), ("nodes", [1]), ("nodes", [{}]), ("links", [{"name": "x", "bytes": -5}]),
    ("events", [{"t": 1.0, "level": "info"}] * 2), ("published", {"generation": "g"}), ("name", "x" * 300),
    ("nodes", [{"name": "a", "bitmap": "not base64!"}]), ("nodes", [{"name": "a", "bitmap": "A" * 2_000_000}]),
    ("nodes", [{"name": "a", "have": 2**40}]), ("nodes", [{"name": "a"}] * (MAX_NODES + 1)),
    ("upstream", {"connected": True, "master": 5}), ("publish", []),
])
def test_malformed_documents_are_refused(where: str, value: object) -> None:
    data = to_json(FULL)
    data[where] = value
    with pytest.raises(StatusError):
        read_status(data)


def test_texts_from_the_network_are_escaped() -> None:
    data = to_json(FULL)
    data["name"] = "gw\x1b[2J"
    data["events"] = [{"t": 1.0, "level": "error", "message": "line\nforged: ok"}]
    doc = read_status(data)
    assert doc.name == "gw\\x1b[2J" and doc.events[0].message == "line\\x0aforged: ok"


def test_what_is_not_json_or_not_an_object_is_refused() -> None:
    for text in (b"", b"[]", b"nul", b"\xff\xfe", b"[" * 100_000, b'{"chunks": 1e999}', b"7"):
        with pytest.raises(StatusError):
            parse_status(text)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_any_value_anywhere_gives_a_document_or_a_status_error(data: st.DataObject) -> None:
    """Every part of a real document replaced by arbitrary JSON: read_status never raises anything
    but StatusError, and whatever it accepts keeps its bounds (slots in use within the slots)."""
    doc = to_json(FULL)
    path = data.draw(st.sampled_from(_paths(doc)[1:]))
    junk = data.draw(_JSON)
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = junk
    try:
        got = read_status(doc)
    except StatusError:
        return
    assert isinstance(got, StatusDoc)
    for node in got.nodes:
        assert node.dl_slots_used <= node.dl_slots and node.ul_slots_used <= node.ul_slots
    assert dataclasses.replace(got) == got


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_any_json_value_gives_a_document_or_a_status_error(value: object) -> None:
    try:
        read_status(value)
    except StatusError:
        pass
