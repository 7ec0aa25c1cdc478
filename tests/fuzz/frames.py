"""Hostile inputs drawn from hypothesis strategies, for replay against real servers.

Each strategy draws a batch of frames (one hypothesis example holds BATCH of them: drawing them
one example each costs milliseconds apiece); `draw_many` collects n of them with a fixed seed, so a
failing test replays the same inputs when run again the same way. Hypothesis's draws under a fixed
seed still move with what the process imported before (a plain `@seed` draw of integer lists
differs after an `import email`), so a test needs a margin over the frames it counts on, never
an exact draw. A frame is (opcode, payload bytes): mostly control messages
of every type whose fields are valid, at a boundary, just past it or of the wrong kind, plus
frames that are not messages at all (garbage, truncated or deeply nested JSON, NaN, 5,000-digit
numbers, oversized frames, binary frames).
"""

from __future__ import annotations

import json
import random
import typing
from dataclasses import fields
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from lanscatter.core import protocol as p

TEXT, BINARY = 1, 2
Frame = tuple[int, bytes]
BATCH = 25
VARIANTS = 20

# Where a fuzzed Download may point: loopback ports nothing listens on, and malformed URLs. Never
# a host name (it would be looked up) or an address outside 127.0.0.0/8.
SAFE_URLS = ["http://127.0.0.1:9", "http://127.0.0.1:1", "https://127.0.0.1:7", "http://127.0.0.1:99999",
             "http://127.0.0.1:x", "not a url", "", "ftp://127.0.0.1:9", "http://127.0.0.1:9/chunks/../.."]
_CONTROL = "".join(map(chr, [*range(32), 127, 0x85, 0x2028, 0x202E, 0x1B]))
_TEXTS = ["", "a", "peer", "x" * 255, "x" * 256, "y" * 2049, "\x1b[31mred\x1b[0m", "line\nforged: yes",
          "\u202eevil", "\x00", "../../etc", "é" * 300, "💥" * 10]
_INTS = [0, 1, 7, 65535, 65536, 4096, 4097, 2**16, 2**31, 2**53 - 1, 2**53, 2**63, 2**64, 10**30, -1, -(2**63)]
_FLOATS = [0.0, 0.5, 1e-300, 1e7, 1e7 + 1, 2.0**47, 2.0**47 * 2, 1e30, 1e308, -0.0, -1.0,
           float("nan"), float("inf"), float("-inf")]


