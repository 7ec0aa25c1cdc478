"""Tree activation (`activate: tree`), the decisions: when the origin commits a version, what a
host does with a commit, and what a tree-wide rollback means. Pure: no I/O, times passed in.

How a version crosses the tree:
1. The origin publishes generation G. Every host stages G beside its active version (as in host
   activation) but a host of tree activation does not switch when it holds G whole: it waits.
2. Every coordinator (the origin's master, each relay's downstream side) sums what its subtree
   holds (`subtree`): a peer counts as ready when it holds G whole; a relay says for its whole
   subtree, itself included (`Staged` messages up the relays); a relay that has not said yet is
   one host not ready.
3. The origin commits G (`CommitBook.step`) once every host joined in the tree is ready: the
   `Commit` goes down the relays, and every host switches to G at once. A host that is down at that
   moment gets the commit when it joins again (every coordinator sends its last commit after the
   manifest at each join) and switches as soon as it holds G whole.
4. A commit that every joined host does not allow within the deadline (a host whose staging
   stalls: a full disk, a dead link) is reported once (`Overdue`): nobody switched, so nothing is
   half-applied. The origin keeps waiting: the commit goes out when the last host is ready, or a
   newer version replaces it.

Rollback (`lanscatter rollback --tree`): the origin names a version committed earlier to be shown
instead of the current one (`Commit(generation=old, instead=current)`); every host that keeps it
switches to it without moving data and holds there. The origin does not commit the current
version again by itself; a newly published one ends the rollback, and so does a rollback "to" the
current version (a roll forward).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

WAITING_NAMES = 16          # hosts named in a subtree's summary (the rest are counted)
HISTORY = 20                # committed versions the origin remembers for rollback
DEFAULT_DEADLINE_S = 600.0


@dataclass(frozen=True, slots=True)
class Readiness:
    """How many of a subtree's hosts hold `generation` whole; `waiting` names some of the others."""

    generation: str
    hosts: int
    ready: int
    waiting: tuple[str, ...] = ()

    @property
    def all_ready(self) -> bool:
        return self.ready >= self.hosts


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a coordinator's swarm, as the coordinator sees it."""

    name: str
    relay: bool
    ready: bool                         # holds the current generation whole
    summary: Readiness | None = None    # what a relay said of its subtree


def subtree(generation: str, members: Iterable[Member], own: tuple[str, bool] | None = None) -> Readiness:
    """The readiness of a coordinator's subtree for `generation`. `own`: (name, ready) of the
    coordinator itself when it is a host (a relay); None for the origin's master, which only serves.
    A relay's summary is taken only for this generation and never claims more ready than hosts."""
    hosts = ready = 0
    waiting: list[str] = []
    entries = list(members)
    if own is not None:
        entries.insert(0, Member(own[0], relay=False, ready=own[1]))
    for m in entries:
        s = m.summary
        if s is not None and s.generation == generation:
            hosts += s.hosts
            ready += min(s.ready, s.hosts)
            waiting += s.waiting
        else:
            hosts += 1
            if m.ready and not m.relay:
                ready += 1
            else:
                waiting.append(m.name)
    return Readiness(generation, hosts, ready, tuple(waiting[:WAITING_NAMES]))


@dataclass(frozen=True, slots=True)
class Version:
    generation: str
    label: str = ""
    published_ms: int = 0


@dataclass(frozen=True, slots=True)
class Commit:
    """Send this commit down the tree: show `generation` (instead of `instead`, for a rollback)."""

    generation: str
    instead: str = ""


@dataclass(frozen=True, slots=True)
class Overdue:
    """The current version was not committed within the deadline: report it (once)."""

    generation: str
    waited_s: float
    readiness: Readiness


@dataclass(frozen=True, slots=True)
class RollbackRefused:
    reason: str
    hint: str


