"""What goes into and comes out of a swarm session (session.py), and what it keeps per peer.

Pure values. A session never reads a clock: every input carries a `Now` (both clocks, read once by
whoever drives it). What it decides comes back as a list of outputs, for the driver to carry out in
order: frames to send to one peer, events to log and show, calls into the seed's own node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lanscatter.core import protocol as p
from lanscatter.core.bitmap import Bitmap
from lanscatter.core.rate_meter import RateMeter
from lanscatter.core.status import ActiveVersion
from lanscatter.core.tree_commit import Readiness


@dataclass(frozen=True, slots=True)
class Now:
    """The time of one input. `mono` (monotonic seconds) times deadlines, silences and rates;
    `wall` (Unix seconds) is what the status shows and what chunk tokens expire by."""

    mono: float
    wall: float


@dataclass(frozen=True, slots=True)
class Send:
    """Send `msg` to the peer named `peer` (sealed on its connection; dropped if it has gone)."""

    peer: str
    msg: p.Message


@dataclass(frozen=True, slots=True)
class Event:
    """Log `message` at `level` ("info", "warning", "error") and keep it for the status page. The
    message may quote remote text: the driver shortens and escapes it."""

    level: str
    message: str


@dataclass(frozen=True, slots=True)
class Note:
    """Log `message` at info level only: too frequent to be worth a status event."""

    message: str


@dataclass(frozen=True, slots=True)
class SeedRates:
    """The seed's own uploads, by transfer id, are to run at these rates (bytes/s) from now on."""

    rates: dict[int, float]


@dataclass(frozen=True, slots=True)
class SeedCut:
    """The seed's own uploads of these transfers are withdrawn (their downloader left or fell
    silent): stop sending them, rather than carry to the end what nobody will report."""

    transfers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SeedCorrupt:
    """A downloader found a chunk from the seed's own folder corrupt: the seed's file changed."""

    chunk: str


@dataclass(frozen=True, slots=True)
class Synced:
    """Every member holds the whole of this generation."""

    generation: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection of the peer named `peer`, telling it `reason`: the session counts it as
    gone already (a gateway's relay replaced by a newer one, gateway_handover.py)."""

    peer: str
    reason: str


Output = Send | Event | Note | SeedRates | SeedCut | SeedCorrupt | Synced | Close


@dataclass(eq=False)
class PeerState:
    """One member of the swarm as the session knows it (the status page reads these fields)."""

    name: str
    addr: str                    # the address we see it at: its chunk requests must come from there
    url: str                     # where this peer serves chunks ("" : it serves none)
    source: str                  # ... as its chunk server sees itself ('ip:port', for tokens)
    seed_url: str                # where this peer reaches the seed
    seed_source: str             # ... as the seed's chunk server sees itself ('ip:port', for tokens)
    role: str
    dl_slots: int
    ul_slots: int
    have: Bitmap
    inflight: Bitmap
    heard_at: float              # its last message (monotonic clock)
    protocol: int = 1            # as agreed at its join
    generation: str = ""         # the generation it holds (Hello, then its full Haves): deltas from it
    whole_sent: str = ""         # the generation whose whole manifest it asked for (once each)
    rx_bytes: int = 0
    tx_bytes: int = 0
    uploads: int = 0
    downloads: int = 0
    complete: bool = False
    complete_at: float | None = None     # when it became complete (wall clock, like status "time")
    online: bool = True
    planned: bool = False        # known to the planner (after its first full Have)
    silent: bool = False         # nothing heard for SILENT_S: nothing more is planned to it
    staging: bool = False        # took a new generation, its Have for it not yet come: no downloads
    rates: RateMeter = field(default_factory=RateMeter)
    active: ActiveVersion | None = None      # the version its folder shows (from its Stats)
    summary: Readiness | None = None         # a relay's subtree (its Staged): tree activation
    gateways: tuple[str, ...] = ()           # the site whose gateway it relays for (gateway_handover.py)
    term: int = 0                            # ... and the term it was elected with
