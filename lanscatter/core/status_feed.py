"""The status feed: incremental updates of a `/status` document, as sent on `/status/ws`.

Pure (no I/O, no clock). The server keeps the last status it sent and, every tick, calls
`diff(prev, cur)`; a non-None result goes out as a delta message. The client applies deltas to its
copy with `apply`. The rule that ties both ends together: `apply(a, diff(a, b)) == b`.

Messages (JSON objects):

- `{"type": "snapshot", "seq": n, "status": {...}}`: the whole document. Always first on a
  connection, and sent again when the generation changes.
- `{"type": "delta", "seq": n, ...body}`: what changed since message n-1. The body holds only the
  parts that changed:
  - `"set"`: top-level scalar fields with their new value; `"unset"`: top-level keys removed.
  - `"nodes"` / `"links"`: lists of records keyed by `name`, each as
    `{"remove": [names], "add": [records], "change": {name: patch}, "order": [names]}`
    (`order` only when the order differs from "survivors in old order, then the added ones";
    `"replace": [records]` instead of all of these when names are not unique).
    A record patch is `{"set": {field: value}, "unset": [fields], "xor": {field: runs}}`.
  - `"events"`: `{"drop": k, "append": [events]}`: drop the k oldest, append the new ones.

Bitmap fields (`bitmap`, `inflight`) of equal length change as XOR runs: a list of
`[byte_offset, base64(xor bytes)]`, one per stretch of changed bytes. A one-chunk change costs a
few bytes however large the generation is; a bitmap whose length changed is sent whole (`set`).

A client that sees a seq gap, or a delta that changes the generation, drops its copy and asks for a
new snapshot (it reconnects); `FeedDecoder` raises `FeedGap` for both.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

Status = dict[str, Any]
Delta = dict[str, Any]

BITMAP_FIELDS = frozenset({"bitmap", "inflight"})
KEYED_LISTS = ("nodes", "links")
EVENTS = "events"

# A run of changed bytes, allowing short unchanged gaps inside it: one run with a 3-byte gap is
# smaller on the wire than two runs with their own offsets and base64 padding.
_GAP_BYTES = 6
_GAP = b"\x00" * (_GAP_BYTES + 1)          # what ends a run
_NONZERO = bytes([0] + [1] * 255)          # a byte's mark: changed or not


class FeedGap(Exception):
    """The client's copy can no longer be patched (seq gap, new generation): fetch a snapshot."""


def snapshot_message(status: Status, seq: int) -> dict[str, Any]:
    return {"type": "snapshot", "seq": seq, "status": status}


def delta_message(delta: Delta, seq: int) -> dict[str, Any]:
    return {"type": "delta", "seq": seq, **delta}


# --- diff -------------------------------------------------------------------------------------


def diff(prev: Status, cur: Status) -> Delta | None:
    """The delta that turns `prev` into `cur`, or None when they are equal."""
    delta: Delta = {}
    set_: dict[str, Any] = {}
    for key, value in cur.items():
        if key in KEYED_LISTS and _is_record_list(value) and _is_record_list(prev.get(key)):
            part = _diff_keyed(prev[key], value)
            if part:
                delta[key] = part
        elif key == EVENTS and isinstance(value, list) and isinstance(prev.get(key), list):
            part = _diff_events(prev[key], value)
            if part:
                delta[key] = part
        elif key not in prev or prev[key] != value:
            set_[key] = value
    if set_:
        delta["set"] = set_
    unset = [key for key in prev if key not in cur]
    if unset:
        delta["unset"] = unset
    return delta or None


def _is_record_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(r, dict) and "name" in r for r in value)


