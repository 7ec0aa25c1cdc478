"""`lanscatter master`, `peer` and `proxy`: option parsing, the swarm secret, the run loop, what
they print.

The secret comes from --secret-file, the environment (LANSCATTER_SECRET) or --secret (visible to
`ps`: warned about); without one a node refuses to start unless told --insecure, and then says so
in its log and on its status surfaces.

While running: the state and a progress bar on a terminal, log lines elsewhere (node_progress.py),
or JSON lines with --json; --log-file copies the log to a file. When a node ends it prints one
summary line on stdout (peer and relay: state, generation, bytes, time; master: what it served)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import math
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lanscatter.cli.failover_args import alternate_arg, gateway_args, gateway_options
from lanscatter.core.auth import SECRET_HINT, SWARM_KEY_ENV, SwarmKey, check_secret
from lanscatter.core.chunking import AUTO, CDC, KINDS
from lanscatter.core.errors import ConfigError
from lanscatter.core.eta import MeanRateEta
from lanscatter.core.ideal import ideal_time
from lanscatter.core.linkmap import LinkMap
from lanscatter.core.ports import DEFAULT_MASTER_PORT, DEFAULT_PEER_PORT
from lanscatter.core.publish_policy import DEFAULT_SETTLE_S, MAX_SHRINK, PUBLISH_MODES
from lanscatter.core.rate_meter import RateMeter
from lanscatter.core.signing import OriginKey, parse_origin_key
from lanscatter.core.sizes import format_byte_rate, format_bytes, mbit_to_bytes, parse_size
from lanscatter.core.status import StatusDoc
from lanscatter.core.tree_commit import DEFAULT_DEADLINE_S
from lanscatter.core.version_plan import MAX_KEEP
from lanscatter.disk.atomic_file import write_text_atomic
from lanscatter.disk.scrub import DEFAULT_SCRUB_RATE
from lanscatter.disk.signing_keys import PIN_FILE, PRIVATE_KEY_FILE
from lanscatter.disk.staged_store import DEFAULT_KEEP
from lanscatter.net.tls import CERT_FILE, KEY_FILE, ServerTLS, client_context, new_identity, server_tls

if TYPE_CHECKING:
    from lanscatter.roles.peer import PeerNode

log = logging.getLogger("lanscatter.cli")


def _chunk_size(text: str) -> int:
    return AUTO if text.strip().lower() == "auto" else parse_size(text)


def _common(sp: argparse.ArgumentParser, port: int, name: str = "this machine's host name") -> None:
    sp.add_argument("--port", type=int, default=port, help=f"listen port (default {port}; 0: any free)")
    sp.add_argument("--port-file", type=Path, default=None, metavar="FILE",
                    help="once listening, write the port to FILE (with --port 0: the one the system chose), "
                         "so a script starting the node needs no port of its own choosing")
    sp.add_argument("--listen", default="0.0.0.0", metavar="ADDR",
                    help="address to listen on and connect from (default all addresses)")
    sp.add_argument("--name", default="", help=f"node name shown in status (default: {name})")
    secret_args(sp)
    sp.add_argument("--ul-rate", type=mbit_to_bytes, default=None, metavar="MBIT",
                    help="upload limit in Mbit/s (default unlimited)")
    sp.add_argument("--no-compress", action="store_true", help="never use LZ4 in flight")
    sp.add_argument("--state-dir", type=Path, default=None,
                    help="where hash caches and resume journals live (default ~/.cache/lanscatter/...)")
    sp.add_argument("--json", action="store_true", help="print a JSON status line every second on stdout")
    sp.add_argument("--log-file", type=Path, default=None, metavar="FILE",
                    help="also append the log to FILE (with the date; the terminal keeps its progress bar)")


def secret_args(sp: argparse.ArgumentParser) -> None:
    """The swarm-secret options (--secret-file, --secret, --insecure); read with `swarm_secret`."""
    g = sp.add_argument_group("swarm secret", "only nodes holding it join, fetch chunks or give commands "
                              "(docs/security.md); `lanscatter secret new` makes one")
    g.add_argument("--secret-file", type=Path, default=None, metavar="PATH",
                   help="read the swarm secret from this file (default: the environment variable "
                        "LANSCATTER_SECRET, or LANSCATTER_SWARM_KEY: the key `lanscatter up` stretched "
                        "once for the roles it starts)")
    g.add_argument("--secret", default=None, metavar="TEXT",
                   help="the swarm secret itself (every user of this host sees it in `ps`: prefer "
                        "--secret-file or LANSCATTER_SECRET)")
    g.add_argument("--insecure", action="store_true",
                   help="run with no secret: anyone who reaches this node can join, fetch every chunk "
                        "and, as a master, command its peers")


def _scrub_rate(text: str) -> float:
    """`--scrub-rate` in MB/s (10^6 bytes) -> bytes/s; 0 turns the scrub off."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("give a rate in MB/s, or 0 to turn the scrub off")
    return value * 1e6


