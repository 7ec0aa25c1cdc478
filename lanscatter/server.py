"""Binding an aiohttp app to an address, with the errors an operator can act on.

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
import ssl
from asyncio.sslproto import SSLProtocol
from collections.abc import Awaitable, Callable

from aiohttp import web

from lanscatter.congestion import pace_from_birth
from lanscatter.errors import ConfigError
from lanscatter.tls import ServerTLS, is_tls

log = logging.getLogger("lanscatter.server")

_SNIFF_TIMEOUT_S = 10.0         # a connection that says nothing is closed after this
_HANDSHAKE_TIMEOUT_S = 10
TLS_REQUIRED_TEXT = "this node accepts control and chunk requests over TLS only\n"


async def bind_site(app: web.Application, host: str, port: int,
                    tls: ServerTLS | None = None) -> tuple[web.AppRunner, int]:
    """Start serving `app` on host:port (port 0: any free port), also over TLS when `tls` is given.
    Returns the runner and the port."""
    if tls is not None and tls.required:
        app.middlewares.append(_require_tls)
    # Stopping waits at most 2 s for requests in flight (a peer that went away mid-chunk).
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site: web.BaseSite = (web.TCPSite(runner, host, port, reuse_address=True) if tls is None
                          else _SniffingSite(runner, host, port, tls.context))
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
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    for listener in sockets:        # its uploads are paced (congestion.py)
        pace_from_birth(listener)
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound


@web.middleware
async def _require_tls(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    path = request.path
    if (path == "/ws" or path.startswith("/chunks/")) and not is_tls(request.transport):
        return web.Response(status=426, text=TLS_REQUIRED_TEXT, headers={"Upgrade": "TLS/1.3, TLS/1.2"})
    return await handler(request)


class _SniffingSite(web.BaseSite):
    """A TCP listener whose connections are plain HTTP or TLS, told apart by their first byte."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, context: ssl.SSLContext) -> None:
        super().__init__(runner, backlog=128)
        self._where = (host, port)
        self._context = context
        self._pending: set[_Sniffer] = set()

    @property
    def name(self) -> str:
        return f"http+tls://{self._where[0]}:{self._where[1]}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        factory = self._runner.server
        assert factory is not None
        self._server = await loop.create_server(
            lambda: _Sniffer(factory, self._context, self._pending), self._where[0], self._where[1],
            backlog=self._backlog, reuse_address=True)

    async def stop(self) -> None:
        for sniffer in list(self._pending):
            sniffer.abort()
        await super().stop()


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