def _diff_keyed(prev: list[dict[str, Any]], cur: list[dict[str, Any]]) -> dict[str, Any] | None:
    prev_names = [r["name"] for r in prev]
    cur_names = [r["name"] for r in cur]
    if len(set(prev_names)) != len(prev_names) or len(set(cur_names)) != len(cur_names):
        return None if prev == cur else {"replace": cur}
    old = dict(zip(prev_names, prev))
    new_set = set(cur_names)
    part: dict[str, Any] = {}
    removed = [name for name in prev_names if name not in new_set]
    added = [r for r in cur if r["name"] not in old]
    changes = {}
    for record in cur:
        before = old.get(record["name"])
        if before is not None and before != record:
            changes[record["name"]] = _diff_record(before, record)
    if removed:
        part["remove"] = removed
    if added:
        part["add"] = added
    if changes:
        part["change"] = changes
    implied = [name for name in prev_names if name in new_set] + [r["name"] for r in added]
    if implied != cur_names:
        part["order"] = cur_names
    return part or None


def _diff_record(prev: Mapping[str, Any], cur: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    set_: dict[str, Any] = {}
    xor: dict[str, Any] = {}
    for key, value in cur.items():
        before = prev.get(key)
        if key in prev and before == value:
            continue
        runs = _xor_runs(before, value) if key in BITMAP_FIELDS else None
        if runs is not None:
            xor[key] = runs
        else:
            set_[key] = value
    unset = [key for key in prev if key not in cur]
    if set_:
        patch["set"] = set_
    if unset:
        patch["unset"] = unset
    if xor:
        patch["xor"] = xor
    return patch


def _xor_runs(before: object, after: object) -> list[list[Any]] | None:
    """XOR runs turning bitmap `before` into `after`, or None when a plain replacement is due."""
    if not isinstance(before, str) or not isinstance(after, str):
        return None
    try:
        a = base64.b64decode(before, validate=True)
        b = base64.b64decode(after, validate=True)
    except (binascii.Error, ValueError):
        return None
    # Re-encoding must give back the exact string, or apply() could not reproduce it.
    if len(a) != len(b) or not a or base64.b64encode(b).decode() != after:
        return None
    flipped = (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(len(a), "little")
    runs = [(start, base64.b64encode(flipped[start:end]).decode()) for start, end in changed_runs(flipped)]
    # About 8 characters of JSON per run besides its data: when runs cost as much, send it whole.
    if sum(len(encoded) + 8 for _, encoded in runs) >= len(after):
        return None
    return [[offset, encoded] for offset, encoded in runs]


def changed_runs(flipped: bytes) -> list[tuple[int, int]]:
    """The runs of changed (non-zero) bytes in `flipped` as (start, end) offsets, a run going on
    across up to _GAP_BYTES zero bytes. Found with bytes.find (C scans): a regular expression
    tried its match at every byte of a large bitmap, a third of a status diff's time."""
    marks = flipped.translate(_NONZERO)
    runs: list[tuple[int, int]] = []
    start = marks.find(1)
    while start >= 0:
        end = marks.find(_GAP, start)
        if end < 0:
            runs.append((start, len(marks.rstrip(b"\x00"))))
            break
        runs.append((start, end))
        start = marks.find(1, end)
    return runs


def _diff_events(prev: list[Any], cur: list[Any]) -> dict[str, Any] | None:
    if prev == cur:
        return None
    # The smallest k such that the newest len(prev)-k old events open the new list.
    for drop in range(len(prev) + 1):
        kept = len(prev) - drop
        if kept <= len(cur) and prev[drop:] == cur[:kept]:
            part: dict[str, Any] = {"append": cur[kept:]}
            if drop:
                part["drop"] = drop
            return part
    raise AssertionError("unreachable: dropping every old event always matches")


# --- apply ------------------------------------------------------------------------------------


def apply(prev: Status, delta: Mapping[str, Any]) -> Status:
    """`prev` patched by `delta` (a delta body or a whole delta message); `prev` is not modified."""
    cur = dict(prev)
    for key, value in delta.items():
        if key in KEYED_LISTS:
            cur[key] = _apply_keyed(prev.get(key) or [], value)
        elif key == EVENTS:
            old = prev.get(key) or []
            cur[key] = old[value.get("drop", 0) :] + list(value.get("append", []))
    for key, value in delta.get("set", {}).items():
        cur[key] = value
    for key in delta.get("unset", ()):
        cur.pop(key, None)
    return cur


def _apply_keyed(prev: list[dict[str, Any]], part: Mapping[str, Any]) -> list[dict[str, Any]]:
    if "replace" in part:
        return list(part["replace"])
    removed = set(part.get("remove", ()))
    changes = part.get("change", {})
    unknown = set(changes) - {r["name"] for r in prev}
    if unknown:
        raise KeyError(f"change for unknown records {sorted(unknown)}")
    records = [
        _apply_record(r, changes[r["name"]]) if r["name"] in changes else r
        for r in prev
        if r["name"] not in removed
    ]
    records.extend(part.get("add", ()))
    if "order" in part:
        by_name = {r["name"]: r for r in records}
        records = [by_name[name] for name in part["order"]]
    return records


def _apply_record(prev: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    cur = dict(prev)
    cur.update(patch.get("set", {}))
    for key in patch.get("unset", ()):
        cur.pop(key, None)
    for key, runs in patch.get("xor", {}).items():
        cur[key] = _apply_xor(cur[key], runs)
    return cur


def _apply_xor(bitmap: str, runs: Sequence[Sequence[Any]]) -> str:
    # One big-int XOR with a mask assembled from the runs: a client applies hundreds of these
    # per delta, so this avoids a Python-level loop over bytes.
    data = binascii.a2b_base64(bitmap)
    mask = bytearray(len(data))
    for offset, encoded in runs:
        flip = binascii.a2b_base64(encoded)
        mask[offset : offset + len(flip)] = flip
    flipped = int.from_bytes(data, "little") ^ int.from_bytes(mask[: len(data)], "little")
    return binascii.b2a_base64(flipped.to_bytes(len(data), "little"), newline=False).decode()


# --- both ends of a connection ----------------------------------------------------------------


class FeedEncoder:
    """Server side: turns successive statuses into the messages to send.

    One encoder can serve every client of an endpoint, so `diff` runs once a tick however many
    monitors watch: broadcast each `message()` to the clients already following, and greet a
    client that connects with `join()`, which lines it up with the next broadcast.
    """

    def __init__(self) -> None:
        self._sent: Status | None = None
        self._seq = 0

    def message(self, status: Status) -> dict[str, Any] | None:
        """The message bringing the clients to `status`, or None when nothing changed."""
        prev = self._sent
        if prev is None or prev.get("generation") != status.get("generation"):
            message = snapshot_message(status, self._seq)
        else:
            delta = diff(prev, status)
            if delta is None:
                return None
            message = delta_message(delta, self._seq)
        self._sent = status
        self._seq += 1
        return message

    def join(self, status: Status) -> dict[str, Any]:
        """The first message for a client connecting now.

        The snapshot of what was last broadcast, numbered so that the next broadcast follows it.
        Before the first broadcast, `status` becomes the point the broadcasts start from.
        """
        if self._sent is None:
            message = snapshot_message(status, self._seq)
            self._sent = status
            self._seq += 1
            return message
        return snapshot_message(self._sent, self._seq - 1)


class FeedDecoder:
    """Client side of one connection: the current status after each message received."""

    def __init__(self) -> None:
        self.status: Status | None = None
        self._seq: int | None = None

    def receive(self, message: Mapping[str, Any]) -> Status:
        """Apply one message; raises FeedGap when a fresh snapshot is needed."""
        kind = message.get("type")
        seq = message.get("seq")
        if kind == "snapshot" and isinstance(message.get("status"), dict) and isinstance(seq, int):
            status: Status = message["status"]
        elif kind == "delta" and self.status is not None and self._seq is not None and seq == self._seq + 1:
            try:
                status = apply(self.status, message)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                raise FeedGap(f"malformed delta {seq}: {exc!r}") from exc
            if status.get("generation") != self.status.get("generation"):
                raise FeedGap("the generation changed inside a delta")
        else:
            raise FeedGap(f"cannot use a {kind!r} message with seq {seq!r} after seq {self._seq!r}")
        self.status, self._seq = status, seq
        return status
