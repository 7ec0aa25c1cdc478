"""The peer role's options (`lanscatter peer`, a relay's upstream side, a standby gateway): one
frozen value built by the command line, the orchestrator and the tests."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from lanscatter.core.auth import SwarmKey
from lanscatter.core.ports import DEFAULT_PEER_PORT
from lanscatter.core.signing import OriginKey
from lanscatter.disk.scrub import DEFAULT_SCRUB_RATE
from lanscatter.disk.staged_store import DEFAULT_KEEP
from lanscatter.net.tls import ServerTLS


@dataclass(frozen=True, slots=True)
class PeerOptions:
    master: str                        # host of the master (or upstream relay)
    master_port: int
    folder: Path
    state_dir: Path
    host: str = "0.0.0.0"              # listen (and connect-from) address
    port: int = DEFAULT_PEER_PORT      # 0: any free port
    name: str = ""
    secret: str | SwarmKey | None = None     # text is stretched at start (auth.py)
    ul_rate: float | None = None       # bytes/s
    dl_rate: float | None = None
    dl_slots: int = 2
    ul_slots: int = 2
    compress: bool = True
    connect_timeout: float = 60.0
    role: str = "peer"
    serve: bool = True                 # False: serve no chunks to this swarm (a relay upstream)
    scrub_rate: float = DEFAULT_SCRUB_RATE   # bytes/s of held chunks re-read and checked; 0: none
    tls: ssl.SSLContext | None = None  # connect to the master and to chunk sources over TLS
    tls_server: ServerTLS | None = None    # also serve TLS on the chunk port
    origin_key: OriginKey | None = None  # who may publish versions (None: pin the first signer)
    activate: str = "host"             # "host": stage beside the active version, switch at once
                                       # when complete; "tree": stage, switch on the origin's commit
                                       # (tree_commit.py); "per-file": each file replaced in place
    keep: int = DEFAULT_KEEP           # versions kept (host activation), the active one included
    adopt: bool = False                # delete what the version lacks even in a folder never synced
    dry_run: bool = False              # preview the first version's sync (`preview`), then end
    # Other masters of the same swarm (a site's standby gateways, in the tree's order): when the
    # master goes away or answers as a standby, the next one is tried, round and round.
    alternates: tuple[tuple[str, int], ...] = ()
    # A gateway's relay (gateway_handover.py): its site's gateways ('ip:port', in the tree's
    # order) and the term it was elected with, said in its Hello so that the upstream withdraws
    # the relay it replaces at once.
    gateways: tuple[str, ...] = ()
    term: int = 0