def _hexes(hashes: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from([*hashes, "0" * 64, "f" * 64, "F" * 64, "g" * 64, "0" * 129, "", "0"])


def _scalar(hashes: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from([None, True, False, [], {}, [[[]]], {"a": {"b": None}}]),
                     st.sampled_from(_INTS), st.sampled_from(_FLOATS), st.sampled_from(_TEXTS),
                     st.text(alphabet=_CONTROL + "ab", max_size=12), _hexes(hashes))


def _valid(name: str, hint: Any, hashes: list[str], strict: bool) -> st.SearchStrategy[Any]:
    """A value of the field's type: in range and at its bounds, and unless `strict` sometimes
    just past them."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, type(int | None)):
        (inner,) = [h for h in typing.get_args(hint) if h is not type(None)]
        return st.one_of(st.none(), _valid(name, inner, hashes, strict))
    bound = p.FIELD_BOUNDS.get(name)
    if hint is bool:
        return st.booleans()
    if hint is int:
        hi = int(bound.hi) if bound else p.MAX_INT
        return st.one_of(st.integers(0, min(hi, 1000)), st.sampled_from([hi] if strict else [hi, hi + 1, -1]))
    if hint is float:
        hi = bound.hi if bound else p.MAX_INT
        return st.one_of(st.floats(0, min(hi, 1e6)), st.sampled_from([hi] if strict else [hi, hi * 2, -0.5]))
    if hint is str:
        if name == "url":
            return st.sampled_from(SAFE_URLS[:3] if strict else SAFE_URLS)
        if name in ("chunk", "generation"):
            return st.sampled_from([*hashes, "0" * 64, "f" * 64]) if strict else _hexes(hashes)
        hi = int(bound.hi) if bound else 1024
        return st.one_of(st.sampled_from([t for t in _TEXTS if len(t) <= hi or not strict]),
                         st.text(alphabet=_CONTROL + "abc-", max_size=16))
    if origin is list:
        (item,) = typing.get_args(hint)
        return st.lists(_valid(name + "[]" if item is not str else "chunk", item, hashes, strict), max_size=6)
    if origin is dict:
        return st.sampled_from([{}, {"format": 1}, {"format": 2, "chunking": "cdc", "chunk_size": 0, "dirs": [],
                                                     "files": []},
                                {"format": 2, "chunking": "fixed", "chunk_size": 4, "dirs": ["../x"], "files": []},
                                {"format": 2, "chunking": "cdc", "chunk_size": 4096, "dirs": [],
                                 "files": [["x", 10, 0, 0, ["0" * 64], [9]]]}])
    raise AssertionError(f"no strategy for {hint}")


_ABSENT = object()


def _field(name: str, hint: Any, hashes: list[str], strict: bool) -> st.SearchStrategy[Any]:
    """Valid (strict: always), else now and then of any kind at all, or missing."""
    valid = _valid(name, hint, hashes, strict)
    if strict:
        return valid
    return st.tuples(st.integers(0, 19), valid, _scalar(hashes)).map(
        lambda c: _ABSENT if c[0] == 0 else c[2] if c[0] == 1 else c[1])


def message(types: list[type[p.Message]], hashes: list[str], strict: bool) -> st.SearchStrategy[dict[str, Any]]:
    """A message of one of `types`: each field valid (strict: always, within its bounds), else
    now and then hostile or missing, or of an unknown type; sometimes with an unknown field."""
    per_type = []
    for cls in types:
        hints = typing.get_type_hints(cls)
        kinds = [cls.TYPE] if strict else [cls.TYPE] * 30 + ["", "Hello", "x" * 300, "nope"]
        per_type.append(st.fixed_dictionaries(
            {"t": st.sampled_from(kinds), **{f.name: _field(f.name, hints[f.name], hashes, strict)
                                             for f in fields(cls)}},
            optional={"zz": _scalar(hashes)}))
    return st.one_of(per_type).map(lambda m: {k: v for k, v in m.items() if v is not _ABSENT})


def _encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, allow_nan=True).encode()


def frame(types: list[type[p.Message]], hashes: list[str], *, strict: bool = False,
          malformed: int = 4) -> st.SearchStrategy[Frame]:
    """A control frame: a message of `types` (encoded as JSON; `strict`: every field within its
    bounds), or in about `malformed` of 20 cases something that is not a message frame at all."""
    messages = message(types, hashes, strict)
    well_formed = messages.map(lambda m: (TEXT, _encode(m)))
    garbage = st.tuples(st.sampled_from([TEXT, BINARY]), st.binary(max_size=64))
    truncated = st.tuples(messages, st.floats(0, 0.99)).map(
        lambda mf: (TEXT, _encode(mf[0])[:int(len(_encode(mf[0])) * mf[1])]))
    rare = st.sampled_from([
        (TEXT, b"[" * 100_000), (TEXT, b'{"t":' * 5000), (TEXT, b'{"t":"stats","rx_bytes":' + b"9" * 5000 + b"}"),
        (TEXT, b'{"t":"stats","rx_bytes":' + b"9" * 400 + b',"tx_bytes":0,"uploads":0,"complete":false}'),
        (TEXT, b'{"t":"rates","transfers":[1],"rates":[NaN]}'), (TEXT, b"null"), (TEXT, b"[]"), (TEXT, b'"x"'),
        (TEXT, b'{"t":"hello","name":"' + b"n" * 70_000 + b'"}'), (BINARY, b"\x00" * 70_000),
        (TEXT, b"\xff\xfe not utf-8"), (TEXT, b'{"t":"have","generation":"0","chunks":["0"],"t":"stats"}'),
    ])
    return st.tuples(st.integers(0, 19), well_formed, garbage, truncated, rare).map(
        lambda c: c[1] if c[0] >= malformed else c[2 + min(c[0], 2)])


def draw_many(strategy: st.SearchStrategy[Frame], n: int, *, strict: bool = False, salt: int = 0) -> list[Frame]:
    """n frames, the same on every run in the same process context (see above): hypothesis draws one in VARIANTS (drawing costs about
    3 ms a frame here), and each drawn frame is followed by VARIANTS - 1 mutants of it: one
    field replaced by a boundary or hostile value or dropped, or (strict) by the same field of
    another message of the same type drawn in the batch (so still within bounds)."""
    drawn: list[Frame] = []

    @seed(20261206 + salt)
    @settings(max_examples=-(-n // (BATCH * VARIANTS)), deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.lists(strategy, min_size=BATCH, max_size=BATCH), st.randoms(use_true_random=True))
    def collect(batch: list[Frame], rnd: random.Random) -> None:
        for f in batch:
            drawn.append(f)
            drawn.extend(_mutant(f, batch, rnd, strict) for _ in range(VARIANTS - 1))

    collect()
    return drawn[:n]


_CATALOG: list[Any] = [*_INTS, *_FLOATS, *_TEXTS, None, True, [], {}, ["0" * 64] * 3, [1, "x"], [[[]]]]


def _mutant(f: Frame, batch: list[Frame], rnd: random.Random, strict: bool) -> Frame:
    opcode, payload = f
    data = _as_dict(payload)
    if data is None:
        return f if strict else (opcode, payload[:rnd.randrange(len(payload) + 1)])
    key = rnd.choice(sorted(data))
    if strict:
        donors = [d for d in map(_as_dict, (b for _, b in batch)) if d and d.get("t") == data["t"] and key in d]
        if donors:
            data[key] = rnd.choice(donors)[key]
    elif key != "t" and rnd.random() < 0.2:
        del data[key]
    else:
        data[key] = rnd.choice(_CATALOG)
    return opcode, _encode(data)


def _as_dict(payload: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) and data else None


# ---- chunk requests --------------------------------------------------------------------------

_QUERY_VALUES = ["", "0", "1", "-1", "1e30", "1e400", "nan", "inf", "-inf", "1000000", "0x10", "1_000", " 5",
                 "9" * 40, "١٢٣", "%00", "a" * 300, "2e14", "140737488355328", "140737488355329"]
_QUERY_KEYS = ["rate", "group", "group_rate", "t", "x", "rate", ""]


def chunk_request(hashes: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """The parts of one chunk request: path, query, headers; each valid, hostile or garbage."""
    chunk = st.one_of(st.sampled_from(hashes), _hexes(hashes), st.sampled_from(
        ["..%2f..%2fetc%2fpasswd", "%00", "a" * 3000, "", "%ff%fe", "x/y", "\u00e9".encode().hex()]))
    query = st.lists(st.tuples(st.sampled_from(_QUERY_KEYS), st.sampled_from(_QUERY_VALUES)), max_size=4)
    token = st.one_of(st.none(), st.sampled_from(["", "0" * 64, "t" * 5000]), st.just("valid"))
    accept = st.sampled_from([None, "lz4", "gzip", "lz4, lz4", "l" * 3000])
    return st.fixed_dictionaries({"chunk": chunk, "query": query, "token": token, "accept": accept,
                                  "method": st.sampled_from(["GET"] * 8 + ["HEAD", "POST"])})


def request_bytes(parts: dict[str, Any], tokens: dict[str, str], token_header: str) -> bytes:
    from urllib.parse import quote
    chunk = parts["chunk"]
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in parts["query"])
    lines = [f"{parts['method']} /chunks/{chunk}{'?' + query if query else ''} HTTP/1.1", "Host: 127.0.0.1"]
    token = tokens.get(chunk, "0" * 64) if parts["token"] == "valid" else parts["token"]
    if token is not None:
        lines.append(f"{token_header}: {token}")
    if parts["accept"] is not None:
        lines.append(f"X-Lanscatter-Accept: {parts['accept']}")
    if parts["method"] == "POST":
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def draw_requests(strategy: st.SearchStrategy[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """n request parts, the same on every run: hypothesis draws one in VARIANTS, the others are
    its recombinations with the requests drawn beside it (one part taken from another)."""
    drawn: list[dict[str, Any]] = []

    @seed(20261207)
    @settings(max_examples=-(-n // (BATCH * VARIANTS)), deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.lists(strategy, min_size=BATCH, max_size=BATCH), st.randoms(use_true_random=True))
    def collect(batch: list[dict[str, Any]], rnd: random.Random) -> None:
        for parts in batch:
            drawn.append(parts)
            for _ in range(VARIANTS - 1):
                key = rnd.choice(sorted(parts))
                drawn.append({**parts, key: rnd.choice(batch)[key]})

    collect()
    return drawn[:n]