@dataclass
class CommitBook:
    """The origin's record of tree activation: the current version, the committed one, a rollback's
    hold, and the versions committed before (newest first, for `rollback --to`)."""

    deadline_s: float = DEFAULT_DEADLINE_S
    committed: Version | None = None
    held: str = ""                       # the current generation a rollback replaced (not committed again)
    history: tuple[Version, ...] = ()    # committed versions, newest first
    current: Version | None = None
    since: float = 0.0                   # when the current version was published (caller's clock)
    overdue: bool = False                # reported for the current version
    readiness: Readiness | None = field(default=None)

    def published(self, version: Version, now: float) -> None:
        """The origin publishes `version` (the same generation again changes nothing)."""
        if self.current is not None and self.current.generation == version.generation:
            return
        self.current, self.since, self.overdue, self.readiness = version, now, False, None

    def step(self, readiness: Readiness, now: float) -> Commit | Overdue | None:
        """What to do now that the tree's readiness for the current version is `readiness`."""
        cur = self.current
        if cur is None or readiness.generation != cur.generation:
            return None
        self.readiness = readiness
        if cur.generation == self.held or self.is_committed(cur.generation):
            return None
        if readiness.all_ready:
            self._commit(cur)
            return Commit(cur.generation)
        if not self.overdue and now - self.since >= self.deadline_s:
            self.overdue = True
            return Overdue(cur.generation, now - self.since, readiness)
        return None

    def is_committed(self, generation: str) -> bool:
        return self.committed is not None and self.committed.generation == generation

    def message(self) -> Commit | None:
        """The commit every host joining now is told."""
        if self.committed is None:
            return None
        instead = self.held if self.held and self.held != self.committed.generation else ""
        return Commit(self.committed.generation, instead)

    def _commit(self, version: Version) -> None:
        self.committed, self.held = version, ""
        rest = tuple(v for v in self.history if v.generation != version.generation)
        self.history = (version, *rest)[:HISTORY]

    def rollback(self, to: str | None) -> Commit | RollbackRefused:
        """Show a version committed earlier instead of the current one. `to`: a label, a generation
        or an unambiguous generation prefix; None: the version committed before the committed one.
        A rollback to the current version rolls forward (commits it, whether all hold it or not)."""
        cur = self.current
        if self.committed is None or cur is None:
            return RollbackRefused("no version was committed yet", "wait for the first commit")
        if to is None:
            target = next((v for v in self.history if v.generation != self.committed.generation), None)
            if target is None:
                return RollbackRefused("no version was committed before this one",
                                       "there is nothing to roll back to yet")
        else:
            found = find_version([cur, *self.history], to)
            if found is None:
                known = ", ".join(_shown(v) for v in self.history[:8]) or "none"
                return RollbackRefused(f"no committed version {to!r}", f"versions committed: {known}")
            target = found
        if target.generation == cur.generation:
            self._commit(cur)
            return Commit(cur.generation)
        self.committed = target
        self.held = cur.generation
        rest = tuple(v for v in self.history if v.generation != target.generation)
        self.history = (target, *rest)[:HISTORY]
        return Commit(target.generation, cur.generation)

    def state(self) -> str:
        """'committed', 'rolled-back', 'overdue', 'staging', or 'idle' (nothing published)."""
        cur = self.current
        if cur is None:
            return "idle"
        if cur.generation == self.held:
            return "rolled-back"
        if self.is_committed(cur.generation):
            return "committed"
        return "overdue" if self.overdue else "staging"

    # ---- persistence (the caller stores the dict) ------------------------------------------------
    def to_dict(self) -> dict[str, object]:
        return {"format": 1, "committed": _to(self.committed), "held": self.held,
                "history": [_to(v) for v in self.history]}

    def restored(self, doc: object) -> CommitBook:
        """This book with the committed version, hold and history of `doc` (as `to_dict` wrote it);
        ValueError when it is malformed."""
        if not isinstance(doc, dict) or doc.get("format") != 1:
            raise ValueError("not a commit record of format 1")
        history = doc.get("history")
        held = doc.get("held")
        if not isinstance(history, list) or len(history) > HISTORY or not _is_generation(held, empty=True):
            raise ValueError("its history or hold is malformed")
        committed = doc.get("committed")
        return replace(self, committed=None if committed is None else _from(committed), held=str(held),
                       history=tuple(_from(v) for v in history))


def find_version(versions: Sequence[Version], what: str) -> Version | None:
    """A version by label, generation or unambiguous generation prefix (the first by label)."""
    for v in versions:
        if what in (v.generation, v.label) and what:
            return v
    hits = {v.generation: v for v in versions if what and v.generation.startswith(what.lower())}
    return next(iter(hits.values())) if len(hits) == 1 else None


@dataclass(frozen=True, slots=True)
class HostView:
    """What a host knows when a commit arrives or its staging completes."""

    tree: bool                  # this host activates on commits (activate: tree)
    current: str | None         # the generation it stages or holds (the swarm's current one)
    staged_whole: bool          # it holds `current` whole
    active: str | None          # the generation its folder shows
    kept: frozenset[str]        # generations of the versions it keeps


def host_action(view: HostView, commit: Commit | None) -> tuple[str, str]:
    """(what, generation): 'switch' to the current version, 'rollback' to a kept one, 'missing'
    (the commit names a version this host does not keep), or 'none'."""
    if commit is None:
        return ("none", "")
    target = commit.generation
    if target == view.active:
        return ("none", "")
    if target == view.current:
        return ("switch", target) if view.staged_whole else ("none", "")
    # A rollback: about this host's current version, or (tree activation) whatever it stages now,
    # as the tree shows the committed version until the next commit.
    if commit.instead and (commit.instead == view.current or view.tree):
        return ("rollback", target) if target in view.kept else ("missing", target)
    return ("none", "")


def may_switch(tree: bool, commit: Commit | None, generation: str) -> bool:
    """Whether a host whose staging of `generation` just completed switches to it now: at once in
    host activation, in tree activation only once the origin committed it."""
    return not tree or (commit is not None and commit.generation == generation)


def _shown(v: Version) -> str:
    return f"{v.label} ({v.generation[:12]})" if v.label else v.generation[:12]


def _to(v: Version | None) -> dict[str, object] | None:
    return None if v is None else {"generation": v.generation, "label": v.label, "published_ms": v.published_ms}


def _is_generation(value: object, *, empty: bool = False) -> bool:
    return (isinstance(value, str) and len(value) <= 128 and (empty or bool(value))
            and all(c in "0123456789abcdef" for c in value))


def _from(doc: object) -> Version:
    if not isinstance(doc, dict):
        raise ValueError("a version entry is not an object")  # noqa: TRY004 (the caller catches ValueError)
    gen, label, ms = doc.get("generation"), doc.get("label"), doc.get("published_ms")
    if not (_is_generation(gen) and isinstance(label, str) and len(label) <= 200
            and isinstance(ms, int) and not isinstance(ms, bool) and 0 <= ms < 2**53):
        raise ValueError("a version entry has a bad generation, label or time")
    return Version(str(gen), label, ms)
