"""The status document: what a node says about itself and its swarm on `/status`, `/status/ws`,
`/metrics`, its `--json` lines, and what `up`, the monitor and scripts read. Pure (no I/O, no clock).

The one definition of the document: frozen dataclasses, one encoder (`to_json`) and one decoder
(`read_status`). Masters, relays and peers fill a `StatusDoc` in; everyone who reads one from the
network decodes it with `read_status`.

Rules of the JSON shape (docs/tui.md, "Where the data comes from"):
- `version` is `STATUS_VERSION`. Version 2 added `dl_slots_used`/`ul_slots_used` per node, version 3
  `active`/`staged` (per node and for the node itself) and `commit` (the origin); a reader
  takes any version, ignores keys it does not know and gives a missing key its default (a version 1
  document's slots in use are its transfers, capped at the slots).
- A field whose metadata is `_OPTIONAL` is left out when it is None (a peer's document has no
  `chunking`, a master's no `upstream`); every other field is always there, null or not.
- Slots in use never exceed their total (`NodeStatus` refuses it); `downloads`/`uploads` count
  transfers, which may be more (ones ending, WAN uploads the planner runs beside the slots).

Decoding is hostile-input decoding, like `protocol.FIELD_BOUNDS`: every number is range-checked
(NaN refused), every list and string bounded, texts escaped (`safe_text`), bitmaps base64 of a
bounded length. Anything else raises `StatusError`; it never raises anything else, whatever the input.

Adding a field: give it a default (older documents lack it), a bound in `_BOUNDS` when the default
one does not fit (texts 1,024 characters, lists 1,024 items, numbers 0 to 2**63), and give it
`field(default=None, metadata=_OPTIONAL)` when the documents of some roles never carry it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lanscatter.core.errors import RemoteProtocolError
from lanscatter.core.manifest import MAX_CHUNKS
from lanscatter.core.safe_text import safe_text

STATUS_VERSION = 3

MAX_NODES = 65_536
MAX_LINKS = 256
MAX_EVENTS = 512
MAX_BYTES = 2**63 - 1
MAX_RATE = 1e15                                  # bytes/s; far above any link
MAX_TIME = 1e11                                  # seconds since the epoch (year 5138)
MAX_BITMAP_CHARS = 4 * math.ceil(math.ceil(MAX_CHUNKS / 8) / 3)
MAX_STATUS_BYTES = 64 << 20                      # a whole document as read off the network

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class StatusError(RemoteProtocolError):
    """A status document that is not one: wrong type, out of bounds, malformed."""


# The metadata of a field the documents of some roles never carry (default None): the encoder
# leaves it out when None. Declared on the field itself, so the encoder cannot disagree with the types.
_OPTIONAL = types.MappingProxyType({"optional": True})


@dataclass(frozen=True, slots=True)
class ActiveVersion:
    """The version a host's folder shows: the origin's label and publish time, and when the host
    switched to it (its own clock)."""

    generation: str
    label: str = ""
    published_ms: int = 0
    activated: float = 0.0


@dataclass(frozen=True, slots=True)
class StagedVersion:
    """The version a host stages beside the one it shows: the share of it held, and `whole` once it
    holds all of it (in tree activation it then waits for the commit)."""

    generation: str
    label: str = ""
    progress: float = 0.0            # 0 to 1
    whole: bool = False


@dataclass(frozen=True, slots=True)
class CommitState:
    """The origin's tree activation (tree_commit.py): the current version's commit and the tree's
    readiness for it."""

    mode: str                        # tree | host (host: a late commit is only shown)
    state: str                       # idle | staging | overdue | committed | rolled-back
    generation: str | None = None    # the current version
    committed: str | None = field(default=None, metadata=_OPTIONAL)  # the version every host is to show
    committed_label: str | None = field(default=None, metadata=_OPTIONAL)
    # after a tree rollback: the current version it replaced
    instead: str | None = field(default=None, metadata=_OPTIONAL)
    deadline_s: float = 0.0
    hosts: int = 0                   # hosts joined in the tree ...
    ready: int = 0                   # ... that hold the current version whole
    waiting: tuple[str, ...] = ()    # some of the others


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node of a swarm as its coordinator (or the peer itself) sees it."""

    name: str
    role: str = "peer"
    site: str | None = None
    online: bool = True
    have: int = 0                    # chunks held
    bitmap: str = ""                 # base64, chunk i is bit i % 8 of byte i // 8
    inflight: str = ""               # the chunks on their way to it, same encoding
    downloads: int = 0               # transfers in flight to it
    uploads: int = 0                 # transfers in flight from it
    dl_slots: int = 0
    ul_slots: int = 0
    dl_slots_used: int = 0           # never above dl_slots
    ul_slots_used: int = 0           # never above ul_slots
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_rate: float = 0.0             # bytes/s over the last seconds
    tx_rate: float = 0.0
    avg_upload_s: float | None = None
    # when it held every chunk (the coordinator's clock)
    complete_at: float | None = field(default=None, metadata=_OPTIONAL)
    # a peer's own document: chunks it fetched
    downloaded_chunks: int | None = field(default=None, metadata=_OPTIONAL)
    # ... and chunks it copied from its own folder
    local_copies: int | None = field(default=None, metadata=_OPTIONAL)
    # the version its folder shows (hosts say from protocol 8)
    active: ActiveVersion | None = field(default=None, metadata=_OPTIONAL)
    staged: StagedVersion | None = field(default=None, metadata=_OPTIONAL)  # the version it stages beside it

    def __post_init__(self) -> None:
        if not (0 <= self.dl_slots_used <= self.dl_slots and 0 <= self.ul_slots_used <= self.ul_slots):
            raise ValueError(f"{self.name}: slots in use {self.dl_slots_used}/{self.dl_slots}, "
                             f"{self.ul_slots_used}/{self.ul_slots}")


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """A WAN link as the relay at its far end counts it."""

    name: str
    bytes: int = 0                   # on the wire
    # chunk content it brought (more than `bytes` when LZ4 helped)
    data_bytes: int | None = field(default=None, metadata=_OPTIONAL)
    # control frames it brought (manifests and their deltas mostly)
    control_bytes: int | None = field(default=None, metadata=_OPTIONAL)
    bytes_per_s: float | None = None # its capacity, when the site tree says
    rate: float = 0.0


