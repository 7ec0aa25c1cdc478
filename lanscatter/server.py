"""Binding an aiohttp app to an address, with the errors an operator can act on."""

from __future__ import annotations

import errno

from aiohttp import web

from lanscatter.congestion import pace_from_birth
from lanscatter.errors import ConfigError


async def bind_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving `app` on host:port (port 0: any free port). Returns the runner and the port."""
    # Stopping waits at most 2 s for requests in flight (a peer that went away mid-chunk).
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
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
