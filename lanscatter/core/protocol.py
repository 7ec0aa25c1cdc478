"""Control protocol messages between a master and its peers (pure, no I/O).

One registry, one encode/decode pair. Each message is a frozen dataclass; on the wire it is a JSON
object `{"t": <type>, <field>: <value>, ...}`: the Challenge and a refusal (Error) in a websocket
text frame, everything else sealed in a binary frame (handshake.py: MAC, then this JSON). Unknown fields are
ignored (a newer peer may add some); missing or mistyped fields, unknown types and non-JSON input
all become `RemoteProtocolError`, naming the peer and the message, and never anything else.

Conversation (master M, peer P):
    M -> P  Challenge      first frame on every connection (nonce, protocol range)
    P -> M  Hello          (sealed: proves the secret) nonce, the address it connects from, name,
                           protocol range, slots, chunk port; a gateway's relay: its site's
                           gateways and its term (it replaces an older relay of that site)
    M -> P  Welcome        (sealed: proves the secret) or Error(fatal) and close (wrong secret, no
                           common protocol version, address differs)
    M -> P  ManifestMsg    now and on every new generation, or
    M -> P  ManifestDelta  (protocol 7) the changes from the generation the peer holds (its Hello
                           or its last full Have says which); the peer rebuilds the generation and
                           checks it against the signed statement, or asks ManifestWanted
    P -> M  ManifestWanted (protocol 7) the whole manifest of this generation (once per generation)
    P -> M  Have           full set after each manifest (replace=True, then the rest in pieces of
                           HAVE_PIECE), then one chunk at a time (protocol 10: not after an ok
                           Report, which says the peer holds its chunk)
    M -> P  Download       fetch chunk from source URL with this token (auth.py);  P -> M  Report when done or failed
    P -> M  Ending         (protocol 2) a download's last bytes are on their way: plan the next
    M -> P  Cancel         stop a transfer (generation changed, source left)
    P -> M  Receiving      (protocol 4) a download's first bytes arrived: it uses its share now
                           (protocol 11: not from a download too short to measure; its Ending says it)
    M -> P  Rates          (protocol 4) to a source: send these uploads at these rates from now on
    M -> P  Verify         (protocol 3) a chunk this peer served did not match its hash: read the
                           files holding it again, fetch what no longer matches, send Have again
    P -> M  Stats          periodic counters for the status page, and the version this host shows
    P -> M  Staged         (protocol 8) a relay's subtree: how many of its hosts hold the current
                           generation whole (tree activation, tree_commit.py)
    M -> P  Commit         (protocol 8) the generation every host shows (tree activation), or a
                           tree-wide rollback: show `generation` instead of `instead`
"""

from __future__ import annotations

import json
import reprlib
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Union
from urllib.parse import urlsplit

from lanscatter.core.errors import RemoteProtocolError
from lanscatter.core.safe_text import safe_text

PROTOCOL_VERSION = 12         # 2: Ending; 3: Verify; 4: Receiving, Rates; 5: mutual proof, sealed frames;
                              # 6: manifest format 2 (chunk sizes, content-defined chunks);
                              # 7: ManifestDelta, ManifestWanted, Hello.generation; 8: Staged, Commit;
                              # 9: ManifestMsg in manifest format 3 (columns, manifest_wire.py);
                              # 10: an ok Report is its chunk's Have (REPORT_HOLDS)
                              # 11: a download too short to measure says Ending, no Receiving
                              # 12: a Commit carries the origin's signed statement of it
# 5 changed the handshake and the chunk tokens: no older node can join or serve, so a node with a
# secret never falls back to an unauthenticated conversation. 6 changed the manifest: an older
# node could not read one, so it is told to upgrade at the handshake instead.
MIN_PROTOCOL_VERSION = 6
# From this version on a peer sends no Have after an ok Report: the Report says it holds the chunk
# (a fifth of a busy master's messages). A master takes an ok Report as a Have from any version.
REPORT_HOLDS = 10
# From this version on a download too short to measure its rate (ending_lead.judged_at_told_rate)
# says no Receiving: its Ending, half-way, says its bytes flow too (a quarter of the frames of a
# transfer on a fast port). A master takes an Ending as the end of the wait from any version.
ENDING_RECEIVES = 11
# From this version on a peer serves the received prefix of each chunk it is downloading (to
# downloaders that verify the whole), and its master plans others' downloads from it as soon as
# the first bytes arrived there (Receiving, or the Ending of a short download): cut-through
# inside a site. An older peer is planned from only once it holds a chunk whole.
SERVES_ARRIVING = 11


