"""A peer's control connection to its master (or upstream relay): joining, staying joined, and the
one way frames go out. Owns no folder and no downloads: what arrives is handed to the node.

Joining: the handshake (handshake.py: Challenge -> sealed Hello -> the master's sealed Welcome, its
proof of the secret); nothing the master says is handed on before its Welcome proved the secret,
and every later frame is sealed for this connection. The link reconnects with backoff when the
master goes away, but gives up with a clear error when a master it never reached does not answer
within `connect_timeout`, and at once when the master refuses it (wrong secret, protocol version,
a TLS pin or requirement it does not meet: the operator must act).

With several masters (a site's standby gateways, `MasterRound`), a peer that loses its master, or
is answered 503 by a standby, tries the next one in turn (the one a standby named first); a frozen
master is noticed by a 4 s ping, and one that does not answer the upgrade within 3 s is passed over.

Every frame to the master goes through one writer task (`post`): download tasks are cancelled
freely, a send is never cut off half-way, and frames are sealed in the order they go out. Logs as
the peer role (`lanscatter.roles.peer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from lanscatter.core import protocol as p
from lanscatter.core.auth import Auth, master_clock_offset
from lanscatter.core.errors import ConfigError, RemoteProtocolError
from lanscatter.core.handshake import Channel, PeerHandshake
from lanscatter.net.server import TLS_REQUIRED_TEXT
from lanscatter.net.tls import PinMismatch, TLSRefused

log = logging.getLogger("lanscatter.roles.peer")

_FIRST_JOIN_RETRY_S = 0.2
_FAILOVER_RETRY_S = 1.0        # between masters of a round of gateways
_FAILOVER_HEARTBEAT_S = 4.0    # ping after this long silent, give up half of it later
STANDBY_STATUS = 503           # what a standby gateway answers at /ws (roles/gateway.py) ...
ACTIVE_HEADER = "X-Lanscatter-Active"   # ... naming the active one (host:port) when it knows it
_FAILOVER_JOIN_S = 3.0         # a gateway that does not answer the upgrade by then is frozen: next

STATS_EVERY_S = 1.0
BACKLOG = 8              # frames queued for the master before `room` waits


class Outbox:
    """One connection's frames for the master, in order, and a wait for room in it: the writer
    wakes `room()`'s waiters as it takes a frame below BACKLOG, or when the connection ends."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False

    def put(self, text: str) -> None:
        self._queue.put_nowait(text)
        if self._queue.qsize() >= BACKLOG:
            self._room.clear()

    async def get(self) -> str:
        text = await self._queue.get()
        if self._queue.qsize() < BACKLOG:
            self._room.set()
        return text

    def close(self) -> None:
        """No more frames go out: whoever waits for room goes on (what they post is dropped)."""
        self._closed = True
        self._room.set()

    async def room(self) -> None:
        """Until fewer than BACKLOG frames wait here, or the connection ended."""
        while not self._closed and self._queue.qsize() >= BACKLOG:
            await self._room.wait()


class MasterRound:
    """The masters a peer may join, tried in turn: its master, then its alternates (a site's
    standby gateways, in the tree's order)."""

    def __init__(self, masters: tuple[tuple[str, int], ...]) -> None:
        self.masters = masters
        self._index = 0
        self._named_active: tuple[str, int] | None = None    # as the last standby asked said

    @property
    def current(self) -> tuple[str, int]:
        return self.masters[self._index]

    @property
    def several(self) -> bool:
        return len(self.masters) > 1

    def standby_named(self, active: str) -> None:
        """A standby said which gateway is active (host:port): the next attempt goes there."""
        host, sep, port = active[:300].rpartition(":")
        if sep and port.isdigit():
            self._named_active = (host.strip("[]"), int(port))

    def advance(self) -> None:
        """The next master to try: the one a standby named, else the next in the list."""
        self._index = (self._index + 1) % len(self.masters)
        if self._named_active in self.masters:
            self._index = self.masters.index(self._named_active)
        self._named_active = None


