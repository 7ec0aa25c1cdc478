"""Versions of a host's folder, the pure part: names, the index that says which is active, which
files a new version shares with the active one, which old versions are dropped.

Rules:
- No I/O and no clock: times are passed in; the on-disk layout is `versions_dir.py`.
- A version's name is the first `NAME_LEN` hex digits of its generation (unique enough for the
  few versions a host keeps; a name a host already holds for another generation is refused).
- A file of the new version is shared (hard-linked) with a file of the active version only when
  everything the mirror keeps of it is equal: content (the chunk list), size, mtime and exec bit.
  A link shares the inode, so the new version must never need to change its metadata.
- The index read from disk is input like any other: decoded with bounds, a bad one is an error.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from lanscatter.core.file_table import FileTable, as_table, pair_paths, same_entry
from lanscatter.core.manifest import FileEntry, Manifest

NAME_LEN = 16
VERSIONS_SUFFIX = ".lsc-versions"     # <folder><suffix>: the versions' folder, beside the folder
LINK_SUFFIX = ".lsc-link"             # .<folder><suffix>: the new symlink, just before its rename
NAME_MAX = 255                        # bytes of one name (POSIX file systems)
INDEX_FORMAT = 1
MAX_VERSIONS = 1000           # bounds of a decoded index (a host keeps a handful)
MAX_KEEP = 100
MAX_LABEL = 200               # the origin's label for a version (signing.MAX_LABEL_CHARS)
_NAME = re.compile(r"^[0-9a-z]{1,64}$")
_GENERATION = re.compile(r"^[0-9a-f]{0,128}$")     # empty: a folder adopted as it was (unknown)


class IndexError_(ValueError):
    """The versions index is malformed (message says what)."""


def beside_name(name: str, suffix: str) -> str:
    """The name of an entry kept beside the folder `name`: `name + suffix`, or, when that is longer
    than a name may be, the start of `name`, `~`, a digest of the whole name, and the suffix."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) + len(suffix) <= NAME_MAX:
        return name + suffix
    digest = hashlib.sha256(raw).hexdigest()[:12]
    head = raw[:NAME_MAX - len(suffix) - len(digest) - 1].decode("utf-8", "ignore")
    return f"{head}~{digest}{suffix}"


def version_name(generation: str) -> str:
    """The folder name of a generation's version."""
    if not generation or not _GENERATION.match(generation):
        raise ValueError(f"not a generation id: {generation[:40]!r}")
    return generation[:NAME_LEN]


@dataclass(frozen=True, slots=True)
class VersionRecord:
    name: str
    generation: str
    activated: float          # unix time it last became active (0: never yet)
    label: str = ""           # the label the origin signed with it ("" when none)
    published_ms: int = 0     # when the origin published it (0: unknown)


@dataclass(frozen=True, slots=True)
class Hold:
    """A rollback: generations in `skip` are not activated again by themselves (the host stays on
    the version it was rolled back to until another generation arrives, or the hold is lifted)."""

    skip: tuple[str, ...]
    tree: bool = False        # made by the tree's rollback: the tree's next commit lifts it


@dataclass(frozen=True, slots=True)
class VersionIndex:
    active: str | None = None
    versions: tuple[VersionRecord, ...] = ()
    hold: Hold | None = None
    migrated: str | None = field(default=None)   # a plain folder being turned into this version

    def record(self, name: str) -> VersionRecord | None:
        return next((v for v in self.versions if v.name == name), None)

    def with_active(self, name: str, generation: str, now: float, label: str | None = None,
                    published_ms: int | None = None) -> VersionIndex:
        """`name` (holding `generation`) becomes active, most recent first (its label and publish
        time kept unless new ones are given)."""
        old = self.record(name)
        label = label if label is not None else (old.label if old is not None else "")
        published = published_ms if published_ms is not None else (old.published_ms if old is not None else 0)
        others = tuple(v for v in self.versions if v.name != name)
        return replace(self, active=name,
                       versions=(VersionRecord(name, generation, now, label, published), *others))

    def without(self, names: Iterable[str]) -> VersionIndex:
        drop = set(names)
        return replace(self, versions=tuple(v for v in self.versions if v.name not in drop))

    def find(self, what: str) -> VersionRecord | None:
        """A kept version by name, label or generation (or an unambiguous generation prefix); the
        most recent one when several carry the same label."""
        exact = [v for v in self.versions if what in (v.name, v.generation) or (what and what == v.label)]
        if exact:
            return exact[0]
        hits = [v for v in self.versions if v.generation.startswith(what)] if what else []
        return hits[0] if len(hits) == 1 else None

    def previous(self) -> VersionRecord | None:
        """The version active before the active one (the default target of a rollback)."""
        return next((v for v in self.versions if v.name != self.active), None)

    def to_dict(self) -> dict[str, object]:
        return {"format": INDEX_FORMAT, "active": self.active, "migrated": self.migrated,
                "versions": [{"name": v.name, "generation": v.generation, "activated": v.activated,
                              "label": v.label, "published_ms": v.published_ms} for v in self.versions],
                "hold": None if self.hold is None else {"skip": list(self.hold.skip), "tree": self.hold.tree}}