@dataclass(frozen=True, slots=True)
class StatusEvent:
    t: float
    level: str                       # info | warning | error
    message: str


@dataclass(frozen=True, slots=True)
class PublishedVersion:
    """The origin's signed word on the generation held: its label and when it was published."""

    generation: str
    label: str
    published_ms: int


@dataclass(frozen=True, slots=True)
class PublishState:
    """A master's publishing: its mode, and the last scan it refused to publish (if any)."""

    mode: str
    settle_s: float
    pending: bool = False
    refused: str | None = None
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    """A relay's side facing its upstream swarm."""

    connected: bool
    master: str                      # host:port
    generation: str | None = None
    complete: bool = False
    downloaded_chunks: int = 0


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """One of a site's gateways (`gateway: [a, b]`, roles/gateway.py): its place in the list,
    whether it relays now, and which gateway relays as far as it knows."""

    rank: int                        # 0: the first in the list
    active: bool
    term: int = 0                    # taken when it last became active (0: never)
    # host:port of the one relaying (None: none known)
    active_gateway: str | None = field(default=None, metadata=_OPTIONAL)
    upstream_ok: bool = False        # it reached the upstream within the last seconds
    takeovers: int = 0               # times this process became active


@dataclass(frozen=True, slots=True)
class StatusDoc:
    role: str = ""                   # master | relay | peer
    name: str = ""
    time: float = 0.0                # when the document was made (the node's clock)
    site: str | None = None
    generation: str | None = None
    chunks: int = 0
    bytes: int = 0                   # distinct content of the generation
    synced: bool = False             # every node holds every chunk (a peer: its folder is complete)
    published: PublishedVersion | None = None
    nodes: tuple[NodeStatus, ...] = ()
    links: tuple[LinkStatus, ...] = ()
    events: tuple[StatusEvent, ...] = ()
    insecure: bool = False           # runs with no swarm secret
    version: int = STATUS_VERSION
    # when the coordinator took this generation
    generation_at: float | None = field(default=None, metadata=_OPTIONAL)
    chunking: str | None = field(default=None, metadata=_OPTIONAL)
    chunk_size: int | None = field(default=None, metadata=_OPTIONAL)
    # a master: names in its folder the protocol cannot carry
    skipped_names: int | None = field(default=None, metadata=_OPTIONAL)
    # a master: `chunk_size` was chosen from the data
    chunk_size_auto: bool | None = field(default=None, metadata=_OPTIONAL)
    # a peer: control frames received from its master
    control_rx_bytes: int | None = field(default=None, metadata=_OPTIONAL)
    publish: PublishState | None = field(default=None, metadata=_OPTIONAL)  # a master
    upstream: UpstreamStatus | None = field(default=None, metadata=_OPTIONAL)  # a relay
    # a gateway of a site with standbys (active or not)
    gateway: GatewayStatus | None = field(default=None, metadata=_OPTIONAL)
    # the version this node's folder shows
    active: ActiveVersion | None = field(default=None, metadata=_OPTIONAL)
    staged: StagedVersion | None = field(default=None, metadata=_OPTIONAL)  # ... and the one it stages
    commit: CommitState | None = field(default=None, metadata=_OPTIONAL)  # the origin: tree activation


