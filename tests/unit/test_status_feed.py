"""The status feed codec: apply(a, diff(a, b)) == b, and deltas stay small."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanscatter.core.status_feed import (
    FeedDecoder,
    FeedEncoder,
    FeedGap,
    apply,
    changed_runs,
    diff,
)

NAMES = st.sampled_from([f"n{i}" for i in range(8)])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=3)
)


def bitmaps(size: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=size, max_size=size).map(lambda b: base64.b64encode(b).decode())


@st.composite
def nodes(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(NAMES, unique=True, max_size=6))
    size = draw(st.integers(0, 40))
    out = []
    for name in names:
        record: dict[str, Any] = {
            "name": name,
            "bitmap": draw(bitmaps(size)),
            "inflight": draw(bitmaps(size)),
        }
        record.update(draw(st.dictionaries(st.sampled_from(["have", "online", "rx_rate"]), SCALARS)))
        out.append(record)
    return out


EVENT = st.fixed_dictionaries({"t": st.integers(0, 9), "message": st.sampled_from(["a", "b", "c"])})


@st.composite
def statuses(draw: st.DrawFn) -> dict[str, Any]:
    status: dict[str, Any] = draw(
        st.dictionaries(st.sampled_from(["name", "generation", "synced", "time"]), SCALARS)
    )
    if draw(st.booleans()):
        status["nodes"] = draw(nodes())
    if draw(st.booleans()):
        status["links"] = [
            {"name": n, "bytes": b} for n, b in draw(st.dictionaries(NAMES, st.integers(0, 9))).items()
        ]
    if draw(st.booleans()):
        status["events"] = draw(st.lists(EVENT, max_size=6))
    if draw(st.booleans()):
        status["nodes"] = draw(st.one_of(SCALARS, st.lists(st.just({"name": "dup"}), max_size=3)))
    return status


@settings(max_examples=400, deadline=None)
@given(statuses(), statuses())
def test_apply_of_diff_gives_the_new_status(a: dict[str, Any], b: dict[str, Any]) -> None:
    delta = diff(a, b)
    if a == b:
        assert delta is None
    else:
        assert delta is not None
        # What goes on the wire is JSON: the delta must survive the round trip.
        assert apply(a, json.loads(json.dumps(delta))) == b


@settings(max_examples=200, deadline=None)
@given(statuses(), st.lists(EVENT, max_size=4), st.integers(0, 3))
def test_events_sliding_window(a: dict[str, Any], new: list[dict[str, Any]], dropped: int) -> None:
    old = a.get("events") if isinstance(a.get("events"), list) else []
    b = {**a, "events": old[dropped:] + new}
    a = {**a, "events": old}
    delta = diff(a, b)
    assert apply(a, delta or {}) == b
    if delta and "events" in delta:
        assert len(delta["events"]["append"]) <= len(new)


def _bitmap(bits: set[int], chunks: int) -> str:
    value = sum(1 << i for i in bits)
    return base64.b64encode(value.to_bytes((chunks + 7) // 8, "little")).decode()


def _status(have: dict[str, set[int]], chunks: int = 10_000) -> dict[str, Any]:
    return {
        "version": 1,
        "generation": "g1",
        "chunks": chunks,
        "time": 1.0,
        "nodes": [
            {"name": n, "bitmap": _bitmap(b, chunks), "inflight": _bitmap(set(), chunks), "have": len(b)}
            for n, b in have.items()
        ],
        "links": [],
        "events": [],
    }


def test_one_new_chunk_costs_a_few_bytes_at_ten_thousand_chunks() -> None:
    before = _status({f"p{i}": set(range(0, 5000, 3)) for i in range(200)})
    after = json.loads(json.dumps(before))
    after["nodes"][17] = {
        **after["nodes"][17],
        "bitmap": _bitmap(set(range(0, 5000, 3)) | {9001}, 10_000),
        "have": after["nodes"][17]["have"] + 1,
    }
    after["time"] = 1.25
    delta = diff(before, after)
    assert delta == {
        "set": {"time": 1.25},
        "nodes": {"change": {"p17": {"set": {"have": 1668}, "xor": {"bitmap": [[1125, "Ag=="]]}}}},
    }
    assert apply(before, delta) == after


# The wire's rule for a bitmap's XOR runs: non-zero bytes, a run going on across up to 6 zero bytes.
RUN = re.compile(rb"[^\x00]+(?:\x00{1,6}[^\x00]+)*")


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 1300), flips=st.lists(st.integers(0, 1299 * 8 + 7), max_size=400),
       cluster=st.none() | st.integers(0, 1299))
def test_changed_runs_follow_the_wires_rule(size: int, flips: list[int], cluster: int | None) -> None:
    """At few changes and at many, spread or clustered (`cluster`: all within 80 bits of a byte)."""
    x = 0
    for bit in flips:
        x |= 1 << ((bit % (size * 8)) if cluster is None else min(size * 8 - 1, (cluster % size) * 8 + bit % 80))
    flipped = x.to_bytes(size, "little")
    assert changed_runs(flipped) == [m.span() for m in RUN.finditer(flipped)]


def test_changed_runs_join_gaps_of_six_zero_bytes_and_split_at_seven() -> None:
    for gap, want in ((6, [(0, 8)]), (7, [(0, 1), (8, 9)])):
        assert changed_runs(b"\x01" + b"\x00" * gap + b"\x80" + b"\x00" * 3) == want
    assert changed_runs(b"\x00" * 8) == []
    assert changed_runs(b"\x00\x02") == [(1, 2)]


def test_encoder_and_decoder_follow_each_other_and_resync_on_a_new_generation() -> None:
    encoder, decoder = FeedEncoder(), FeedDecoder()
    s0 = _status({"a": set(), "b": {1}}, chunks=16)
    s1 = _status({"a": {2}, "b": {1}}, chunks=16)
    s2 = {**_status({"a": set()}, chunks=4), "generation": "g2"}
    first = encoder.message(s0)
    assert first is not None and first["type"] == "snapshot"
    assert decoder.receive(first) == s0
    assert encoder.message(s0) is None
    second = encoder.message(s1)
    assert second is not None and second["type"] == "delta" and second["seq"] == 1
    assert decoder.receive(json.loads(json.dumps(second))) == s1
    third = encoder.message(s2)
    assert third is not None and third["type"] == "snapshot"
    assert decoder.receive(third) == s2


def test_decoder_refuses_a_seq_gap_and_a_generation_change_in_a_delta() -> None:
    decoder = FeedDecoder()
    with pytest.raises(FeedGap):
        decoder.receive({"type": "delta", "seq": 1, "set": {"time": 2.0}})
    decoder.receive({"type": "snapshot", "seq": 0, "status": _status({}, chunks=8)})
    with pytest.raises(FeedGap):
        decoder.receive({"type": "delta", "seq": 2, "set": {"time": 2.0}})
    with pytest.raises(FeedGap):
        decoder.receive({"type": "delta", "seq": 1, "set": {"generation": "g9"}})
    assert decoder.receive({"type": "delta", "seq": 1, "set": {"time": 2.0}})["time"] == 2.0


@pytest.mark.parametrize(
    "body",
    [
        {"nodes": {"change": {"ghost": {"set": {"have": 1}}}}},
        {"nodes": {"change": {"a": {"xor": {"bitmap": [[0, "not base64!"]]}}}}},
        {"nodes": {"order": ["a", "zzz"]}},
        {"events": {"append": 5}},
        {"set": 3},
    ],
)
def test_a_malformed_delta_asks_for_a_fresh_snapshot(body: dict[str, Any]) -> None:
    decoder = FeedDecoder()
    decoder.receive({"type": "snapshot", "seq": 0, "status": _status({"a": {1}}, chunks=8)})
    with pytest.raises(FeedGap):
        decoder.receive({"type": "delta", "seq": 1, **body})


def test_one_encoder_serves_clients_that_join_at_different_times() -> None:
    encoder = FeedEncoder()
    states = [_status({"a": set(range(i))}, chunks=16) for i in range(5)]
    early = FeedDecoder()
    assert early.receive(encoder.join(states[0])) == states[0]
    late = FeedDecoder()
    for i, state in enumerate(states[1:], start=1):
        message = encoder.message(state)
        assert message is not None
        assert early.receive(message) == state
        if i >= 3:
            assert late.receive(message) == state
        if i == 2:
            assert late.receive(encoder.join(state)) == state
