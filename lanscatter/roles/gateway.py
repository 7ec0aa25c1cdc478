"""A gateway of a site that names standbys (`gateway: [gw-a, gw-b]`): the elected relay, or a
standby peer of its own site.

One process per gateway host, one folder and one state folder in both modes:
- standby: an ordinary peer of the site's swarm, joined to whichever gateway is active (the other
  gateways are its alternates, tried in turn), serving chunks on its peer port. Its master port
  answers `/status`, `/gateway` and, at `/ws`, 503: a site peer that asks it tries the next gateway.
- active: a relay (`relay.py`) on the same ports, with `/gateway` and the `gateway` status field.

Every `poll_s` it asks every other gateway's `/gateway` (a fresh nonce each time; the answer is
bounded and MAC'd under the swarm secret), probes the upstream with a TCP connect, and lets the
election (`core/gateway_election.py`) decide. Taking over: the standby stops, its last manifest
(the origin's signed statement with it) becomes the relay's saved one, so the relay serves its
site what the folder holds before the upstream answers; nothing the folder holds crosses the WAN
again. The relay's Hello names the site's gateways and its term, so the upstream withdraws the
relay it replaces at once (`core/gateway_handover.py`), frozen or not. Stepping down: the relay
stops (the site's peers re-join the active gateway), the standby starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import time
from dataclasses import dataclass, replace

import aiohttp
from aiohttp import web

from lanscatter.core import protocol as p
from lanscatter.core.auth import Auth, endpoint
from lanscatter.core.errors import RemoteProtocolError
from lanscatter.core.gateway_election import (
    ACTIVATE,
    MAX_CLAIM_BYTES,
    STEP_DOWN,
    Election,
    check_nonce,
    claim_from_dict,
    claim_to_dict,
    gateway_key,
)
from lanscatter.core.manifest_wire import to_wire
from lanscatter.core.safe_text import safe_text
from lanscatter.core.status import GatewayStatus, StatusDoc
from lanscatter.disk.atomic_file import write_text_atomic
from lanscatter.net.node_http import add_status_endpoints
from lanscatter.net.server import bind_site
from lanscatter.roles.master_link import ACTIVE_HEADER, STANDBY_STATUS, connect_failure
from lanscatter.roles.peer import PeerNode
from lanscatter.roles.peer_options import PeerOptions
from lanscatter.roles.relay import SAVED_MANIFEST, RelayNode, RelayOptions

log = logging.getLogger("lanscatter.roles.gateway")

POLL_S = 1.0
_STARTING_S = 30.0        # a gateway never heard from is not reported before this
_RESOLVE_S = 2.0          # for each gateway's name at start (an address needs no lookup)


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    relay: RelayOptions                       # what this gateway runs while active
    standby: PeerOptions                      # while standby (its master and alternates set here)
    gateways: tuple[tuple[str, int], ...]     # the site's gateways (address, master port), in order
    rank: int                                 # this one's place among them
    upstreams: tuple[tuple[str, int], ...]    # the swarm the relay joins (probed)
    poll_s: float = POLL_S


class GatewayNode:
    def __init__(self, opts: GatewayOptions) -> None:
        if not 0 <= opts.rank < len(opts.gateways) or len(opts.gateways) < 2:
            raise ValueError("a gateway needs its place among at least two gateways")
        self.opts = opts
        others = [g for i, g in enumerate(opts.gateways) if i != opts.rank]
        # A standby never gives up on its site: when no gateway answers, it is elected itself.
        self._standby_opts = replace(opts.standby, master=others[0][0], master_port=others[0][1],
                                     alternates=tuple(others[1:]), connect_timeout=float("inf"))
        self._key = gateway_key(Auth(opts.standby.secret).join_key)
        self.election = Election(opts.rank, len(opts.gateways), time.monotonic())
        self.relay: RelayNode | None = None
        self.peer: PeerNode | None = None
        self._mode: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None          # the standby's master port
        self._problems: dict[int, str] = {}                # per gateway, the last failure said
        self._answered: set[int] = set()                   # gateways heard from at least once
        self._started = time.monotonic()
        self.takeovers = 0
        self._site: tuple[str, ...] = ()                  # the site's gateways, 'ip:port' (run)

    # ---- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=min(self.opts.poll_s, 1.0) * 0.9)
        connector = aiohttp.TCPConnector(limit=0, local_addr=_local(self.opts.standby.host))
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self._site = await self._site_gateways()
            await self._start_standby()
            try:
                while True:
                    await self._observe(session)
                    decision = self.election.decide(time.monotonic())
                    if decision == ACTIVATE:
                        await self._activate()
                    elif decision == STEP_DOWN:
                        await self._step_down()
                    mode = self._mode
                    assert mode is not None
                    await asyncio.wait({mode}, timeout=self.opts.poll_s)
                    if mode.done():
                        mode.result()          # a refusal or error of the role ends the gateway
                        return
            finally:
                await self._stop_mode()

    async def stop(self) -> None:
        await self._stop_mode()

    async def _observe(self, session: aiohttp.ClientSession) -> None:
        asks = [self._ask(session, rank, addr, port) for rank, (addr, port) in enumerate(self.opts.gateways)
                if rank != self.opts.rank]
        reached, *_ = await asyncio.gather(self._probe_upstream(), *asks)
        self.election.probed(bool(reached), time.monotonic())

    async def _ask(self, session: aiohttp.ClientSession, rank: int, addr: str, port: int) -> None:
        nonce = secrets.token_hex(16)
        tls = self.opts.standby.tls
        host = f"[{addr}]" if ":" in addr else addr
        url = f"{'https' if tls else 'http'}://{host}:{port}/gateway"
        try:
            async with session.get(url, params={"nonce": nonce}, ssl=tls or True) as resp:
                if resp.status != 200:
                    raise RemoteProtocolError(f"answered HTTP {resp.status}")
                body = b""
                while len(body) <= MAX_CLAIM_BYTES and (piece := await resp.content.read(MAX_CLAIM_BYTES + 1)):
                    body += piece
            if len(body) > MAX_CLAIM_BYTES:
                raise RemoteProtocolError("the answer is too long")
            claim = claim_from_dict(self._key, nonce, json.loads(body), rank=rank)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, RemoteProtocolError) as exc:
            self._note(rank, f"{addr}:{port}", safe_text(connect_failure(exc)))
            return
        self._problems.pop(rank, None)
        self._answered.add(rank)
        self.election.heard(claim, time.monotonic())

    def _note(self, rank: int, where: str, problem: str) -> None:
        """One line per gateway when it stops answering (or answers wrongly), not one a second;
        one still starting up is given a while."""
        if rank not in self._answered and time.monotonic() - self._started < _STARTING_S:
            return
        if self._problems.get(rank) is None:
            log.warning("gateway %d (%s) does not answer as one: %s", rank + 1, where, problem)
        self._problems[rank] = problem

    async def _probe_upstream(self) -> bool:
        """Whether this host reaches the swarm it would relay from (a TCP connect: no request).
        Asked even while relaying: a connection already open says nothing for a link cut since
        (its keep-alive notices after 20 s or more)."""
        for addr, port in self.opts.upstreams:
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(min(self.opts.poll_s, 1.0) * 0.9):
                    _reader, writer = await asyncio.open_connection(addr, port, local_addr=_local(self.opts.standby.host))
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return True
        return False

    # ---- the modes ---------------------------------------------------------------------------
    async def _start_standby(self) -> None:
        app = web.Application(client_max_size=2**16)
        app.add_routes([web.get("/ws", self._standby_ws), web.get("/gateway", self.claim_handler)])
        add_status_endpoints(app, self.status, html=True)
        self._runner, _port = await bind_site(app, self.opts.relay.peer.host, self.opts.relay.port,
                                              self.opts.relay.tls)
        self.peer = PeerNode(self._standby_opts)
        self._mode = asyncio.create_task(self.peer.run(), name="standby")

    async def _activate(self) -> None:
        log.info("gateway %d of its site: taking over as the active one (term %d)", self.opts.rank + 1,
                 self.election.term)
        standby = self.peer
        await self._stop_mode()
        if standby is not None and standby.manifest is not None and standby.signed is not None:
            # What the site held: the relay serves it at once, and resumes from it upstream.
            write_text_atomic(self.opts.relay.peer.state_dir / SAVED_MANIFEST, p.encode(p.ManifestMsg(
                to_wire(standby.manifest), statement=standby.signed.statement,
                signature=standby.signed.signature)))
        self.takeovers += 1
        # Its Hello names the site and its term: the upstream withdraws the relay it replaces.
        upstream = replace(self.opts.relay.peer, gateways=self._site, term=self.election.term)
        self.relay = _ElectedRelay(replace(self.opts.relay, peer=upstream), self)
        self._mode = asyncio.create_task(self.relay.run(), name="relay")

    async def _site_gateways(self) -> tuple[str, ...]:
        """The site's gateways as 'ip:port' (the upstream sees addresses, the tree may name hosts):
        every gateway resolves the same names alike, so their lists match. A name that does not
        resolve stays as written, matching no address the upstream sees."""
        loop = asyncio.get_running_loop()
        out = []
        for addr, port in self.opts.gateways:
            with contextlib.suppress(OSError, UnicodeError, TimeoutError):
                async with asyncio.timeout(_RESOLVE_S):
                    infos = await loop.getaddrinfo(addr, port, type=socket.SOCK_STREAM)
                addr = str(infos[0][4][0]) if infos else addr
            out.append(endpoint(addr, port))
        return tuple(out)

    async def _step_down(self) -> None:
        log.info("gateway %d of its site: another one is active, standing by", self.opts.rank + 1)
        await self._stop_mode()
        await self._start_standby()

    async def _stop_mode(self) -> None:
        if self._mode is not None:
            self._mode.cancel()
            await asyncio.gather(self._mode, return_exceptions=True)
            self._mode = None
        if self.relay is not None:
            await self.relay.stop()
            self.relay = None
        # The standby's chunk server and master port wind down together (each waits up to 2 s
        # for requests in flight): a takeover is not held up twice.
        closing = [self.peer.stop()] if self.peer is not None else []
        if self._runner is not None:
            closing.append(self._runner.cleanup())
        await asyncio.gather(*closing)
        self.peer, self._runner = None, None

    # ---- endpoints and status ----------------------------------------------------------------
    async def _standby_ws(self, _request: web.Request) -> web.Response:
        """A site peer asked a standby: 503, naming the active gateway when this one knows it."""
        active = self.election.active_rank(time.monotonic())
        headers = {}
        if active is not None and active != self.opts.rank:
            headers[ACTIVE_HEADER] = _endpoint(*self.opts.gateways[active])
        return web.Response(status=STANDBY_STATUS, text="a standby gateway: join the active one\n", headers=headers)

    async def claim_handler(self, request: web.Request) -> web.Response:
        nonce = request.query.get("nonce", "")
        if not check_nonce(nonce):
            return web.Response(status=400, text="a nonce of 32 hex digits is needed\n")
        return web.json_response(claim_to_dict(self._key, nonce, self.election.claim(time.monotonic())))

    def view(self) -> GatewayStatus:
        """The `gateway` field of the status: this gateway's place, mode and term, and which of the
        site's gateways is active as far as it knows."""
        now = time.monotonic()
        active = self.election.active_rank(now)
        return GatewayStatus(rank=self.opts.rank, active=self.election.active, term=self.election.term,
                             active_gateway=None if active is None else _endpoint(*self.opts.gateways[active]),
                             upstream_ok=self.election.upstream_ok(now), takeovers=self.takeovers)

    def status(self) -> StatusDoc:
        if self.relay is not None:
            return self.relay.status()
        st = self.peer.status() if self.peer is not None else StatusDoc(role="peer")
        return replace(st, gateway=self.view())


class _ElectedRelay(RelayNode):
    """The relay of an elected gateway: `/gateway` beside its routes, the view in its status."""

    def __init__(self, opts: RelayOptions, gateway: GatewayNode) -> None:
        super().__init__(opts)
        self._gateway = gateway

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get("/gateway", self._gateway.claim_handler)
        return app

    def status(self) -> StatusDoc:
        return replace(super().status(), gateway=self._gateway.view())


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _local(host: str) -> tuple[str, int] | None:
    return None if host in ("", "0.0.0.0", "::") else (host, 0)