def _scrub_arg(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--scrub-rate", type=_scrub_rate, default=DEFAULT_SCRUB_RATE, metavar="MB/S",
                    help=f"re-read the chunks held here at this rate (default {DEFAULT_SCRUB_RATE / 1e6:g} MB/s) "
                         "and fetch again any that no longer match their hash (rotted on disk); 0: off")


def _activation_args(sp: argparse.ArgumentParser) -> None:
    g = sp.add_argument_group("versions", "how a new version becomes visible in DIR (docs/versions.md)")
    g.add_argument("--activate", choices=("host", "tree", "per-file"), default="host",
                   help="host (default): assemble each new version beside the active one (unchanged "
                        "files hard-linked) and switch DIR, a symlink, to it in one step once complete; "
                        "tree: the same, but switch only when the origin commits the version (once every "
                        "host holds it); per-file: replace DIR's files one by one as they complete")
    g.add_argument("--keep", type=_keep, default=DEFAULT_KEEP, metavar="N",
                   help=f"versions kept for `lanscatter rollback`, the active one included (default {DEFAULT_KEEP})")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1e7:
        raise argparse.ArgumentTypeError("give a number of seconds above 0")
    return value


def _keep(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_KEEP:
        raise argparse.ArgumentTypeError(f"give a whole number from 1 to {MAX_KEEP}")
    return int(text)


def _origin_key(text: str) -> OriginKey:
    try:
        return parse_origin_key(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _origin_key_arg(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--origin-key", type=_origin_key, default=None, metavar="ed25519:KEY",
                    help="the origin's public key (`lanscatter keys show`); only versions it signed are "
                         "written here. Default: trust the key of the first signed version and pin it "
                         f"({PIN_FILE} in the state folder), refusing any other key afterwards")


def _topology_args(sp: argparse.ArgumentParser) -> None:
    g = sp.add_argument_group("site tree", "let the planner know the network (link speeds, sites)")
    g.add_argument("--topology", type=Path, default=None, metavar="FILE", help="the site-tree YAML file")
    g.add_argument("--host", default=None, help="this node's host name in the topology (default --name)")
    g.add_argument("--local", action="store_true", help="the topology runs as a local rehearsal")
    g.add_argument("--workdir", type=Path, default=None, help="work directory of the local rehearsal")


def _tls_args(sp: argparse.ArgumentParser, *, connects: bool) -> None:
    g = sp.add_argument_group("TLS", "encrypt control and chunk traffic (docs/security.md)")
    g.add_argument("--tls-cert", type=Path, default=None, metavar="FILE",
                   help="serve TLS too, with this certificate (DIR/cert.pem and DIR/key.pem that do "
                        "not exist yet are made, and the fingerprint logged)")
    g.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="the certificate's private key")
    g.add_argument("--tls-required", action="store_true",
                   help="refuse control and chunk requests that do not use TLS")
    if connects:
        g.add_argument("--tls-fingerprint", action="append", default=[], metavar="SHA256",
                       help="connect over TLS, trusting a server whose certificate has this SHA-256 "
                            "fingerprint (repeat for each source)")
        g.add_argument("--tls-ca", type=Path, default=None, metavar="FILE",
                       help="connect over TLS, trusting certificates this CA signed (names checked)")


def _server_tls(args: argparse.Namespace) -> ServerTLS | None:
    cert, key = args.tls_cert, args.tls_key
    if cert is None and key is None:
        if args.tls_required:
            raise ConfigError("--tls-required needs a certificate", "give --tls-cert and --tls-key")
        return None
    if cert is None or key is None:
        raise ConfigError("TLS needs both --tls-cert and --tls-key")
    if not cert.exists() and not key.exists():
        if cert.parent != key.parent or (cert.name, key.name) != (CERT_FILE, KEY_FILE):
            raise ConfigError(f"{cert} does not exist", f"make it with `lanscatter tls new --dir {cert.parent}`")
        fp = new_identity(cert.parent, args.name or socket.gethostname())
        log.info("made a TLS certificate in %s, fingerprint %s", cert.parent, fp)
    tls = server_tls(cert, key, required=args.tls_required)
    log.info("serving TLS too; certificate fingerprint %s", tls.fingerprint)
    return tls


def _client_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls_fingerprint and args.tls_ca is None:
        return None
    try:
        return client_context(args.tls_fingerprint, args.tls_ca)
    except ValueError as exc:
        raise ConfigError(f"--tls-fingerprint: {exc}", "copy it from `lanscatter tls fingerprint FILE`") from None


@dataclass(frozen=True, slots=True)
class _Placement:
    site: str | None = None
    parent_site: str | None = None
    link_map: LinkMap | None = None


def _placement(args: argparse.Namespace) -> _Placement:
    """Where this node sits in the site tree, when --topology is given."""
    if args.topology is None:
        return _Placement()
    from lanscatter.topology import derive_plan, load_topology

    plan = derive_plan(load_topology(args.topology), local=args.local, workdir=args.workdir)
    name = args.host or args.name
    try:
        host = plan.host(name)
    except KeyError:
        raise ConfigError(f"host {name!r} is not in {args.topology}",
                          "pass --host with one of: " + ", ".join(h.name for h in plan.hosts)) from None
    return _Placement(host.site, plan.site(host.site).parent, plan.link_map)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    m = sub.add_parser("master", help="scan a folder and coordinate peers that mirror it",
                       description="Scan DIR into chunks, serve them and coordinate peers. The folder "
                                   "is only read, never written. Changes are picked up by rescans.")
    m.add_argument("folder", type=Path, metavar="DIR")
    _common(m, DEFAULT_MASTER_PORT, name="master")
    m.add_argument("--chunk-size", type=_chunk_size, default=AUTO, metavar="SIZE|auto",
                   help="target chunk size (default auto: a power of two from 1M to 64M giving at least "
                        "2000 chunks and, with --topology, large enough that the busiest site's master "
                        "starts at most 2,500 transfers a second; a power of two for cdc chunking)")
    m.add_argument("--chunking", choices=KINDS, default=CDC,
                   help="cdc (default): content-defined boundaries, so an insertion changes about one "
                        "chunk; fixed: every --chunk-size bytes, for data only overwritten in place")
    m.add_argument("--slots", type=int, default=3, help="concurrent uploads from the master (default 3)")
    m.add_argument("--rescan-interval", type=float, default=60.0, metavar="S",
                   help="rescan at least this often, in seconds (file-system events also trigger one)")
    m.add_argument("--expect-peers", type=int, default=0, metavar="N",
                   help="before the first scan, wait until N peers have joined (at most --expect-wait "
                        "seconds), so peers started at the same time get the first generation from its start")
    m.add_argument("--expect-wait", type=float, default=10.0, metavar="S",
                   help="the longest wait for --expect-peers (default 10)")
    g = m.add_argument_group("publishing", "when a version is published, and what is refused (docs/versions.md)")
    g.add_argument("--publish", choices=PUBLISH_MODES, default=None,
                   help="on-change: once the folder settled; on-switch: when DIR, a symlink to a release "
                        "folder, is switched; manual: only on `lanscatter publish`. Default: on-switch for "
                        "a symlink DIR, else on-change. Every mode publishes DIR as found at start")
    g.add_argument("--settle", type=float, default=DEFAULT_SETTLE_S, metavar="S",
                   help=f"on-change: publish once nothing changed for S seconds (default {DEFAULT_SETTLE_S:g})")
    g.add_argument("--allow-shrink", action="store_true",
                   help=f"publish an empty folder, or one without more than {MAX_SHRINK:.0%}% of the files of "
                        "the last version (refused by default: the hosts would delete them)")
    g = m.add_argument_group("tree activation", "switching every host together (docs/versions.md)")
    g.add_argument("--activate", choices=("host", "tree"), default="host",
                   help="tree: the hosts switch to a version when this origin commits it, once every host "
                        "joined holds it; a commit past --commit-deadline is reported as an error. host "
                        "(default): the commit is still sent, and a commit not made in time is only shown")
    g.add_argument("--commit-deadline", type=_seconds, default=DEFAULT_DEADLINE_S, metavar="S",
                   help=f"report a version not committed this long after it was published (default "
                        f"{DEFAULT_DEADLINE_S:g} s)")
    _allow_nat(m)
    m.add_argument("--signing-key", type=Path, default=None, metavar="FILE",
                   help="the origin's private key, which signs every version (`lanscatter keys new`). "
                        f"Default: {PRIVATE_KEY_FILE} in the state folder, created on the first start")
    _tls_args(m, connects=False)
    _topology_args(m)
    m.set_defaults(func=run_master)

    p = sub.add_parser("peer", help="join a master and mirror its folder into DIR",
                       description="Make DIR an exact mirror of the master's folder: missing files "
                                   "downloaded, changed ones overwritten, extraneous ones deleted.")
    p.add_argument("master", metavar="HOST[:PORT]", help=f"the master (default port {DEFAULT_MASTER_PORT})")
    p.add_argument("folder", type=Path, metavar="DIR")
    _common(p, DEFAULT_PEER_PORT)
    p.add_argument("--dl-rate", type=mbit_to_bytes, default=None, metavar="MBIT",
                   help="download limit in Mbit/s (default unlimited)")
    p.add_argument("--slots", type=int, default=2, help="concurrent downloads and uploads (default 2)")
    p.add_argument("--connect-timeout", type=float, default=60.0, metavar="S",
                   help="give up if the master never answers within this (default 60 s)")
    p.add_argument("--exit-when-synced", action="store_true", help="exit 0 once the folder is complete")
    p.add_argument("--dry-run", action="store_true",
                   help="list what a sync would download, overwrite and delete in DIR, then exit without "
                        "changing anything")
    alternate_arg(p)
    _adopt_arg(p)
    _scrub_arg(p)
    _origin_key_arg(p)
    _activation_args(p)
    _tls_args(p, connects=True)
    p.set_defaults(func=run_peer)

    r = sub.add_parser("proxy", help="relay: a peer of an upstream swarm and the master of this site",
                       description="Join the upstream swarm at HOST[:PORT] as a peer that uploads nothing "
                                   "back, mirror into DIR, and be the master of this site's swarm, "
                                   "announcing each chunk downstream as soon as it is verified.")
    r.add_argument("master", metavar="UPSTREAM[:PORT]",
                   help=f"the upstream master or relay (default port {DEFAULT_MASTER_PORT})")
    r.add_argument("folder", type=Path, metavar="DIR")
    _common(r, DEFAULT_MASTER_PORT)
    r.add_argument("--peer-port", type=int, default=DEFAULT_PEER_PORT,
                   help=f"the upstream-side chunk port (default {DEFAULT_PEER_PORT}; serves nothing upstream)")
    r.add_argument("--dl-rate", type=mbit_to_bytes, default=None, metavar="MBIT",
                   help="download limit from upstream in Mbit/s (default unlimited)")
    r.add_argument("--slots", type=int, default=3,
                   help="concurrent downloads from upstream and uploads to the site (default 3)")
    r.add_argument("--connect-timeout", type=float, default=300.0, metavar="S",
                   help="give up if the upstream never answers within this (default 300 s)")
    r.add_argument("--store-and-forward", action="store_true",
                   help="announce nothing to this site until the whole generation is here (for "
                        "comparison: by default each chunk is passed on as soon as it is verified)")
    alternate_arg(r)
    gateway_args(r)
    _adopt_arg(r)
    _scrub_arg(r)
    _allow_nat(r)
    _origin_key_arg(r)
    _activation_args(r)
    _tls_args(r, connects=True)
    _topology_args(r)
    r.set_defaults(func=run_proxy)


def _adopt_arg(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--adopt", action="store_true",
                    help="make DIR a mirror even though this node never synced it, deleting the files in it "
                         "that the version lacks (without it, a first sync that would delete anything "
                         "stops and says what)")


def _allow_nat(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--allow-nat", action="store_true",
                    help="accept peers whose own address differs from the one this node sees (a NAT "
                         "between them); a host that can relay a peer's join can then fetch chunks as "
                         "that peer (docs/security.md)")


def swarm_secret(args: argparse.Namespace) -> SwarmKey | None:
    """The swarm's key to run with, stretched here once for the whole process (auth.py); None only
    with --insecure. From --secret-file, --secret, or the environment: the secret in
    LANSCATTER_SECRET, or the key a supervisor stretched already in LANSCATTER_SWARM_KEY."""
    if args.secret_file is not None and args.secret is not None:
        raise ConfigError("the swarm secret was given twice (--secret-file and --secret)", "give one")
    stretched: SwarmKey | None = None
    if args.secret_file is not None:
        try:
            secret: str | None = args.secret_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the swarm secret from {args.secret_file}: "
                              f"{getattr(exc, 'strerror', None) or exc}", SECRET_HINT) from None
        if not secret:
            raise ConfigError(f"the swarm secret file {args.secret_file} is empty", SECRET_HINT)
    elif args.secret is not None:
        log.warning("the swarm secret given with --secret is visible to every user of this host (ps); "
                    "use --secret-file or LANSCATTER_SECRET")
        secret = args.secret
    else:
        secret = os.environ.get("LANSCATTER_SECRET", "").strip() or None
        if os.environ.get(SWARM_KEY_ENV, "").strip():
            if secret:
                raise ConfigError(f"both LANSCATTER_SECRET and {SWARM_KEY_ENV} are set",
                                  f"unset {SWARM_KEY_ENV} (`lanscatter up` sets it for the roles it starts)")
            stretched = SwarmKey.from_hex(os.environ[SWARM_KEY_ENV])
    if args.insecure:
        if args.secret_file is not None or args.secret is not None:
            raise ConfigError("--insecure and a swarm secret were both given", "drop one of them")
        ignored = "LANSCATTER_SECRET" if secret else SWARM_KEY_ENV if stretched else None
        log.warning("INSECURE: running with no swarm secret%s; anyone who reaches this node can join, "
                    "fetch every chunk and, from a master, command its peers",
                    f" ({ignored} ignored)" if ignored else "")
        return None
    if stretched is not None:
        return stretched
    if not secret:
        raise ConfigError("no swarm secret: a node refuses to run open", f"{SECRET_HINT} (or pass "
                          "--insecure to run open on a network you trust)")
    check_secret(secret)
    return SwarmKey.stretch(secret)