@dataclass(frozen=True, slots=True)
class Message:
    TYPE: ClassVar[str] = ""


_REGISTRY: dict[str, type[Message]] = {}


def _message(cls: type[Message]) -> type[Message]:
    if cls.TYPE in _REGISTRY:
        raise TypeError(f"duplicate message type {cls.TYPE}")
    _REGISTRY[cls.TYPE] = cls
    return cls


@_message
@dataclass(frozen=True, slots=True)
class Challenge(Message):
    TYPE: ClassVar[str] = "challenge"
    nonce: str
    protocol: int
    min_protocol: int
    software: str


@_message
@dataclass(frozen=True, slots=True)
class Hello(Message):
    TYPE: ClassVar[str] = "hello"
    name: str
    protocol: int
    min_protocol: int
    software: str
    nonce: str              # fresh for each connection: the session key depends on it
    addr: str               # the address this peer connects from, as its own socket sees it
    port: int               # where this peer serves chunks (0: serves none)
    dl_slots: int
    ul_slots: int
    role: str = "peer"      # "peer" or "relay"
    generation: str = ""    # the generation this peer holds ("" none): a new one comes as a delta
    # A relay that is one of its site's gateways (gateway_handover.py): the site's gateways as
    # 'ip:port' in the tree's order, and the term it was elected with (0: none).
    gateways: list[str] = field(default_factory=list)
    term: int = 0


@_message
@dataclass(frozen=True, slots=True)
class Welcome(Message):
    TYPE: ClassVar[str] = "welcome"
    name: str               # the name the master knows this peer by (made unique)
    protocol: int
    # The master's wall clock as it sent this (Unix ms; 0: not said, by a master before this field).
    # Its chunk tokens expire by that clock, so a source checks them by it (hosts' clocks may differ).
    clock_ms: int = 0


@_message
@dataclass(frozen=True, slots=True)
class ManifestMsg(Message):
    """A generation, with the origin's signed statement about it (`signing.py`): a relay passes
    `statement` and `signature` on unchanged; a host writes only what they show the origin signed."""
    TYPE: ClassVar[str] = "manifest"
    manifest: dict[str, Any]
    statement: str = ""     # the exact text the origin signed
    signature: str = ""     # base64 Ed25519 signature of it


@_message
@dataclass(frozen=True, slots=True)
class ManifestDelta(Message):
    """A generation as its changes from `base`, which the peer holds (`manifest_delta.py`), with
    the origin's statement about the generation it builds (as ManifestMsg)."""
    TYPE: ClassVar[str] = "manifest_delta"
    base: str
    generation: str
    delta: dict[str, Any]
    statement: str = ""
    signature: str = ""


@_message
@dataclass(frozen=True, slots=True)
class ManifestWanted(Message):
    """The peer holds no base for a delta, or the delta did not rebuild what the origin signed."""
    TYPE: ClassVar[str] = "manifest_wanted"
    generation: str


@_message
@dataclass(frozen=True, slots=True)
class Have(Message):
    TYPE: ClassVar[str] = "have"
    generation: str
    chunks: list[str]
    replace: bool = False   # True: this is the whole set


@_message
@dataclass(frozen=True, slots=True)
class Download(Message):
    TYPE: ClassVar[str] = "download"
    transfer: int
    chunk: str
    size: int
    source: str             # node name, for reports and logs
    url: str                # base URL of the source's chunk server
    timeout_s: float
    rate_cap: float | None = None   # bytes/s the source keeps for this transfer alone
    group: str | None = None        # a WAN link whose transfers the source paces together ...
    group_rate: float | None = None  # ... at this many bytes/s in all
    token: str = ""                 # the chunk server's authorisation (auth.chunk_token)


@_message
@dataclass(frozen=True, slots=True)
class Report(Message):
    TYPE: ClassVar[str] = "report"
    transfer: int
    ok: bool
    seconds: float
    error: str = ""
    corrupt: bool = False   # the source sent data whose hash did not match
    blameless: bool = False  # failed for a reason that says nothing about the source


