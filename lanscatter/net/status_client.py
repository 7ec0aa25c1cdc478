"""Reading a node's `/status` over HTTP: the body read within `MAX_STATUS_BYTES`, then decoded by
`core/status.py` (`read_status`), so a hostile or broken node costs a bounded read and a
`StatusError`, never a crash or an unbounded buffer. Used by `up`'s watcher and the monitor's
polling fallback.
"""

from __future__ import annotations

import json

import aiohttp

from lanscatter.core.status import MAX_STATUS_BYTES, StatusDoc, StatusError, read_status


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
