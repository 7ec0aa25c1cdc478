"""Serving chunks over HTTP: `GET /chunks/<hash>`.

Unthrottled, uncompressed chunks go out with sendfile (no copy through Python); over TLS, where the
kernel cannot send a file, in pieces read off the event loop and written as they are read (never a
whole chunk in memory); LZ4 only when the client accepts it and a sample of the chunk compresses.
Rate limits are kept by the kernel's pacing of each upload's socket (upload_pace.py; under TLS, the
TCP socket beneath it): the node's upload limit and a WAN link's rate are shared among the uploads
under way, and re-shared whenever one starts or ends, so a limit is never left idle while an upload
could use it. Where the kernel cannot pace, token buckets slice the stream instead. The client
side is chunk_fetch.py.

A chunk still arriving here (chunk_arrivals.py) is served as it arrives: the prefix received so
far, the rest as it comes, the last byte once this node verified the whole; the stream is cut if
the download here fails, so its downloader fails as well.

A request needs the token its Download carried (auth.py): for this chunk, from the address the
request comes from, at the address and port it arrived on, not expired. The refusal (403) says
which of these did not match, so a downloader's report tells the operator.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import lz4.frame
from aiohttp import web

from lanscatter.core.auth import TOKEN_HEADER, Auth, endpoint
from lanscatter.core.errors import ManifestError
from lanscatter.core.manifest import check_hash
from lanscatter.core.safe_text import safe_text
from lanscatter.disk.hashing import PIECE
from lanscatter.disk.store import Location
from lanscatter.net.chunk_arrivals import Arrival, ArrivalFailed, ChunkArrivals
from lanscatter.net.ratelimit import TokenBucket, take_all
from lanscatter.net.tls import is_tls
from lanscatter.net.upload_pace import Pace, UploadPacer

log = logging.getLogger("lanscatter.net.chunk_http")

ACCEPT_HEADER = "X-Lanscatter-Accept"
ENCODING_HEADER = "X-Lanscatter-Encoding"
_SAMPLE = 256 * 1024
_COMPRESS_BELOW = 0.8        # send LZ4 only when a sample shrinks to under 80 %
_TLS_WRITE = 64 * 1024       # what one write hands the TLS transport (see _send_buffered)
# An upload whose receiver stops reading (a frozen process, a host gone behind a live switch)
# would hold its share of this node's upload limit for good: the kernel ends the connection once
# sent data has waited this long to be acknowledged, zero-window probes included.
UNACKED_LIMIT_S = 30.0


@dataclass(slots=True)
class TrafficCounters:
    rx_bytes: int = 0
    tx_bytes: int = 0
    uploads: int = 0
    downloads: int = 0


class ChunkServer:
    """Serves chunks that `locate` finds (None for chunks it does not have), and those `arrivals`
    holds while they arrive."""

    def __init__(self, locate: Callable[[str], Location | None], auth: Auth, counters: TrafficCounters,
                 *, ul_bucket: TokenBucket | None = None, compress: bool = True,
                 arrivals: ChunkArrivals | None = None) -> None:
        self.locate = locate
        self.arrivals = arrivals
        self.auth = auth
        self.counters = counters
        self.ul_bucket = ul_bucket
        self.compress = compress
        self.pacer = UploadPacer(ul_bucket.rate if ul_bucket is not None else None)
        # How far the clock of the master whose tokens this server checks is ahead of ours: its
        # tokens expire by its clock (a peer learns it at each join; a master checks its own).
        self.clock_offset = 0.0
        self._compressible: dict[str, bool] = {}

    def routes(self) -> list[web.RouteDef]:
        # No HEAD: the body goes out by sendfile, below aiohttp, which would send it for a HEAD
        # too and leave a kept-alive client reading a body as its next response.
        return [web.get("/chunks/{chunk}", self.handle, allow_head=False)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        chunk = request.match_info["chunk"]
        refused = self._refusal(request, chunk)
        if refused is not None:
            log.debug("refused chunk %s to %s: %s", chunk[:8], request.remote, refused)
            raise web.HTTPForbidden(text=refused + "\n")
        try:
            check_hash(chunk)
            # Every parameter checked before anything is opened or counted: a bad one is refused
            # whole, never half obeyed.
            pace = Pace.from_query(request.query)
        except ManifestError:
            raise web.HTTPNotFound(text="no such chunk\n") from None
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"bad query: {safe_text(exc, 100)}\n") from None
        if self.pacer.withdrawn(pace.transfer):
            raise web.HTTPGone(text="transfer withdrawn\n")
        loc = self.locate(chunk)
        arrival = self.arrivals.get(chunk) if loc is None and self.arrivals is not None else None
        if loc is None and arrival is None:
            raise web.HTTPNotFound(text="chunk not here\n")
        fh: BinaryIO | None = None
        if loc is not None:
            try:   # opening may touch the disk: not on the event loop
                fh = await asyncio.get_running_loop().run_in_executor(None, _open_for_reading, loc.path)
            except OSError:
                raise web.HTTPNotFound(text="chunk not here\n") from None
        self.counters.uploads += 1
        sock = request.transport.get_extra_info("socket") if request.transport is not None else None
        paced = False
        try:
            if sock is not None:
                _limit_unacked(sock, UNACKED_LIMIT_S)
                paced = self.pacer.add(sock, pace)
            if paced:
                buckets = []
            else:       # no kernel pacing here: the node's bucket and one for this transfer's cap
                own = TokenBucket(pace.rate, start_full=False) if pace.rate else None
                buckets = [b for b in (self.ul_bucket, own) if b is not None and b.rate]
            if arrival is not None:
                return await self._send_arriving(request, arrival, buckets)
            assert fh is not None and loc is not None
            lz4_ok = self.compress and "lz4" in request.headers.get(ACCEPT_HEADER, "")
            if lz4_ok and await self._is_compressible(chunk, fh.fileno(), loc):
                return await self._send_lz4(request, fh.fileno(), loc, buckets)
            if is_tls(request.transport):
                return await self._send_buffered(request, fh.fileno(), loc, buckets)
            return await self._send_plain(request, fh, loc, buckets)
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            # The downloader gave up (timeout, cancel) or stopped reading (UNACKED_LIMIT_S)
            # mid-stream: nothing to answer any more.
            log.debug("upload of %s to %s ended early: %s", chunk[:8], request.remote, exc)
            raise web.HTTPGone() from None
        finally:
            if sock is not None:            # (also when add() failed half-way: remove is idempotent)
                self.pacer.remove(sock)     # the connection may be kept alive for another transfer
            self.counters.uploads -= 1
            if fh is not None:
                fh.close()

    def _refusal(self, request: web.Request, chunk: str) -> str | None:
        """Why this request may not have the chunk (None: it may), judged from what this socket sees."""
        if not self.auth.secure:
            return None
        sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
        if not sockname or not request.remote:
            return "the connection's addresses are unknown"
        return self.auth.check_chunk(chunk, request.headers.get(TOKEN_HEADER), requester=request.remote,
                                     source=endpoint(sockname[0], sockname[1]), now=time.time() + self.clock_offset)

    async def _send_plain(self, request: web.Request, fh, loc: Location,  # type: ignore[no-untyped-def]
                          buckets: list[TokenBucket]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = loc.length
        await resp.prepare(request)
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("client went away")
        loop = asyncio.get_running_loop()
        pos, end = loc.offset, loc.offset + loc.length
        step = loc.length if not buckets else PIECE // 4
        while pos < end:
            n = min(step, end - pos)
            await take_all(buckets, n)
            await loop.sendfile(transport, fh, pos, n)
            pos += n
            self.counters.tx_bytes += n
        await resp.write_eof()
        return resp

    async def _send_buffered(self, request: web.Request, fd: int, loc: Location,
                             buckets: list[TokenBucket]) -> web.StreamResponse:
        """The body in pieces through the transport (TLS encrypts in user space: no sendfile)."""
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = loc.length
        await resp.prepare(request)
        loop = asyncio.get_running_loop()
        pos, end = loc.offset, loc.offset + loc.length
        step = PIECE if not buckets else PIECE // 4
        while pos < end:
            n = min(step, end - pos)
            data = memoryview(await loop.run_in_executor(None, _read_exact, fd, pos, n))
            await take_all(buckets, n)
            # In slices: the TLS transport takes one whole write into its socket's buffer before it
            # pushes back, and an upload that looks done while a piece still waits there would
            # give its pacing share back too early.
            for i in range(0, n, _TLS_WRITE):
                await resp.write(data[i:i + _TLS_WRITE])     # waits while the transport is full
            pos += n
            self.counters.tx_bytes += n
        await resp.write_eof()
        return resp

    async def _send_arriving(self, request: web.Request, arrival: Arrival,
                             buckets: list[TokenBucket]) -> web.StreamResponse:
        """A chunk still arriving here: what is received, then the rest as it comes (uncompressed:
        a sample of it may not be here yet). Cut when the download here fails."""
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = arrival.length
        loop = asyncio.get_running_loop()
        pos = 0
        try:
            # Held before the first await: a download that ends meanwhile keeps its part file
            # open for this stream (the file is whole then, and served from it).
            with arrival.reading() as fd:
                await resp.prepare(request)
                while pos < arrival.length:
                    end = await arrival.servable(pos)
                    while pos < end:
                        n = min(PIECE, end - pos)
                        data = memoryview(await loop.run_in_executor(None, _read_exact, fd, arrival.offset + pos, n))
                        await take_all(buckets, n)
                        for i in range(0, n, _TLS_WRITE):      # (as in _send_buffered)
                            await resp.write(data[i:i + _TLS_WRITE])
                        pos += n
                        self.counters.tx_bytes += n
        except ArrivalFailed as exc:
            # Cut, not ended: a downloader must never see this body as complete.
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError(str(exc)) from None
        await resp.write_eof()
        return resp

    async def _send_lz4(self, request: web.Request, fd: int, loc: Location,
                        buckets: list[TokenBucket]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                           ENCODING_HEADER: "lz4"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        loop = asyncio.get_running_loop()
        comp = lz4.frame.LZ4FrameCompressor()
        out = comp.begin()
        pos, end = loc.offset, loc.offset + loc.length
        while pos < end:
            n = min(PIECE, end - pos)
            data = await loop.run_in_executor(None, _read_compress, comp, fd, pos, n)
            pos += n
            out += data
            if pos >= end:
                out += comp.flush()
            await take_all(buckets, len(out))
            await resp.write(out)
            self.counters.tx_bytes += len(out)
            out = b""
        await resp.write_eof()
        return resp

    async def _is_compressible(self, chunk: str, fd: int, loc: Location) -> bool:
        known = self._compressible.get(chunk)
        if known is None:
            sample = os.pread(fd, min(_SAMPLE, loc.length), loc.offset)
            squeezed = await asyncio.get_running_loop().run_in_executor(None, lz4.frame.compress, sample)
            known = len(squeezed) < _COMPRESS_BELOW * max(1, len(sample))
            if len(self._compressible) > 200_000:
                self._compressible.clear()
            self._compressible[chunk] = known
        return known


def _limit_unacked(sock: socket.socket, seconds: float) -> None:
    """TCP_USER_TIMEOUT (Linux): abort the connection when sent data stays unacknowledged this long."""
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if option is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, int(seconds * 1000))
    except OSError:
        pass


def _open_for_reading(path: os.PathLike[str] | str) -> BinaryIO:
    return open(path, "rb", buffering=0)


def _read_exact(fd: int, pos: int, n: int) -> bytes:
    data = os.pread(fd, n, pos)
    if len(data) != n:
        raise OSError("file shrank while serving it")
    return data


def _read_compress(comp: lz4.frame.LZ4FrameCompressor, fd: int, pos: int, n: int) -> bytes:
    data = os.pread(fd, n, pos)
    if len(data) != n:
        raise OSError("file shrank while serving it")
    return comp.compress(data)