@_message
@dataclass(frozen=True, slots=True)
class Ending(Message):
    """A download has about `seconds` left: its slot's next transfer can be arranged now, so it
    starts as this one ends instead of a control round trip and a request later."""
    TYPE: ClassVar[str] = "ending"
    transfer: int
    seconds: float


@_message
@dataclass(frozen=True, slots=True)
class Verify(Message):
    """Chunks of `generation` this peer served corrupt (they did not hash to their names)."""
    TYPE: ClassVar[str] = "verify"
    generation: str
    chunks: list[str]


@_message
@dataclass(frozen=True, slots=True)
class Receiving(Message):
    """A download's first bytes arrived: until now its source's request was on its way, and its
    share of the ports it crosses was still the other transfers' to use."""
    TYPE: ClassVar[str] = "receiving"
    transfer: int


@_message
@dataclass(frozen=True, slots=True)
class Rates(Message):
    """New rates (bytes/s) for uploads this peer serves, by transfer id: the transfers sharing a
    port changed, so their fair shares did."""
    TYPE: ClassVar[str] = "rates"
    transfers: list[int]
    rates: list[float]


@_message
@dataclass(frozen=True, slots=True)
class Cancel(Message):
    TYPE: ClassVar[str] = "cancel"
    transfer: int


@_message
@dataclass(frozen=True, slots=True)
class Stats(Message):
    TYPE: ClassVar[str] = "stats"
    rx_bytes: int
    tx_bytes: int
    uploads: int
    complete: bool
    # The version this host shows ("": none yet), as the origin signed it, and when it switched.
    active: str = ""
    active_label: str = ""
    active_published_ms: int = 0
    active_at: float = 0.0


@_message
@dataclass(frozen=True, slots=True)
class Staged(Message):
    """What a relay's subtree (itself included) holds of `generation`: `ready` of its `hosts`
    hold it whole; `waiting` names some of the others."""
    TYPE: ClassVar[str] = "staged"
    generation: str
    hosts: int
    ready: int
    waiting: list[str]


@_message
@dataclass(frozen=True, slots=True)
class Commit(Message):
    """Every host shows `generation` (a host of tree activation switches to it once it holds it
    whole). `instead` set: a tree-wide rollback, `generation` (a kept version) shown instead of
    the current `instead`."""
    TYPE: ClassVar[str] = "commit"
    generation: str
    instead: str = ""
    statement: str = ""     # (protocol 12) the origin's signed statement of this commit ...
    signature: str = ""     # ... and its signature: relays pass both on as they came


@_message
@dataclass(frozen=True, slots=True)
class Error(Message):
    TYPE: ClassVar[str] = "error"
    code: str               # "auth", "version", "address", "protocol"
    message: str
    fatal: bool = True


_NAMES: dict[type[Message], tuple[str, ...]] = {}


class _Encoder(json.JSONEncoder):
    """JSON of a message's fields; a bytes value (a manifest's base64 columns, `manifest_wire`)
    is ASCII text and goes as a JSON text."""

    def default(self, o: Any) -> Any:
        if isinstance(o, bytes):
            return o.decode("ascii")
        return super().default(o)


_ENCODER = _Encoder(separators=(",", ":"))    # (json.dumps builds one a call)
_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_MANIFEST_AT = b'{"manifest":{'    # how a ManifestMsg's JSON starts: its first field (`encode` puts "t" last)


def encode(msg: Message) -> str:
    cls = type(msg)
    if (names := _NAMES.get(cls)) is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    # Shallow: the fields are JSON values already, and a deep copy (dataclasses.asdict) of a
    # manifest of a million files would double what its sending holds in memory.
    data = {name: getattr(msg, name) for name in names}
    data["t"] = msg.TYPE
    return _ENCODER.encode(data)


