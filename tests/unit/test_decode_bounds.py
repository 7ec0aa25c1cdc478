"""Decode either returns a message whose every field lies within its declared bounds, or raises
RemoteProtocolError; and remote text is shown short and without control characters."""

from __future__ import annotations

import json
import math
import typing
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanscatter.core import protocol as p
from lanscatter.core.errors import RemoteProtocolError
from lanscatter.core.rate_meter import RateMeter
from lanscatter.core.safe_text import safe_text

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
_fields = sorted({f.name for cls in p._REGISTRY.values() for f in fields(cls)})
_objects = st.tuples(st.sampled_from(sorted(p._REGISTRY)), st.dictionaries(st.sampled_from(_fields), _json, max_size=8)
                     ).map(lambda tf: {"t": tf[0], **tf[1]})


def _within(value: Any, hint: Any, bound: p.Bound | None) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, type(int | None)):
        return any(_within(value, h, bound) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    b = bound or p._DEFAULTS.get(origin or hint)
    if hint in (int, float):
        return b is not None and math.isfinite(value) and b.lo <= value <= b.hi <= p.MAX_INT
    if hint is str:
        return b is not None and len(value) <= b.hi
    if origin is list:
        (item,) = typing.get_args(hint)
        return b is not None and len(value) <= b.hi and all(_within(v, item, b.items) for v in value)
    return True


@settings(max_examples=300, deadline=None)
@given(st.one_of(_objects.map(lambda o: json.dumps(o, allow_nan=True)), st.text(max_size=200),
                 st.binary(max_size=200)))
def test_decode_accepts_only_bounded_values(frame: str | bytes) -> None:
    try:
        msg = p.decode(frame, "fuzz", p.MAX_FRAME)
    except RemoteProtocolError as exc:
        assert len(str(exc)) < 400
        return
    hints = typing.get_type_hints(type(msg))
    for f in fields(msg):
        assert _within(getattr(msg, f.name), hints[f.name], p.FIELD_BOUNDS.get(f.name)), f.name


@pytest.mark.parametrize("frame", [
    "[" * 100_000, '{"t":"stats","rx_bytes":' + "9" * 5000 + "}", '{"t":"ending","transfer":1,"seconds":NaN}',
    '{"t":"ending","transfer":1,"seconds":1e999}', '{"t":"cancel","transfer":9007199254740992}',
    '{"t":"cancel","transfer":true}', '{"t":"download","transfer":1,"chunk":"' + "0" * 64 + '","size":1,'
    '"source":"s","url":"http://127.0.0.1:99999","timeout_s":1}', "x" * (p.MAX_FRAME + 1),
    '{"t":"have","generation":"g","chunks":["' + "Z" * 129 + '"]}',
])
def test_hostile_frames_are_protocol_errors(frame: str) -> None:
    with pytest.raises(RemoteProtocolError):
        p.decode(frame, "fuzz", p.MAX_FRAME)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.integers(1, 500))
def test_safe_text_is_short_and_has_no_control_characters(text: str, limit: int) -> None:
    shown = safe_text(text, limit)
    assert len(shown) <= limit + 30
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029\u202e" for c in shown)
    if len(text) <= limit and text.isprintable() and "\u2066" not in text:
        assert shown == text


def test_safe_text_of_a_huge_number_or_a_huge_text_is_cheap() -> None:
    assert "too large" in safe_text(10**5000)
    assert len(safe_text("x" * 50_000_000, 64)) < 100


def test_rate_meter_survives_huge_and_backwards_counters() -> None:
    m = RateMeter()
    m.sample(0.0, 10**400, 0)
    m.sample(1.0, 10**401, -5)
    m.sample(2.0, 0, 2**70)
    rx, tx = m.rates()
    assert math.isfinite(rx) and math.isfinite(tx) and rx >= 0 and tx >= 0


@pytest.mark.parametrize("field, value", [("token", "\u202e1|a|b|c"), ("token", "a b"),
                                          ("url", "http://h\u00e9st:1"), ("url", "http://host:1/\u202e")])
def test_a_download_whose_token_or_url_no_http_request_can_carry_is_refused(field: str, value: str) -> None:
    """A token or URL outside visible ASCII reached http.client, whose header encoding raised in
    the download task (a traceback on the peer, found by the fuzz suite)."""
    good = {"t": "download", "transfer": 1, "chunk": "a" * 64, "size": 1, "source": "s",
            "url": "http://127.0.0.1:9", "timeout_s": 1.0, "token": "1|127.0.0.1|127.0.0.1:9|" + "0" * 64}
    p.decode(json.dumps(good))
    with pytest.raises(RemoteProtocolError):
        p.decode(json.dumps({**good, field: value}))