def slots_in_use(transfers: int, slots: int) -> int:
    """The slots `transfers` occupy when nothing better is known: never more than there are."""
    return max(0, min(transfers, slots))


# --- encoding ---------------------------------------------------------------------------------


# Per document class, its fields as (name, left out when None): a swarm's document has thousands
# of values, made four times a second while a monitor watches, and dataclasses.fields() for each
# of them took most of the time.
_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {}
_PLAIN = frozenset((str, int, float, bool, type(None)))


def to_json(value: Any) -> Any:
    """The JSON value of a document (or any part of one): dicts, lists, str, numbers, None."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, tuple):
        return [to_json(v) for v in value]
    plan = _FIELDS.get(kind)
    if plan is None:
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            return value
        plan = _FIELDS[kind] = tuple((f.name, bool(f.metadata.get("optional")))
                                     for f in dataclasses.fields(value))
    out = {}
    for name, optional in plan:
        v = getattr(value, name)
        if v is None and optional:
            continue
        out[name] = v if type(v) in _PLAIN else to_json(v)
    return out


# --- decoding ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bound:
    lo: float = 0
    hi: float = MAX_BYTES
    text: bool = True                # a text: escaped with safe_text; else checked by `pattern`
    pattern: re.Pattern[str] | None = None


_NAME = _Bound(0, 256)
_BOUNDS: dict[str, _Bound] = {
    "name": _NAME, "role": _Bound(0, 32), "site": _Bound(0, 256), "master": _Bound(0, 512),
    "level": _Bound(0, 16), "message": _Bound(0, 2048), "label": _Bound(0, 512), "mode": _Bound(0, 32),
    "refused": _Bound(0, 2048), "hint": _Bound(0, 2048), "chunking": _Bound(0, 32),
    "generation": _Bound(0, 128),
    "bitmap": _Bound(0, MAX_BITMAP_CHARS, text=False, pattern=_BASE64),
    "inflight": _Bound(0, MAX_BITMAP_CHARS, text=False, pattern=_BASE64),
    "nodes": _Bound(0, MAX_NODES), "links": _Bound(0, MAX_LINKS), "events": _Bound(0, MAX_EVENTS),
    "version": _Bound(1, 2**16), "chunks": _Bound(0, MAX_CHUNKS), "have": _Bound(0, MAX_CHUNKS),
    "downloads": _Bound(0, 2**20), "uploads": _Bound(0, 2**20), "dl_slots": _Bound(0, 4096),
    "ul_slots": _Bound(0, 4096), "dl_slots_used": _Bound(0, 4096), "ul_slots_used": _Bound(0, 4096),
    "downloaded_chunks": _Bound(0, 2**40), "local_copies": _Bound(0, 2**40), "skipped_names": _Bound(0, 2**40),
    "rx_rate": _Bound(0, MAX_RATE), "tx_rate": _Bound(0, MAX_RATE), "rate": _Bound(0, MAX_RATE),
    "bytes_per_s": _Bound(0, MAX_RATE), "avg_upload_s": _Bound(0, 1e9), "settle_s": _Bound(0, 1e9),
    "time": _Bound(0, MAX_TIME), "t": _Bound(0, MAX_TIME), "generation_at": _Bound(0, MAX_TIME),
    "complete_at": _Bound(0, MAX_TIME), "published_ms": _Bound(0, MAX_TIME * 1000),
    "rank": _Bound(0, 64), "term": _Bound(0, 2**53), "takeovers": _Bound(0, 2**40), "active_gateway": _Bound(0, 512),
    "activated": _Bound(0, MAX_TIME), "progress": _Bound(0, 1), "state": _Bound(0, 32),
    "committed": _Bound(0, 128), "committed_label": _Bound(0, 512), "instead": _Bound(0, 128),
    "deadline_s": _Bound(0, 1e9), "hosts": _Bound(0, 2**40), "ready": _Bound(0, 2**40), "waiting": _Bound(0, 64),
}
_DEFAULT_NUMBER = _Bound()
_DEFAULT_TEXT = _Bound(0, 1024)          # a field added without a bound of its own stays bounded
_DEFAULT_LIST = _Bound(0, 1024)


def read_status(data: object) -> StatusDoc:
    """A status document from decoded JSON (a node's `/status`, a feed's snapshot); StatusError when
    it is not one. Unknown keys are ignored, missing ones take their defaults."""
    # (A node's `have` may exceed `chunks`: a node that left is shown as it was, in its generation.)
    return _read_record(StatusDoc, data, "status")


_T = typing.TypeVar("_T")


def _read_record(cls: type[_T], data: object, where: str) -> _T:
    if not isinstance(data, Mapping):
        raise StatusError(f"{where}: not an object")
    values: dict[str, Any] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            if f.default is dataclasses.MISSING:
                raise StatusError(f"{where}: no {f.name!r}")
            continue
        values[f.name] = _read_value(data[f.name], hints[f.name], f.name, f"{where}.{f.name}")
    if cls is NodeStatus:
        # A version 1 document counted transfers only: they occupy at most all the slots.
        for used, transfers, slots in (("dl_slots_used", "downloads", "dl_slots"),
                                       ("ul_slots_used", "uploads", "ul_slots")):
            total = values.get(slots, 0)
            values[used] = min(values[used], total) if used in values else \
                slots_in_use(values.get(transfers, 0), total)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise StatusError(f"{where}: {safe_text(str(exc), 200)}") from None


def _read_value(value: object, hint: Any, name: str, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        return _read_value(value, hint, name, where)
    bound = _BOUNDS.get(name) or (_DEFAULT_TEXT if hint is str else _DEFAULT_LIST if origin is tuple
                                  else _DEFAULT_NUMBER)
    if origin is tuple:
        item = args[0]
        if not isinstance(value, list) or not bound.lo <= len(value) <= bound.hi:
            raise StatusError(f"{where}: not a list of at most {bound.hi:.0f} items")
        if item is str:          # names: each bounded and escaped like a node's name
            return tuple(_read_value(v, str, "name", f"{where}[{i}]") for i, v in enumerate(value))
        return tuple(_read_record(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return _read_record(hint, value, where)  # type: ignore[arg-type]
    if hint is bool:
        if not isinstance(value, bool):
            raise StatusError(f"{where}: not true or false")
        return value
    if hint is int or hint is float:
        ok_type = isinstance(value, int) if hint is int else isinstance(value, (int, float))
        if not ok_type or isinstance(value, bool) or not bound.lo <= value <= bound.hi:  # type: ignore[operator]
            raise StatusError(f"{where}: not a number from {bound.lo:g} to {bound.hi:g}")
        return float(value) if hint is float else value  # type: ignore[arg-type]
    if hint is str:
        if not isinstance(value, str) or not bound.lo <= len(value) <= bound.hi:
            raise StatusError(f"{where}: not a text of {bound.lo:.0f} to {bound.hi:.0f} characters")
        if bound.pattern is not None and not bound.pattern.fullmatch(value):
            raise StatusError(f"{where}: malformed")
        return safe_text(value, int(bound.hi)) if bound.text else value
    raise AssertionError(f"no reader for {hint!r}")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]