def encode_pieces(msg: Message) -> list[bytes]:
    """`encode(msg)` as UTF-8 pieces that join into it: a ManifestMsg's columns given as bytes
    (`manifest_wire.to_wire`) go in as they are, where JSON would copy each into a text, join the
    texts, and the frame would copy that into bytes (at a million files, 57 MB each time)."""
    if not isinstance(msg, ManifestMsg) or not any(isinstance(v, bytes) for v in msg.manifest.values()):
        return [encode(msg).encode()]
    wire = msg.manifest
    rest = encode(ManifestMsg({k: v for k, v in wire.items() if not isinstance(v, bytes)},
                              msg.statement, msg.signature)).encode()
    pieces = [_MANIFEST_AT]
    for name, value in wire.items():
        if isinstance(value, bytes):
            if value.translate(None, _BASE64):
                raise ValueError(f"the manifest column {name!r} is not base64 text")
            pieces += [_ENCODER.encode(name).encode() + b':"', value, b'",']
    if rest.startswith(_MANIFEST_AT + b"}"):
        pieces[-1] = b'"'                 # (no other field follows the columns)
    pieces.append(rest[len(_MANIFEST_AT):])
    return pieces


# ---- bounds ------------------------------------------------------------------------------------
# Every value is range-checked where it enters, so nothing past decode sees an unbounded number,
# text or list (docs/security.md, "Input bounds").

MAX_FRAME = 64 * 2**10   # characters: any frame before login, and every frame a peer sends (a
                         # Have goes in pieces of HAVE_PIECE chunks, far below this)
HAVE_PIECE = 512         # chunks per Have frame (67 characters each)
# What a master sends after login: a manifest of a million files with 100-character paths and
# a million chunks (16 TiB at the default chunk size) is about 220 MB of JSON. (manifest.py's
# counts allow more; with names that long, a manifest past this frame is refused.)
MAX_MANIFEST_FRAME = 256 * 2**20
MAX_INT = 2**53 - 1      # exact in every JSON implementation (and in a float)
MAX_RATE = float(2**47)  # bytes/s, about 1000 Tbit/s: anything faster is nonsense, not a limit


@dataclass(frozen=True, slots=True)
class Bound:
    """The accepted range of a field: a number's value, or a text's or a list's length; `items`
    bounds each item of a list; `check`, if any, must hold for a text too."""

    lo: float
    hi: float
    items: Bound | None = None
    check: Callable[[str], bool] | None = None


def _is_base_url(text: str) -> bool:
    """http(s)://host[:port], the port in range: what a node may be told to fetch from."""
    try:
        parts = urlsplit(text)
        _ = parts.port          # raises ValueError when out of range or not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and _is_header_text(text)


def _is_header_text(text: str) -> bool:
    """Visible ASCII only: what an HTTP request line or header may carry (a token, a URL)."""
    return all(33 <= ord(c) < 127 for c in text)


_DEFAULTS: dict[Any, Bound] = {
    int: Bound(0, MAX_INT), float: Bound(0, MAX_INT), str: Bound(0, 1024), list: Bound(0, 2**16),
}
_NAME, _HASH = Bound(0, 255), Bound(0, 128)
# By field name: a name means the same in every message that has it.
FIELD_BOUNDS: dict[str, Bound] = {
    "name": _NAME, "source": _NAME, "group": _NAME, "chunk": _HASH, "generation": _HASH, "base": _HASH,
    "software": Bound(0, 64), "nonce": Bound(0, 256), "addr": Bound(0, 64), "token": Bound(0, 512, check=_is_header_text),
    "statement": Bound(0, 2048), "signature": Bound(0, 128),
    "role": Bound(1, 16), "code": Bound(1, 32), "message": Bound(0, 2048), "error": Bound(0, 2048),
    "url": Bound(0, 2048, check=_is_base_url), "protocol": Bound(0, 2**16), "min_protocol": Bound(0, 2**16),
    "port": Bound(0, 65535), "dl_slots": Bound(0, 4096), "ul_slots": Bound(0, 4096),
    "uploads": Bound(0, 2**20), "chunks": Bound(0, 2**22, items=_HASH),
    "transfers": Bound(0, 4096), "rates": Bound(0, 4096, items=Bound(0, MAX_RATE)),
    "rate_cap": Bound(0, MAX_RATE), "group_rate": Bound(0, MAX_RATE),
    "timeout_s": Bound(0, 1e7), "seconds": Bound(0, 1e7),
    "active": _HASH, "instead": _HASH, "active_label": Bound(0, 200), "active_published_ms": Bound(0, MAX_INT),
    "active_at": Bound(0, 1e11), "hosts": Bound(0, 2**20), "ready": Bound(0, 2**20),
    "waiting": Bound(0, 16, items=_NAME),
    "gateways": Bound(0, 64, items=Bound(1, 300, check=_is_header_text)), "term": Bound(0, MAX_INT),
}