def index_from_dict(doc: object) -> VersionIndex:
    """Decode the index file's JSON; anything malformed raises IndexError_."""
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT:
        raise IndexError_("not a versions index of format 1")
    versions = doc.get("versions")
    if not isinstance(versions, list) or len(versions) > MAX_VERSIONS:
        raise IndexError_("its version list is missing or too long")
    out = []
    for v in versions:
        if not isinstance(v, dict):
            raise IndexError_("a version entry is not an object")
        name, gen, when, label = v.get("name"), v.get("generation"), v.get("activated"), v.get("label", "")
        published = v.get("published_ms", 0)
        if not (isinstance(name, str) and _NAME.match(name) and isinstance(gen, str) and _GENERATION.match(gen)
                and isinstance(when, int | float) and not isinstance(when, bool)
                and isinstance(label, str) and len(label) <= MAX_LABEL
                and isinstance(published, int) and not isinstance(published, bool) and 0 <= published < 2**53):
            raise IndexError_("a version entry has a bad name, generation, time or label")
        out.append(VersionRecord(name, gen, float(when), label, published))
    active, migrated = doc.get("active"), doc.get("migrated")
    for value in (active, migrated):
        if value is not None and not (isinstance(value, str) and _NAME.match(value)):
            raise IndexError_("its active version name is malformed")
    hold = doc.get("hold")
    held: Hold | None = None
    if hold is not None:
        skip = hold.get("skip") if isinstance(hold, dict) else None
        tree = hold.get("tree", False) if isinstance(hold, dict) else None
        if not isinstance(skip, list) or len(skip) > MAX_VERSIONS or not isinstance(tree, bool) or not all(
                isinstance(g, str) and _GENERATION.match(g) for g in skip):
            raise IndexError_("its hold is malformed")
        held = Hold(tuple(skip), tree)
    return VersionIndex(active, tuple(out), held, migrated)


@dataclass(frozen=True, slots=True)
class LinkPlan:
    """Which files of a new version are hard links to files of the active version, by position in
    the new version's table: a byte a file (a dict of a million paths cost over 100 bytes a file)."""

    same: bytearray                # 1: linked to the active file of the same path
    moved: dict[int, str]          # linked to an active file of another path: position -> its path

    def linked(self, j: int) -> bool:
        return bool(self.same[j]) or j in self.moved

    def source(self, new: FileTable, j: int) -> str | None:
        """The active path file `j` of `new` is linked to (None: it is not)."""
        return new.path(j) if self.same[j] else self.moved.get(j)

    def drop(self, j: int) -> None:
        """File `j` is not linked after all (the link could not be made)."""
        self.same[j] = 0
        self.moved.pop(j, None)


def link_plan(active_files: Iterable[FileEntry], new: Manifest, same: bytes = b"") -> LinkPlan:
    """Which files of `new` are hard links to files of the active version. The same path is
    preferred; otherwise the first active file (in table order) with the same content and
    metadata. `same`: per file of `new`, 1 where the active version holds it at its path already
    (a scan found it so and left it out of `active_files`)."""
    # Paired by path first, walking both tables (no dict of a million entries); the files left
    # over are looked for by content through a fingerprint of each (8 bytes, sorted; a set of
    # their keys cost 300 bytes a file, and every file is left over when a folder is adopted
    # with other mtimes), each fingerprint that matches checked entry by entry.
    active, files = as_table(active_files), new.files
    plan = LinkPlan(bytearray(same) if same else bytearray(len(files)), {})
    left = array("q")
    for _, i, j in pair_paths(active, files):
        if i is not None and j is not None and same_entry(active, i, files, j):
            plan.same[j] = 1
        elif j is not None and not plan.same[j]:
            left.append(j)
    if not left:
        return plan
    prints = array("q", (_fingerprint(files, j) for j in left))
    order = array("q", sorted(range(len(left)), key=prints.__getitem__))
    ordered = array("q", (prints[k] for k in order))
    del prints
    # A run of equal fingerprints is matched by its first active file with that content; `settled`
    # skips the run's matched head for the next (many identical files, say empty ones with one
    # mtime, would otherwise be walked again for each active copy).
    settled: dict[int, int] = {}      # run start -> the first of its files not matched yet
    for i in range(len(active)):
        start = bisect.bisect_left(ordered, fingerprint := _fingerprint(active, i))
        at = settled.get(start, start)
        head = True
        while at < len(ordered) and ordered[at] == fingerprint:
            j = left[order[at]]
            if j not in plan.moved and same_entry(active, i, files, j):
                plan.moved[j] = active.path(i)
            head = head and j in plan.moved
            at += 1
            if head:
                settled[start] = at
    return plan


def _fingerprint(table: FileTable, i: int) -> int:
    """A hash of file `i`'s content and metadata (its path aside): what `same_entry` compares."""
    c = table.columns
    span = table.ref_range(i)
    return hash((tuple(c.hashes.key(c.refs[r]) for r in span), c.lengths[span.start:span.stop].tobytes(),
                 c.sizes[i], c.mtimes[i], c.executable[i]))


def to_drop(index: VersionIndex, keep: int, exclude: Iterable[str] = ()) -> list[str]:
    """Names of kept versions beyond the `keep` most recently active ones. The active version always
    stays, and so do the versions in `exclude` (one being staged)."""
    spared = set(exclude)
    others = [v.name for v in index.versions if v.name != index.active]   # most recent first
    room = max(keep - (index.active is not None), 0)
    return [name for name in others[room:] if name not in spared]


def strays(entries: Iterable[str], index: VersionIndex, exclude: Iterable[str] = ()) -> list[str]:
    """Entries of the versions folder that are no version the index keeps (a staging superseded
    before it completed, a version half deleted by a crash): removed by the next prune."""
    known = {v.name for v in index.versions} | set(exclude) | {n for n in (index.active, index.migrated) if n}
    return sorted(e for e in entries if e not in known and e not in RESERVED)


COMMIT_MARK_FILE = "newest-commit"    # the newest tree commit followed, kept with the versions too
RESERVED = frozenset({"index.json", "lock", COMMIT_MARK_FILE})