class MasterLink:
    """The control connection, kept up until cancelled. The node says what to join with (`hello`,
    given the address this end connects from), takes each message (`handle`) and the Welcome
    with how far the master's clock is ahead of this host's (`welcomed`), stops its downloads when a connection ends (`lost`), and gives its figures once a
    second while joined (`stats`)."""

    def __init__(self, *, masters: tuple[tuple[str, int], ...], auth: Auth, tls: ssl.SSLContext | None,
                 local_addr: tuple[str, int] | None, connect_timeout: float,
                 hello: Callable[[str], p.Hello], welcomed: Callable[[p.Welcome, float], None],
                 handle: Callable[[p.Message], Awaitable[None]], lost: Callable[[], Awaitable[object]],
                 stats: Callable[[], None]) -> None:
        self.round = MasterRound(masters)
        self._auth = auth
        self._tls = tls
        self._local_addr = local_addr
        self._connect_timeout = connect_timeout
        self._hello = hello
        self._welcomed = welcomed
        self._handle = handle
        self._lost = lost
        self._stats = stats
        self.connected = False
        self.joined_once = False             # after a first welcome, never give up reconnecting
        self.connect_attempts = 0            # since the last join (for the operator's state line)
        self.connect_error: str | None = None
        self.protocol = 1                    # as agreed with the master at the last join
        self.control_rx_bytes = 0            # bytes of the master's control frames (manifests mostly)
        self._outbox: Outbox | None = None

    @property
    def master_text(self) -> str:
        """The master this node joins (or tries next), as host:port."""
        host, port = self.round.current
        return f"{host}:{port}"

    async def run(self) -> None:
        """Stay joined until cancelled; raises LanscatterError when refused or never answered."""
        connector = aiohttp.TCPConnector(limit=0, local_addr=self._local_addr)
        async with aiohttp.ClientSession(connector=connector) as session:
            first_try = time.monotonic()
            backoff = 0.5
            while True:
                try:
                    self.connect_attempts += 1
                    await self._session_once(session)
                    backoff = 0.5
                except (aiohttp.ClientConnectionError, ConnectionError, TimeoutError) as exc:
                    self.connect_error = connect_failure(exc)
                    if not self.joined_once and time.monotonic() - first_try > self._connect_timeout:
                        raise ConfigError(
                            f"the master at {self.master_text} did not answer for "
                            f"{self._connect_timeout:.0f} s ({self.connect_error})",
                            "check the address and port, that the master runs there, and that no firewall "
                            "blocks the port; --connect-timeout waits longer") from None
                    log.debug("connect failed: %s", exc)
                except RemoteProtocolError as exc:
                    log.warning("master connection closed: %s", exc)
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is None or task.cancelling():
                        raise                  # we are being stopped
                    # A cancellation meant for a download reached the session: never a silent exit.
                    log.error("the master connection was cancelled from inside; reconnecting")
                finally:
                    self.connected = False
                    await self._lost()
                if self.round.several:
                    # Whichever gateway is active answers; a standby takes over within seconds, so
                    # the round of them is tried again soon, from the one a standby named.
                    self.round.advance()
                    await asyncio.sleep(min(backoff, _FAILOVER_RETRY_S))
                    backoff = min(backoff * 2, 5.0)
                elif self.joined_once:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                else:
                    # Not joined yet: the master is usually just starting, and a refused connect
                    # costs nothing, so try often; the first generation should not wait for us.
                    await asyncio.sleep(_FIRST_JOIN_RETRY_S)

    async def _session_once(self, session: aiohttp.ClientSession) -> None:
        host, port = self.round.current
        url = f"{'wss' if self._tls else 'http'}://{host}:{port}/ws"
        # The manifest is the one large frame, and only a master sends it: the limit is sized for
        # it; frames before the Welcome are held to MAX_FRAME before they are parsed.
        # With standby gateways, a frozen or cut-off master must be noticed before one takes over.
        heartbeat = _FAILOVER_HEARTBEAT_S if self.round.several else 20
        join_limit = _FAILOVER_JOIN_S if self.round.several else None
        async with _refused_as_error(host, port, self.round.standby_named), \
                _ws_within(session, join_limit, url, heartbeat=heartbeat, max_msg_size=p.MAX_MANIFEST_FRAME,
                           ssl=self._tls or True, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
            sockname = ws.get_extra_info("sockname")
            hs = PeerHandshake(self._auth, self._hello(sockname[0] if sockname else ""),
                               them=f"the master at {host}:{port}")
            await ws.send_bytes(hs.receive_challenge(await _handshake_frame(ws)))
            sent = time.time()
            welcome = hs.receive_welcome(await _handshake_frame(ws))
            channel = hs.channel
            assert channel is not None
            self._welcomed(welcome, master_clock_offset(welcome.clock_ms, sent, time.time()))
            self.protocol = welcome.protocol
            self.connected = True
            self.joined_once = True
            self.connect_attempts, self.connect_error = 0, None
            log.info("joined %s as %s", url, welcome.name)
            outbox = self._outbox = Outbox()
            helpers = [asyncio.create_task(_writer(ws, outbox, channel)),
                       asyncio.create_task(self._stats_loop())]
            try:
                async for frame in ws:
                    if frame.type == WSMsgType.BINARY:
                        self.control_rx_bytes += len(frame.data)
                        handling = self._handle(p.decode(channel.open(frame.data, "the master"), "the master",
                                                         p.MAX_MANIFEST_FRAME))
                        # A whole manifest's frame is tens of megabytes: not held while it is applied.
                        del frame
                        await handling
                    elif frame.type == WSMsgType.TEXT:
                        raise RemoteProtocolError("the master sent an unsealed frame")
            finally:
                self._outbox = None
                outbox.close()
                for t in helpers:
                    t.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            self._stats()

    def post(self, msg: p.Message, min_protocol: int = 1) -> None:
        """Queue a frame for the master if the protocol agreed at the last join carries it
        (dropped when not connected: the next join resends state)."""
        if self.protocol >= min_protocol and self._outbox is not None:
            self._outbox.put(p.encode(msg))

    async def room(self) -> None:
        """Wait until the frames queued for the master are fewer than BACKLOG (or there is no
        connection): what a node sends in many frames goes out as fast as the link takes it,
        not queued at once (a Have of a million chunks is 2,000 frames, some 70 MB of text)."""
        if self._outbox is not None:
            await self._outbox.room()

    def ending_notice(self, transfer: int) -> Callable[[float], None]:
        """What a download thread calls when its last bytes are on their way (the master plans
        the slot's next transfer then)."""
        loop = asyncio.get_running_loop()

        def notice(left_s: float) -> None:
            loop.call_soon_threadsafe(self.post, p.Ending(transfer, round(left_s, 3)))
        return notice

    def receiving_notice(self, transfer: int) -> Callable[[], None]:
        """What a download thread calls at its first bytes (the master shares the ports it
        crosses with it from then on)."""
        loop = asyncio.get_running_loop()

        def notice() -> None:
            loop.call_soon_threadsafe(self.post, p.Receiving(transfer))
        return notice


async def _writer(ws: aiohttp.ClientWebSocketResponse, outbox: Outbox, channel: Channel) -> None:
    while True:
        text = await outbox.get()
        try:
            await ws.send_bytes(channel.seal(text.encode()))
        except ConnectionError as exc:
            log.debug("master connection lost while sending: %s", exc)
            return


def connect_failure(exc: BaseException) -> str:
    """Why a connection to the master failed, in words (aiohttp's text names TLS settings even for
    plain HTTP: 'ssl:default')."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        err = exc.os_error
        if isinstance(err, socket.gaierror):
            # a resolver's error numbers are not errno values (-2 would read "unknown error -2")
            return f"cannot resolve {exc.host}: {err.strerror or 'no such host'}"
        text = os.strerror(err.errno) if err.errno else (err.strerror or str(err))
        return text[:1].lower() + text[1:]
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timed out"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"answered HTTP {exc.status}, not a lanscatter master"
    return str(exc) or type(exc).__name__


@contextlib.asynccontextmanager
async def _ws_within(session: aiohttp.ClientSession, limit: float | None, url: str,
                     **kwargs: Any) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A websocket to `url` whose upgrade is answered within `limit` seconds (None: no limit
    beyond the session's): a frozen master accepts the connection and never answers."""
    ws = await asyncio.wait_for(session.ws_connect(url, **kwargs), limit)
    try:
        yield ws
    finally:
        await ws.close()


@contextlib.asynccontextmanager
async def _refused_as_error(host: str, port: int,
                            standby_named: Callable[[str], None] | None = None) -> AsyncIterator[None]:
    """A master that is not the pinned one, or that speaks only TLS to a peer without it: the
    operator must act, so it is an error exit, not a reconnect."""
    try:
        yield
    except aiohttp.ClientConnectorCertificateError as exc:
        got = exc.certificate_error
        what = f"its certificate's fingerprint is {got.got}" if isinstance(got, PinMismatch) else str(got)
        raise TLSRefused(f"the master at {host}:{port} is not the one this node trusts: {what}",
                         "check the master's tls_fingerprint in the site tree (`lanscatter tls "
                         "fingerprint` on the master's certificate) or --tls-fingerprint/--tls-ca") from None
    except aiohttp.ClientConnectorSSLError as exc:
        raise TLSRefused(f"no TLS with the master at {host}:{port} ({exc.os_error})",
                         "the site tree's tls: for this link must be the same on both hosts") from None
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status == STANDBY_STATUS:
            if standby_named is not None and exc.headers is not None:
                standby_named(exc.headers.get(ACTIVE_HEADER, ""))
            raise StandbyAnswer(f"{host}:{port} is a standby gateway") from None
        if exc.status != 426:
            # A web server, or anything else that is no lanscatter master: tried again like a
            # master that does not answer (the next gateway, or until --connect-timeout).
            raise NotAMaster(f"{host}:{port} answered HTTP {exc.status}, not a lanscatter master") from None
        raise TLSRefused(f"the master at {host}:{port} says: {TLS_REQUIRED_TEXT.strip()}",
                         "give this node --tls-fingerprint (or --tls-ca), as the site tree's tls: says") from None


async def _handshake_frame(ws: aiohttp.ClientWebSocketResponse) -> str | bytes:
    """The master's next handshake frame; a master that closes or stalls is a connection failure
    (retried), not a refusal."""
    msg = await ws.receive(timeout=15)
    if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
        raise ConnectionError("the master closed the connection during the handshake")
    data: str | bytes = msg.data
    if len(data) > p.MAX_FRAME:        # (the connection's limit is a manifest's)
        raise RemoteProtocolError(f"the master sent a handshake frame of {len(data)} bytes")
    return data


class StandbyAnswer(ConnectionError):
    """The master asked is a standby gateway: try the next one."""


class NotAMaster(ConnectionError):
    """What answered at the master's address is no lanscatter master."""