_SHOW = reprlib.Repr()
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlist, _SHOW.maxdict, _SHOW.maxlevel = 40, 40, 4, 4, 2


def _shown(value: Any) -> str:
    """A short, escaped rendering of a bad value for an error message (never the whole frame)."""
    return safe_text(_SHOW.repr(value), 80)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)     # (json.loads builds one a call)


def decode(text: str | bytes, peer: str = "peer", limit: int | None = None) -> Message:
    """Parse one frame of at most `limit` characters; any malformed or out-of-bounds input raises
    RemoteProtocolError naming `peer`."""
    if limit is not None and len(text) > limit:
        raise RemoteProtocolError(f"{peer} sent a frame of {len(text)} characters (the limit is {limit})")
    try:
        data = _DECODER.decode(text if isinstance(text, str) else text.decode())
    except RecursionError:
        raise RemoteProtocolError(f"{peer} sent a frame nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"{peer} sent a frame that is not JSON: {safe_text(exc, 120)}") from None
    if not isinstance(data, dict):
        raise RemoteProtocolError(f"{peer} sent a frame that is not a JSON object")
    kind = data.get("t")
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise RemoteProtocolError(f"{peer} sent an unknown message type {_shown(kind)}")
    values: dict[str, Any] = {}
    for name, required, conforms in _checks(cls):
        if name not in data:
            if not required:
                continue
            raise RemoteProtocolError(f"{peer} sent {kind!r} without field {name!r}")
        value = data[name]
        if not conforms(value):
            raise RemoteProtocolError(f"{peer} sent {kind!r} with a bad {name!r}: {_shown(value)}")
        values[name] = value
    return cls(**values)


_Check = Callable[[Any], bool]
_CHECKS: dict[type[Message], tuple[tuple[str, bool, _Check], ...]] = {}


def _checks(cls: type[Message]) -> tuple[tuple[str, bool, _Check], ...]:
    """Each field of `cls`: its name, whether it is required, and the check of its value, built
    once per message type (resolving the type hints is far dearer than checking a value)."""
    got = _CHECKS.get(cls)
    if got is None:
        hints = typing.get_type_hints(cls)
        got = _CHECKS[cls] = tuple(
            (f.name, f.default is MISSING and f.default_factory is MISSING,
             _check(hints[f.name], FIELD_BOUNDS.get(f.name)))
            for f in fields(cls))
    return got


def _check(hint: Any, bound: Bound | None) -> _Check:
    """Whether a value has the type `hint` and lies within `bound` (None: the type's default)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        alternatives = tuple(_check(h, bound) for h in typing.get_args(hint))
        return lambda v: any(c(v) for c in alternatives)
    if hint is type(None):
        return lambda v: v is None
    b = bound or _DEFAULTS.get(origin or hint)
    if origin is dict:
        return lambda v: isinstance(v, dict)
    if b is None:                     # (every number, text and list has a default bound)
        return lambda v: isinstance(v, hint)
    if hint is float:
        lo, hi = b.lo, b.hi           # (NaN compares false: refused too)
        return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi
    if hint is int:
        lo, hi = b.lo, b.hi
        return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
    if hint is str:
        lo, hi, extra = b.lo, b.hi, b.check
        if extra is None:
            return lambda v: isinstance(v, str) and lo <= len(v) <= hi
        return lambda v: isinstance(v, str) and lo <= len(v) <= hi and extra(v)
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        lo, hi, item = b.lo, b.hi, _check(item_hint, b.items)
        return lambda v: isinstance(v, list) and lo <= len(v) <= hi and all(map(item, v))
    return lambda v: isinstance(v, hint)


def negotiate(ours: tuple[int, int], theirs: tuple[int, int], them: str) -> int:
    """Highest common version of two (min, max) ranges, or an error saying who must upgrade."""
    lo, hi = max(ours[0], theirs[0]), min(ours[1], theirs[1])
    if lo <= hi:
        return hi
    older = "this node" if ours[1] < theirs[0] else them
    raise RemoteProtocolError(
        f"no common protocol version: this node speaks {ours[0]}..{ours[1]}, {them} speaks "
        f"{theirs[0]}..{theirs[1]}; upgrade {older}"
    )
