"""Binding an aiohttp app to an address, with the errors an operator can act on, and accepting
connections within bounds.

Connections are accepted here rather than by asyncio's server, so that:
- no remote address holds more than `per_address` connections and all together no more than
  `total`, both derived from the descriptor limit (RLIMIT_NOFILE): the rest are answered with a
  short HTTP 503 and closed at once, so a flood from one address neither starves the others nor
  uses up the descriptors a node needs for its files and its own downloads;
- running out of descriptors anyway (EMFILE on accept) pauses accepting for a moment with one
  warning per WARN_EVERY_S, where asyncio's server retries in a tight loop and logs each failure
  with a traceback (about 10,000 a second).

A node that serves TLS keeps one port for both: the first byte of a connection tells a TLS
handshake (0x16) from a plain HTTP request, so `/status` and the operator's pages stay readable by
any HTTP client, LAN peers that need no encryption keep sendfile, and WAN members speak TLS on the
same address and port the site tree gives. When TLS is required, control (`/ws`) and chunk
(`/chunks/...`) requests that arrive in the clear are answered 426 and nothing else. The handshake
is driven by asyncio's own SSL protocol, fed the bytes that were read to tell the two apart.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import ssl
import time
from asyncio.sslproto import SSLProtocol
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from lanscatter.core.errors import ConfigError
from lanscatter.net.congestion import pace_from_birth
from lanscatter.net.tls import ServerTLS, is_tls

log = logging.getLogger("lanscatter.net.server")

_SNIFF_TIMEOUT_S = 10.0         # a connection that says nothing is closed after this
_HANDSHAKE_TIMEOUT_S = 10
TLS_REQUIRED_TEXT = "this node accepts control and chunk requests over TLS only\n"

RESERVED_FDS = 64        # kept for files, downloads, logs: never given to accepted connections
ACCEPT_PAUSE_S = 0.5     # after EMFILE: descriptors come back as connections and files close
WARN_EVERY_S = 10.0
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_REFUSED = b"too many connections from this address or in all; try again later\n"
_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 10\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_REFUSED), _REFUSED))


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    total: int           # open connections accepted by one listener
    per_address: int     # ... from one remote address

    @classmethod
    def from_descriptors(cls, nofile: int | None = None) -> ConnectionLimits:
        """Half of the descriptors beyond RESERVED_FDS (an upload holds its file open beside its
        connection), a quarter of that per address, at most 256 per address."""
        if nofile is None:
            nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            if nofile == resource.RLIM_INFINITY:
                nofile = 2**20
        total = max(16, (nofile - RESERVED_FDS) // 2)
        return cls(total=total, per_address=max(4, min(256, total // 4)))


class _Warner:
    """One warning per WARN_EVERY_S for a recurring condition, saying how often it recurred."""

    def __init__(self) -> None:
        self._last = -WARN_EVERY_S
        self._count = 0

    def __call__(self, message: str, *args: object) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= WARN_EVERY_S:
            log.warning(message + " (%d times in the last %.0f s)", *args, self._count, WARN_EVERY_S)
            self._last, self._count = now, 0


class BoundedSite(web.BaseSite):
    """A TCP site that accepts connections itself, within `limits` (see the module docstring)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: ConnectionLimits,
                 tls: ssl.SSLContext | None = None) -> None:
        super().__init__(runner)
        self._host, self._port = host, port
        self.limits = limits
        self._tls = tls
        self._pending: set[_Sniffer] = set()      # TLS or plain: not told yet
        self.listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._live: dict[str, set[asyncio.BaseTransport]] = {}
        self._open = 0                  # live connections as last counted
        self._since_count = 0
        self._refused = _Warner()
        self._starved = _Warner()

    @property
    def name(self) -> str:
        return f"{'http+tls' if self._tls else 'http'}://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1]) if self.listener is not None else self._port

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(128)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        pace_from_birth(listener)      # its uploads are paced from their first byte (congestion.py)
        self.listener = listener
        self._accepting = asyncio.create_task(self._accept_loop(listener), name=f"accept:{self.port}")
        self._accepting.add_done_callback(_report_stop)

    async def stop(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            await asyncio.gather(self._accepting, return_exceptions=True)
        if self.listener is not None:
            self.listener.close()
        for sniffer in list(self._pending):
            sniffer.abort()
        await super().stop()

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        context = self._tls
        factory: Callable[[], asyncio.BaseProtocol] = server if context is None else (
            lambda: _Sniffer(server, context, self._pending))
        while True:
            try:
                conn, addr = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    log.debug("accept failed: %s", exc)
                    continue
                self._starved("out of file descriptors or memory: not accepting connections for "
                              "%.1f s", ACCEPT_PAUSE_S)
                await asyncio.sleep(ACCEPT_PAUSE_S)
                continue
            host = str(addr[0])
            if not self._admit(host):
                self._refused("refused connections from %s: over the limit of %d per address and "
                              "%d in all", host, self.limits.per_address, self.limits.total)
                _refuse(conn)
                continue
            try:
                transport, _ = await loop.connect_accepted_socket(factory, conn)
            except OSError as exc:
                log.debug("connection from %s lost at once: %s", host, exc)
                conn.close()
                continue
            self._live.setdefault(host, set()).add(transport)
            self._open += 1

    def _admit(self, host: str) -> bool:
        """Whether one more connection from `host` fits the limits (counting closed ones out)."""
        live = self._live.get(host)
        if live is not None:
            before = len(live)
            live.difference_update([t for t in live if t.is_closing()])
            self._open -= before - len(live)
            if not live:
                del self._live[host]
                live = None
        self._since_count += 1
        if self._open >= self.limits.total or self._since_count >= 256:
            self._recount()
        return self._open < self.limits.total and (live is None or len(live) < self.limits.per_address)

    def _recount(self) -> None:
        for host in list(self._live):
            live = {t for t in self._live[host] if not t.is_closing()}
            if live:
                self._live[host] = live
            else:
                del self._live[host]
        self._open = sum(len(v) for v in self._live.values())
        self._since_count = 0


def _report_stop(task: asyncio.Task[None]) -> None:
    """Accepting must never stop silently: the node would look alive and serve nobody."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("accepting connections stopped", exc_info=task.exception())


def _refuse(conn: socket.socket) -> None:
    """A short 503 and close, without waiting on the client (the descriptor comes back at once).
    What the client already sent is read first, so the close is a FIN the client sees after the
    answer, not a reset that may discard it."""
    try:
        conn.setblocking(False)
        conn.send(_REFUSAL)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(65536)
    except OSError:
        pass
    finally:
        conn.close()


async def bind_site(app: web.Application, host: str, port: int, tls: ServerTLS | None = None, *,
                    limits: ConnectionLimits | None = None) -> tuple[web.AppRunner, int]:
    """Start serving `app` on host:port (port 0: any free port), also over TLS when `tls` is given.
    Returns the runner and the port."""
    if tls is not None and tls.required:
        app.middlewares.append(_require_tls)
    # Stopping waits at most 2 s for requests in flight (a peer that went away mid-chunk).
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = BoundedSite(runner, host, port, limits or ConnectionLimits.from_descriptors(),
                       tls.context if tls is not None else None)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use",
                              "stop the other process or choose another --port") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"cannot listen on {host}: no such address on this machine",
                              "use an address of this host, or 0.0.0.0 for all") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return runner, site.port


@web.middleware
async def _require_tls(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    path = request.path
    if (path == "/ws" or path.startswith("/chunks/")) and not is_tls(request.transport):
        return web.Response(status=426, text=TLS_REQUIRED_TEXT, headers={"Upgrade": "TLS/1.3, TLS/1.2"})
    return await handler(request)


class _Sniffer(asyncio.Protocol):
    """A new connection until its first bytes arrive; then it hands the transport to the HTTP
    server, directly or through TLS, and is gone."""

    def __init__(self, factory: Callable[[], asyncio.BaseProtocol], context: ssl.SSLContext,
                 pending: set[_Sniffer]) -> None:
        self._factory = factory
        self._context = context
        self._pending = pending
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._pending.add(self)
        self._timer = asyncio.get_running_loop().call_later(_SNIFF_TIMEOUT_S, self.abort)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or not data:
            return
        self._done()
        self._transport = None      # the HTTP server's from here on
        app = self._factory()
        if data[0] == 0x16:         # a TLS record: the handshake
            # No waiter: nobody awaits the handshake (a failed one only closes this connection;
            # a waiter's exception nobody retrieves would be logged as an error).
            tls = SSLProtocol(asyncio.get_running_loop(), app, self._context, None,  # type: ignore[arg-type]
                              server_side=True, ssl_handshake_timeout=_HANDSHAKE_TIMEOUT_S)
            transport.set_protocol(tls)
            tls.connection_made(transport)
            view = memoryview(data)
            while view:
                buf = tls.get_buffer(len(view))
                n = min(len(buf), len(view))
                buf[:n] = view[:n]
                tls.buffer_updated(n)
                view = view[n:]
        else:
            assert isinstance(app, asyncio.Protocol)
            transport.set_protocol(app)
            app.connection_made(transport)
            app.data_received(data)

    def eof_received(self) -> bool:
        self.abort()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._done()

    def abort(self) -> None:
        self._done()
        if self._transport is not None:
            self._transport.abort()
            self._transport = None

    def _done(self) -> None:
        self._pending.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
