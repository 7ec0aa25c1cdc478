"""Control protocol codec: round trips of every message, and any malformed input is a
RemoteProtocolError (never another exception)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanscatter.core import protocol as p
from lanscatter.core.errors import RemoteProtocolError

EXAMPLES = [
    p.Challenge("n0nce", 1, 1, "0.1.0"),
    p.Hello("peer-1", 1, 1, "0.1.0", "n0nce", "127.0.0.1", 10565, 2, 2, "relay"),
    p.Welcome("peer-1", 1),
    p.ManifestMsg({"format": 1}),
    p.Have("gen", ["a" * 64], replace=True),
    p.Download(7, "b" * 64, 1024, "master", "http://127.0.0.1:1", 30.0, None),
    p.Download(8, "b" * 64, 1024, "p2", "http://127.0.0.1:2", 30.0, 125000.0),
    p.Download(9, "b" * 64, 1024, "p2", "http://127.0.0.1:2", 30.0, None, token="1|127.0.0.1|127.0.0.1:2|ab"),
    p.Report(7, False, 1.5, "hash mismatch", corrupt=True),
    p.Cancel(7),
    p.Verify("gen", ["c" * 64]),
    p.Receiving(7),
    p.Rates([7, 9], [1.5e6, 750000.0]),
    p.Stats(1, 2, 0, False),
    p.Error("auth", "wrong secret"),
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: m.TYPE)
def test_round_trip(msg: p.Message) -> None:
    assert p.decode(p.encode(msg)) == msg


def test_unknown_fields_are_ignored() -> None:
    data = json.loads(p.encode(p.Cancel(3)))
    data["future_field"] = {"x": 1}
    assert p.decode(json.dumps(data)) == p.Cancel(3)


@pytest.mark.parametrize("text", [
    "", "not json", "[]", "null", '{"t": "nope"}', '{"t": 5}', '{"t": "cancel"}',
    '{"t": "cancel", "transfer": "1"}', '{"t": "cancel", "transfer": true}',
    '{"t": "have", "generation": "g", "chunks": [1, 2]}', '{"t": "report", "transfer": 1, "ok": 1, "seconds": 0}',
    b"\xff\xfe",
])
def test_malformed_frames(text: str | bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="peer-x"):
        p.decode(text, "peer-x")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["t", "transfer", "chunk", "ok", "name", "chunks", "manifest", "nonce"]),
                       json_values, max_size=6)
       | st.text() | st.binary())
def test_any_input_decodes_or_raises_protocol_error(data: object) -> None:
    text = data if isinstance(data, (str, bytes)) else json.dumps(data)
    try:
        msg = p.decode(text)
    except RemoteProtocolError:
        return
    assert isinstance(msg, p.Message)


@settings(max_examples=100, deadline=None)
@given(st.builds(p.Report, st.integers(0, p.MAX_INT), st.booleans(), st.floats(0, 1e7), st.text(max_size=2048),
                 st.booleans()))
def test_report_round_trip_property(msg: p.Report) -> None:
    assert p.decode(p.encode(msg)) == msg


def test_version_negotiation_names_who_must_upgrade() -> None:
    assert p.negotiate((1, 3), (2, 5), "peer") == 3
    with pytest.raises(RemoteProtocolError, match="upgrade this node"):
        p.negotiate((1, 1), (2, 2), "the master")
    with pytest.raises(RemoteProtocolError, match="upgrade the master"):
        p.negotiate((2, 2), (1, 1), "the master")
