"""Reading a node's `/status` over HTTP: the body read within `MAX_STATUS_BYTES`, then decoded by
`core/status.py` (`read_status`), so a hostile or broken node costs a bounded read and a
`StatusError`, never a crash or an unbounded buffer. The monitor's polling fallback uses aiohttp
(`fetch_status`); `up`'s watcher the standard library's client in a thread (`get_status`): every
host of a tree runs an `up`, and importing aiohttp cost each 0.2 s of CPU before its roles could
start (aiohttp is imported here only for its type names).
"""

from __future__ import annotations

import http.client
import json
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lanscatter.core.status import MAX_STATUS_BYTES, StatusDoc, StatusError, read_status

if TYPE_CHECKING:
    import aiohttp


class StatusRefused(http.client.HTTPException):
    """The endpoint answered with an HTTP error status."""


async def fetch_status(http: aiohttp.ClientSession, url: str, *,
                       timeout: aiohttp.ClientTimeout | None = None) -> StatusDoc:
    """The status document at `url`. Network trouble raises aiohttp's errors or TimeoutError
    (an HTTP error status: `aiohttp.ClientResponseError`); a body that is no status document
    raises StatusError."""
    async with http.get(url, timeout=timeout) as resp:
        resp.raise_for_status()
        if (resp.content_length or 0) > MAX_STATUS_BYTES:
            raise StatusError(f"{url} sent a status of {resp.content_length} bytes")
        body = bytearray()
        async for piece in resp.content.iter_chunked(1 << 16):
            body += piece
            if len(body) > MAX_STATUS_BYTES:
                raise StatusError(f"{url} sent a status of more than {MAX_STATUS_BYTES} bytes")
    return parse_status(bytes(body))


def parse_status(text: str | bytes) -> StatusDoc:
    """A status document from its JSON text; StatusError when it is not one."""
    if len(text) > MAX_STATUS_BYTES:
        raise StatusError(f"a status of {len(text)} bytes")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise StatusError(f"the status is not JSON ({type(exc).__name__})") from None
    return read_status(data)


def get_status(url: str, timeout: float) -> StatusDoc:
    """The status document at `url` (http only), with the standard library's client. Blocking:
    run it in a thread. Network trouble raises OSError or `http.client.HTTPException` (an HTTP
    error status: `StatusRefused`); a body that is no status document raises StatusError."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        resp = conn.getresponse()
        if resp.status != 200:
            raise StatusRefused(f"{url} answered HTTP {resp.status}")
        body = resp.read(MAX_STATUS_BYTES + 1)
    finally:
        conn.close()
    if len(body) > MAX_STATUS_BYTES:
        raise StatusError(f"{url} sent a status of more than {MAX_STATUS_BYTES} bytes")
    return parse_status(body)
