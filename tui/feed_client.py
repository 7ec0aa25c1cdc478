"""Following one site's status endpoint: the websocket feed, or polling when there is none.

`follow()` runs until cancelled. It hands every new status document, decoded and bounded by
`lanscatter.core.status.read_status`, to `on_status` and tells `on_down` when the endpoint stops
answering or sends something that is not a status document; it reconnects with a capped exponential backoff and
never raises for network trouble. It knows nothing of Textual: the app wraps it in a worker.

Order of attempts on each (re)connection: `GET /status/ws`; if the server refuses the upgrade
(an HTTP error status, e.g. an older node without the websocket), poll `GET /status` instead until
that fails, then start over. A site with standby gateways has them as `alternates`: when the
endpoint fails, or its status says it is a standby (`gateway.active` false), the next one is
followed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from lanscatter.core.status import MAX_STATUS_BYTES, StatusDoc, StatusError, read_status
from lanscatter.core.status_feed import FeedDecoder, FeedGap
from lanscatter.net.status_client import fetch_status

log = logging.getLogger("lanscatter.tui.feed")

CONNECT_TIMEOUT_S = 3.0
HEARTBEAT_S = 5.0
_POLL_TIMEOUT = aiohttp.ClientTimeout(total=2 * CONNECT_TIMEOUT_S)


@dataclass(frozen=True, slots=True)
class Source:
    """A site's status endpoint: `label` names the site in the monitor ('' = use what it reports)."""

    label: str
    url: str
    alternates: tuple[str, ...] = ()     # the site's standby gateways' endpoints

    @property
    def display_name(self) -> str:
        return self.label or (urlsplit(self.url).netloc or self.url)


@dataclass(frozen=True, slots=True)
class Backoff:
    first_s: float = 0.25
    max_s: float = 2.0

    def delay(self, failures: int) -> float:
        return min(self.max_s, self.first_s * (2 ** max(0, failures - 1)))


DEFAULT_BACKOFF = Backoff()


class _UpgradeRefused(Exception):
    """The endpoint answers HTTP but has no status websocket."""


class _Standby(Exception):
    """The endpoint is a standby gateway: another one describes the site."""


def is_standby(status: StatusDoc) -> bool:
    return status.gateway is not None and not status.gateway.active


async def follow(
    source: Source,
    on_status: Callable[[StatusDoc], None],
    on_down: Callable[[str], None],
    *,
    backoff: Backoff = DEFAULT_BACKOFF,
    poll_interval_s: float = 0.5,
) -> None:
    """Feed `on_status` with `source`'s status until cancelled (see the module docstring)."""
    urls = [u.rstrip("/") for u in (source.url, *source.alternates)]
    at = 0
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=None)
    failures = 0
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            reached = False
            base = urls[at]

            def got(status: StatusDoc) -> None:
                nonlocal reached
                if len(urls) > 1 and is_standby(status):
                    raise _Standby
                reached = True
                on_status(status)

            try:
                try:
                    await _follow_websocket(session, base, got)
                    reason = "status feed closed"
                except _UpgradeRefused:
                    log.debug("%s has no status websocket; polling", base)
                    await _poll(session, base, got, poll_interval_s)
                    reason = "stopped answering"
            except FeedGap as exc:
                # Our copy is out of step, the endpoint is fine: take a fresh snapshot at once.
                log.info("%s: %s; reconnecting for a fresh snapshot", base, exc)
                await asyncio.sleep(backoff.first_s)
                continue
            except _Standby:
                at = (at + 1) % len(urls)
                await asyncio.sleep(backoff.first_s)
                continue
            except StatusError as exc:
                reason = f"sent no usable status ({exc})"
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                reason = _describe(exc)
            at = (at + 1) % len(urls)
            failures = 1 if reached else failures + 1
            on_down(reason)
            await asyncio.sleep(backoff.delay(failures))


async def _follow_websocket(session: aiohttp.ClientSession, base: str, got: Callable[[StatusDoc], None]) -> None:
    try:
        ws = await session.ws_connect(f"{base}/status/ws", heartbeat=HEARTBEAT_S, max_msg_size=MAX_STATUS_BYTES)
    except aiohttp.WSServerHandshakeError as exc:
        raise _UpgradeRefused() from exc
    decoder = FeedDecoder()
    async with ws:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                got(read_status(decoder.receive(_feed_message(msg.data))))
            elif msg.type is aiohttp.WSMsgType.ERROR:
                raise aiohttp.ClientError(f"websocket error: {ws.exception()}")


def _feed_message(text: str) -> dict[str, object]:
    """One feed message's JSON object; StatusError when it is not one."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise StatusError(f"a feed message that is not JSON ({type(exc).__name__})") from None
    if not isinstance(message, dict):
        raise StatusError("a feed message that is not an object")
    return message


async def _poll(
    session: aiohttp.ClientSession, base: str, got: Callable[[StatusDoc], None], interval_s: float
) -> None:
    last: StatusDoc | None = None
    while True:
        status = await fetch_status(session, f"{base}/status", timeout=_POLL_TIMEOUT)
        if status != last:
            got(status)
            last = status
        await asyncio.sleep(interval_s)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "not answering (connection refused)"
        return f"not answering ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, asyncio.TimeoutError):
        return "not answering (timed out)"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"answered HTTP {exc.status}"
    return f"not answering ({exc})"