def _state_dir(args: argparse.Namespace, role: str) -> Path:
    if args.state_dir:
        return args.state_dir
    key = hashlib.sha256(str(args.folder.resolve()).encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "lanscatter" / f"{role}-{key}"


def split_hostport(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return host.strip("[]"), int(port)
    return text.strip("[]"), default_port


def _log_to_file(args: argparse.Namespace) -> None:
    if args.log_file is None:
        return
    try:
        handler = logging.FileHandler(args.log_file, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the log file {args.log_file}: {exc.strerror}",
                          "give a --log-file in a folder that exists and is writable") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


# Each command imports its own role when it runs: a peer does not load the master's scanner and
# watcher, nor the relay's planner, before it can join (start-up, docs/benchmarks.md).

def run_master(args: argparse.Namespace) -> int:
    from lanscatter.roles.master import MasterNode, MasterOptions
    from lanscatter.roles.node_progress import node_report

    _log_to_file(args)
    where = _placement(args)
    opts = MasterOptions(folder=args.folder, state_dir=_state_dir(args, "master"), host=args.listen,
                         port=args.port, name=args.name or "master", chunk_size=args.chunk_size,
                         chunking=args.chunking,
                         secret=swarm_secret(args), ul_rate=args.ul_rate, slots=args.slots,
                         rescan_interval=args.rescan_interval, compress=not args.no_compress,
                         site=where.site, link_map=where.link_map, expect_peers=max(0, args.expect_peers),
                         expect_wait_s=args.expect_wait, allow_nat=args.allow_nat,
                         signing_key=args.signing_key, tls=_server_tls(args), publish=args.publish,
                         settle_s=max(0.0, args.settle), allow_shrink=args.allow_shrink,
                         activate=args.activate, commit_deadline_s=args.commit_deadline)
    node = MasterNode(opts, progress=_scan_progress)
    summary: list[str] = []

    async def body() -> None:
        await node.start()
        _write_port(args, node.port)
        try:
            await _report_loop(node.status, args.json)
        finally:
            from lanscatter.topology.summary import summary_lines  # (at the end: not on the way to start)

            bottleneck = _bottleneck(where.link_map, opts.name, where.site)
            summary.extend(summary_lines(node_report(node.status(), bottleneck=bottleneck, log_file=_log_path(args))))
            await node.stop()

    code = _run(body)
    print(*summary, sep="\n", flush=True, file=sys.stderr if args.json else sys.stdout)
    return code


def _bottleneck(links: LinkMap | None, name: str, site: str | None) -> float | None:
    """The rate of the ideal run (bytes/s), when --topology gave the links and this master's site is
    the whole tree (the master of a tree with more sites sees only its relays finish, not their sites)."""
    if links is None or site is None or any(s != site for s in links.node_site.values()):
        return None
    rate = ideal_time(links, name, 1.0).bytes_per_s
    return rate if math.isfinite(rate) else None


def _log_path(args: argparse.Namespace) -> str | None:
    return str(Path(args.log_file).resolve()) if args.log_file is not None else None


def run_peer(args: argparse.Namespace) -> int:
    from lanscatter.roles.node_progress import follow_peer
    from lanscatter.roles.peer import PeerNode
    from lanscatter.roles.peer_options import PeerOptions

    _log_to_file(args)
    host, port = split_hostport(args.master, DEFAULT_MASTER_PORT)
    opts = PeerOptions(master=host, master_port=port, folder=args.folder,
                       state_dir=_state_dir(args, "peer"), host=args.listen, port=args.port,
                       name=args.name, secret=swarm_secret(args), ul_rate=args.ul_rate, dl_rate=args.dl_rate,
                       dl_slots=args.slots, ul_slots=args.slots, compress=not args.no_compress,
                       connect_timeout=args.connect_timeout, scrub_rate=args.scrub_rate,
                       origin_key=args.origin_key, tls=_client_tls(args), tls_server=_server_tls(args),
                       adopt=args.adopt, dry_run=args.dry_run, activate=args.activate, keep=args.keep,
                       alternates=tuple(args.alternate))
    node = PeerNode(opts)
    if args.dry_run:
        async def preview() -> None:
            try:
                await node.run()
            finally:
                await node.stop()
        code = _run(preview)
        if node.folder.preview is not None:
            print(node.folder.preview.listing(), flush=True)
        return code

    async def run() -> None:
        await node.start_server()
        _write_port(args, node.port)
        await node.run()

    reporter = (_report_loop(node.status, True, until_synced=args.exit_when_synced) if args.json
                else follow_peer(node, "peer", until_synced=args.exit_when_synced))
    return _run_with_summary(node, "peer", reporter, node.stop, run=run, as_json=args.json, log_file=_log_path(args))


def run_proxy(args: argparse.Namespace) -> int:
    from lanscatter.roles.node_progress import follow_peer
    from lanscatter.roles.peer_options import PeerOptions
    from lanscatter.roles.relay import RelayNode, RelayOptions

    _log_to_file(args)
    host, port = split_hostport(args.master, DEFAULT_MASTER_PORT)
    where = _placement(args)
    peer = PeerOptions(master=host, master_port=port, folder=args.folder,
                       state_dir=_state_dir(args, "relay"), host=args.listen, port=args.peer_port,
                       name=args.name, secret=swarm_secret(args), ul_rate=args.ul_rate, dl_rate=args.dl_rate,
                       dl_slots=args.slots, ul_slots=0, compress=not args.no_compress,
                       connect_timeout=args.connect_timeout, role="relay", serve=False,
                       scrub_rate=args.scrub_rate, origin_key=args.origin_key, tls=_client_tls(args),
                       adopt=args.adopt, activate=args.activate, keep=args.keep,
                       alternates=tuple(args.alternate))
    relay = RelayOptions(peer=peer, port=args.port, slots=args.slots, site=where.site,
                         upstream_site=where.parent_site, link_map=where.link_map,
                         store_and_forward=args.store_and_forward, allow_nat=args.allow_nat,
                         tls=_server_tls(args))
    elected = gateway_options(args, relay)
    if elected is not None:
        from lanscatter.roles.gateway import GatewayNode

        gateway = GatewayNode(elected)
        return _run(lambda: _run_beside(gateway.run(), _report_loop(gateway.status, args.json), gateway.stop))
    node = RelayNode(relay)

    async def run() -> None:
        await node.start()
        _write_port(args, node.port)
        await node.run()

    reporter = _report_loop(node.status, True) if args.json else follow_peer(node.upstream, "relay")
    return _run_with_summary(node.upstream, "relay", reporter, node.stop, run=run, as_json=args.json,
                             site_status=node.status, log_file=_log_path(args))


def _write_port(args: argparse.Namespace, port: int) -> None:
    """--port-file: the port this node listens on, written whole (a reader never sees half of it)."""
    if args.port_file is not None:
        write_text_atomic(args.port_file, f"{port}\n")


def _run_with_summary(peer: PeerNode, role: str, reporter: Coroutine[Any, Any, None],
                      stop: Callable[[], Awaitable[None]],
                      run: Callable[[], Coroutine[Any, Any, None]] | None = None, as_json: bool = False,
                      site_status: Callable[[], StatusDoc] | None = None, log_file: str | None = None) -> int:
    """Run a peer or relay beside its reporter; print its summary when it ends (not after an error:
    the error and its hint say it all), on stderr when stdout carries JSON lines. A relay adds the
    summary of the site it serves (`site_status`), as a master does; both name the log file."""
    from lanscatter.roles.node_progress import node_report, peer_summary, snapshot

    summary: list[str] = []

    async def stop_and_sum_up() -> None:
        summary.append(peer_summary(role, snapshot(peer), peer.sync_seconds(), peer.downloaded_chunks,
                                    peer.folder.local_copies, peer.counters.rx_bytes, peer.downloaded_bytes))
        if site_status is not None:
            from lanscatter.topology.summary import summary_lines  # (at the end: not on the way to start)

            summary.extend(summary_lines(node_report(site_status(), log_file=log_file)))
        elif log_file is not None:
            summary.append(f"  log: {log_file}")
        await stop()

    code = _run(lambda: _run_beside((run or peer.run)(), reporter, stop_and_sum_up))
    print(*summary, sep="\n", flush=True, file=sys.stderr if as_json else sys.stdout)
    return code


async def _run_beside(run: Coroutine[Any, Any, None], reporter: Coroutine[Any, Any, None],
                      stop: Callable[[], Awaitable[None]]) -> None:
    """A node's run and its progress reporter: the first to end ends both; an error in either is
    raised (the refusal, the connection error, or a bug), never taken for a normal end."""
    tasks = [asyncio.create_task(run), asyncio.create_task(reporter)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            if t.done():
                t.result()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await stop()


def _run(body: Callable[[], Awaitable[None]]) -> int:
    """Run a node until it ends or SIGINT/SIGTERM stops it (exit 0). Any other cancellation is a
    bug and must not look like a clean stop."""
    stopped: list[int] = []

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None

        def stop(sig: int) -> None:
            stopped.append(sig)
            task.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop, sig)
        await body()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        return 0
    except asyncio.CancelledError:
        if stopped:
            return 0
        log.error("stopped by an unexpected internal cancellation")
        return 1
    return 0


def _scan_progress() -> Callable[[int, int], None] | None:
    """A rich progress bar for the first scan when stderr is a terminal, else log lines."""
    if not sys.stderr.isatty():
        last = [0.0]

        def log_line(done: int, total: int) -> None:
            if time.monotonic() - last[0] > 5 or done == total:
                last[0] = time.monotonic()
                log.info("hashing: %s of %s", format_bytes(done), format_bytes(total))
        return log_line
    from rich.progress import BarColumn, Progress, TextColumn

    from lanscatter.roles.node_progress import LogsAboveBar

    bar = Progress("hashing", BarColumn(), TextColumn("{task.fields[figures]}"), transient=True)
    task = bar.add_task("hash", total=None, figures="")
    shown = LogsAboveBar(bar)
    eta, meter = MeanRateEta(), RateMeter()

    def update(done: int, total: int) -> None:
        now = time.monotonic()
        meter.sample(now, done, 0)
        left = eta.update(done, total, now)
        figures = (f"{format_bytes(done)} of {format_bytes(total)}  {format_byte_rate(meter.rates(now)[0])}  "
                   + ("ETA --" if left is None else f"ETA {left:.0f}s"))
        bar.update(task, completed=done, total=total, figures=figures)
        if done >= total:
            shown.stop()
    return update


async def _report_loop(status: Callable[[], StatusDoc], as_json: bool, *, until_synced: bool = False) -> None:
    """JSON status lines every second with --json (else only the wait: masters log what they do)."""
    last_line = 0.0
    while True:
        st = status()
        now = time.monotonic()
        if as_json and now - last_line >= 1.0:
            last_line = now
            print(json.dumps({"role": st.role, "name": st.name, "generation": st.generation, "chunks": st.chunks,
                              "bytes": st.bytes, "synced": st.synced, "have": st.nodes[0].have if st.nodes else 0}),
                  flush=True)
        if until_synced and st.synced:
            log.info("folder complete (generation %s)", (st.generation or "")[:12])
            return
        await asyncio.sleep(0.25)
