"""Downloading chunks: each transfer runs in a worker thread with a blocking keep-alive HTTP
connection, so the bytes go socket -> buffer -> hash -> part file with no per-packet Python work
on the event loop (receiving, hashing and writing all release the GIL).

Rules: the body is written at the chunk's offset while it is hashed, in pieces of `_PIECE`; never a
whole chunk in memory. The result says whether the chunk arrived intact; a wrong size or hash is
`corrupt` (the source is then avoided). Cancelling the awaiting task stops the thread (the socket
it reads or is still connecting is shut down) and waits for it, so nothing writes into the part
file after cancellation returns, and a source that froze holds up no one who cancels.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import lz4.frame

from lanscatter.core.auth import TOKEN_HEADER
from lanscatter.core.ending_lead import RATE_WINDOW_S, ending_lead, judged_at_told_rate
from lanscatter.disk.hashing import new_hasher
from lanscatter.net.chunk_http import ACCEPT_HEADER, ENCODING_HEADER, TrafficCounters
from lanscatter.net.chunk_pipe import Pipe, PipeBroken, PipeCancelled, Pipes
from lanscatter.net.ratelimit import TokenBucket, wait_all
from lanscatter.net.upload_pace import Pace

_PIECE = 1 << 20
# While a download still has to say it is ending, reads are sized so that the check falls close to
# the lead (core/ending_lead.py): a whole piece can be a quarter of a chunk, and a notice that early
# starts the slot's next transfer beside this one for that long. The rate is measured from the end
# of the first read over at least RATE_WINDOW_S.
_FIRST_READ, _MIN_READ = 256 * 1024, 32 * 1024
_STALL_S = 30.0          # no byte for this long: the connection is dead


@dataclass(frozen=True, slots=True)
class FetchResult:
    ok: bool
    corrupt: bool = False
    error: str = ""
    wire_bytes: int = 0
    seconds: float = 0.0
    blameless: bool = False     # failed for a reason that says nothing about the source


class _Pool:
    """Idle keep-alive connections per (host, port), shared by the download threads."""

    def __init__(self, local_addr: str | None) -> None:
        self.local_addr = local_addr
        self._idle: dict[tuple[str, int], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def get(self, host: str, port: int, timeout: float, live: _Live, *,
            fresh: bool = False) -> tuple[http.client.HTTPConnection, bool]:
        """A connection to host:port for the download `live` (its sockets are that download's to
        interrupt) and whether it was kept alive from an earlier transfer."""
        conn: http.client.HTTPConnection | None = None
        if not fresh:
            with self._lock:
                idle = self._idle.get((host, port))
                if idle:
                    conn = idle.pop()
        kept = conn is not None
        if conn is None:
            src = (self.local_addr, 0) if self.local_addr else None
            conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=src)
        # http.client connects (and reconnects) through this hook, TLS included (so a plain
        # HTTPConnection over it): the socket is registered before it connects, and a kept one now.
        conn._create_connection = live.connect  # type: ignore[attr-defined]
        live.use(conn.sock)
        return conn, kept

    def put(self, host: str, port: int, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault((host, port), []).append(conn)

    def close(self) -> None:
        with self._lock:
            for conns in self._idle.values():
                for c in conns:
                    c.close()
            self._idle.clear()


class _Live:
    """What a running download blocks on, so that a cancel from another thread ends it at once.

    Every socket the download connects or takes from the pool is registered before it blocks on
    it (a connect too: a source that stopped, frozen or gone, can leave one hanging until its
    timeout, and shutting the socket down ends it), and one registered after the cancel is shut
    down at once. The pipe a WAN transfer waits on is closed (for another: the source is not
    blamed). With `tls` (the node's context) each connection is TLS, set up in `connect`."""

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self._tls = tls
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pipe: Pipe | None = None
        self.cancelled = False

    def use(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.cancelled:
                _shut(sock)

    def use_pipe(self, pipe: Pipe | None) -> None:
        with self._lock:
            self._pipe = pipe
            if self.cancelled and pipe is not None:
                pipe.close(for_other=True)

    def connect(self, address: tuple[str, int], timeout: float | None,
                source_address: tuple[str, int] | None = None) -> socket.socket:
        """socket.create_connection's work, with each socket registered before it connects, and
        with TLS its handshake done on a registered socket too (a frozen source accepts the
        connection and never answers the handshake)."""
        host, port = address
        tls = self._tls
        error: OSError | None = None
        for family, kind, proto, _, addr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
            sock: socket.socket = socket.socket(family, kind, proto)
            self.use(sock)
            try:
                if self.cancelled:
                    raise ConnectionAbortedError("cancelled")
                sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(addr)
                if tls is not None:
                    # (wrapping detaches the plain socket: the TLS one is what a cancel shuts)
                    sock = tls.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
                    self.use(sock)
                    sock.do_handshake()
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error if error is not None else OSError(f"{host} has no address")

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            _shut(self._sock)
            if self._pipe is not None:
                self._pipe.close(for_other=True)


def _shut(sock: socket.socket | None) -> None:
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Fetcher:
    def __init__(self, counters: TrafficCounters, *, local_addr: str | None, threads: int,
                 tls: ssl.SSLContext | None = None) -> None:
        """`tls`: every download of this node goes over TLS with this context (the node's own
        setting decides, whatever scheme the master's URL names)."""
        self.counters = counters
        self._tls = tls
        self._pool = _Pool(local_addr)
        self._pipes = Pipes(local_addr)
        self._threads = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="lanscatter-fetch")

    async def fetch(self, url: str, chunk: str, length: int, *, token: str, fd: int, offset: int,
                    timeout_s: float, buckets: list[TokenBucket], pace: Pace | None = None,
                    accept_lz4: bool = True, ending: Callable[[float], None] | None = None,
                    receiving: Callable[[], None] | None = None, ending_receives: bool = False,
                    progress: Callable[[int], None] | None = None, deadline_s: float | None = None) -> FetchResult:
        """Download one chunk into fd at offset, giving up `deadline_s` after it began (None:
        `timeout_s`, which also bounds a stall, up to _STALL_S). From the download's thread, `receiving()` is
        called once at its first bytes (not, with `ending_receives`, for a download too short to
        measure: its `ending` says it), `ending(seconds_left)` once when about 0.1 s (0.3 s over a
        WAN link) of it is left, `progress(bytes)` after each write with the chunk's bytes written
        so far. `token` is the Download's authorisation, sent as is."""
        cancel = threading.Event()
        live = _Live(self._tls)
        # The transfer's pace is the sender's to keep; pacing the same stream again here would
        # only add stalls. Here: this node's own download limit.
        caps = list(buckets)
        deadline = time.monotonic() + (timeout_s if deadline_s is None else deadline_s)
        fut = asyncio.get_running_loop().run_in_executor(
            self._threads, self._fetch, url, chunk, length, token, fd, offset,
            deadline, timeout_s, caps, pace, accept_lz4, cancel, live, ending, receiving,
            ending_receives, progress)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            cancel.set()
            live.cancel()
            # Wait for the thread itself: it must not write into a part file once the caller goes on
            # (a new generation may close and reuse that descriptor). What it blocks on is shut down
            # (_Live), so this is short.
            await asyncio.wait({fut})
            raise

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._pool.close()
        self._pipes.close()

    def _fetch(self, url: str, chunk: str, length: int, token: str, fd: int, offset: int, deadline: float,
               timeout_s: float, caps: list[TokenBucket], pace: Pace | None, accept_lz4: bool,
               cancel: threading.Event, live: _Live, ending: Callable[[float], None] | None,
               receiving: Callable[[], None] | None, ending_receives: bool,
               progress: Callable[[int], None] | None) -> FetchResult:
        started = time.monotonic()
        if cancel.is_set():            # cancelled while queued for a thread
            return FetchResult(False, error="cancelled")
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        headers = {TOKEN_HEADER: token} if token else {}
        if accept_lz4:
            headers[ACCEPT_HEADER] = "lz4"
        path = f"/chunks/{chunk}" + (pace.query() if pace is not None else "")
        lead = ending_lead(pace is not None and bool(pace.group))
        # a transfer too short to measure its rate (1 MiB at 1 Gbit/s: 8 ms) is judged at the rate
        # its source was told once half of it came; a longer one only by its measured rate
        told = 1 / pace.rate if pace is not None and pace.rate and not pace.group \
            and judged_at_told_rate(length, pace.rate) else None
        if told is not None and ending is not None and ending_receives:
            receiving = None           # its Ending says that its bytes flow (protocol.ENDING_RECEIVES)
        body = _Body(chunk, length, fd, offset, deadline, timeout_s, caps, cancel, started, lead, told, ending,
                     receiving, progress)
        if pace is not None and pace.group:
            return self._fetch_piped(host, port, pace.group, path, headers, body, live)
        reusable = False
        conn, kept = self._pool.get(host, port, min(_STALL_S, timeout_s), live)
        try:
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not kept or cancel.is_set():
                    raise
                # A kept-alive connection the source closed meanwhile (it restarted, or idled it
                # out): not the source's fault, try once more on a new one.
                conn.close()
                conn, kept = self._pool.get(host, port, min(_STALL_S, timeout_s), live, fresh=True)
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
            result = self._receive(resp, body)
            reusable = result.ok and not resp.will_close
            return result
        except (OSError, http.client.HTTPException, RuntimeError) as exc:
            return body.failed(exc)
        finally:
            live.use(None)
            if reusable:
                self._pool.put(host, port, conn)
            else:
                conn.close()

    def _fetch_piped(self, host: str, port: int, group: str, path: str, headers: dict[str, str],
                     body: _Body, live: _Live) -> FetchResult:
        """A WAN transfer: its request goes at once on the link's pipelined connection."""
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
        for _attempt in range(3):      # a pipe broken before our response began is not the source's doing
            if body.cancel.is_set():
                return body.failed(None)
            pipe: Pipe | None = None
            existed = False
            try:
                pipe, existed = self._pipes.get(host, port, group, min(_STALL_S, body.timeout_s), live.connect,
                                                 body.cancel)
                live.use_pipe(pipe)
                ticket = pipe.send(request)
                resp = pipe.response(ticket, body.deadline, body.cancel)
            except PipeBroken:
                continue
            except PipeCancelled:
                return body.failed(TimeoutError("timed out") if not body.cancel.is_set() else None)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                if pipe is not None:
                    pipe.close()
                if existed:
                    continue           # a kept-alive pipe the source closed meanwhile
                return body.failed(exc)
            except (OSError, http.client.HTTPException) as exc:
                if pipe is not None:
                    pipe.close()
                return body.failed(exc)
            try:
                result = self._receive(resp, body)
            except (OSError, http.client.HTTPException, RuntimeError) as exc:
                result = body.failed(exc)
            finally:
                live.use_pipe(None)
            if result.ok:
                pipe.done(resp)
                return result
            pipe.close()               # what is left of this response would be read as the next
            if pipe.broken_for_other and not result.corrupt and not body.cancel.is_set():
                return FetchResult(False, error="its connection was closed for another transfer",
                                   wire_bytes=body.wire, seconds=body.elapsed(), blameless=True)
            return result
        return body.failed(ConnectionError("the source's connection kept failing"))

    def _receive(self, resp: http.client.HTTPResponse, body: _Body) -> FetchResult:
        """Read, hash and write one response's body at the chunk's offset."""
        if resp.status != 200:
            why = _printable(resp.read(4096).decode("utf-8", "replace"))
            return FetchResult(False, error=f"HTTP {resp.status} from source" + (f": {why}" if why else ""),
                               seconds=body.elapsed())
        decomp = lz4.frame.LZ4FrameDecompressor() if resp.getheader(ENCODING_HEADER) == "lz4" else None
        hasher = new_hasher()
        view = memoryview(bytearray(_PIECE))
        pos = body.offset
        received = 0
        cancel, caps = body.cancel, body.caps
        mark: tuple[float, int] | None = None      # (time, bytes) after the first read
        spb: float | None = None                   # seconds per byte since then
        first = False                              # this read brought the first bytes
        while True:
            if cancel.is_set():
                return body.failed(None)
            if time.monotonic() > body.deadline:
                return FetchResult(False, error=f"timed out after {body.elapsed():.0f} s", wire_bytes=body.wire,
                                   seconds=body.elapsed())
            if body.receiving is not None:
                # The first bytes are announced as soon as they come (the master shares the
                # download's ports with it from then on); a full read could take 50-100 ms.
                head = resp.read1(_FIRST_READ)
                n = len(head)
                view[:n] = head
                first = n > 0
            else:
                n = resp.readinto(view if body.ending is None else view[:_next_read(body, received, spb)])
            if not n:
                break
            body.wire += n
            _pause(wait_all(caps, n), cancel)
            self.counters.rx_bytes += n             # (after this node's limit let them through)
            data: memoryview | bytes = decomp.decompress(view[:n]) if decomp else view[:n]
            received += len(data)
            if received > body.length:
                return FetchResult(False, corrupt=True, error="source sent too many bytes",
                                   wire_bytes=body.wire, seconds=body.elapsed())
            hasher.update(data)
            _pwrite_all(body.fd, data, pos)
            pos += len(data)
            if body.progress is not None:
                body.progress(received)
            if first and body.receiving is not None:
                # Said once the bytes are written and their progress is on its way to the loop
                # (both go through it in order): whoever the master sends here for the arriving
                # chunk then finds its prefix (chunk_arrivals.py), not a 404.
                body.receiving()
                body.receiving = None
            if body.ending is not None:
                now = time.monotonic()
                if mark is None:
                    mark = (now, received)
                if now - mark[0] >= RATE_WINDOW_S and received > mark[1]:
                    spb = (now - mark[0]) / (received - mark[1])
                elif spb is None and 2 * received >= body.length:
                    # a transfer shorter than the window, half received: judged at its told rate
                    # (not earlier: each such notice frees a slot, and at the start they would
                    # free slots faster than transfers end)
                    spb = body.told_spb
                if spb is not None and (left_s := (body.length - received) * spb) <= body.lead:
                    body.ending(left_s)
                    body.ending = None
        if received < body.length:
            # The connection ended early (the source went away, or the connection was shut): a
            # failed transfer, not corrupt data.
            return FetchResult(False, error=f"connection closed after {received} of {body.length} bytes",
                               wire_bytes=body.wire, seconds=body.elapsed())
        if hasher.hexdigest() != body.chunk:
            return FetchResult(False, corrupt=True, error="hash mismatch", wire_bytes=body.wire,
                               seconds=body.elapsed())
        return FetchResult(True, wire_bytes=body.wire, seconds=body.elapsed())


@dataclass(slots=True)
class _Body:
    """One download's target and limits, and the bytes it has received so far."""

    chunk: str
    length: int
    fd: int
    offset: int
    deadline: float
    timeout_s: float
    caps: list[TokenBucket]
    cancel: threading.Event
    started: float
    lead: float                                        # seconds before the end that `ending` is due
    told_spb: float | None                             # seconds per byte at the rate the source was told
    ending: Callable[[float], None] | None = None      # called once near the end, then None
    receiving: Callable[[], None] | None = None        # called once at the first bytes, then None
    progress: Callable[[int], None] | None = None      # called after each write (chunk bytes so far)
    wire: int = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def failed(self, exc: BaseException | None) -> FetchResult:
        """The result of a download that ended with `exc` (None: cancelled)."""
        err = "cancelled" if exc is None or self.cancel.is_set() else f"{type(exc).__name__}: {exc}"
        return FetchResult(False, error=err, wire_bytes=self.wire, seconds=self.elapsed())


def _next_read(body: _Body, received: int, spb: float | None) -> int:
    """How many wire bytes to read next so that the ending check comes about when `body.lead`
    is left (within one `_MIN_READ`) at `spb` seconds per byte; small reads while no rate is known."""
    if spb is None:                               # (a rate is known only once bytes came)
        return _FIRST_READ
    lead = body.lead / spb
    wire_per_byte = body.wire / received          # below 1 for an LZ4 body
    return int(min(_PIECE, max(_MIN_READ, (body.length - received - lead) * wire_per_byte)))


def _pwrite_all(fd: int, data: memoryview | bytes, pos: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        pos += n
        view = view[n:]


def _pause(seconds: float, cancel: threading.Event) -> None:
    if seconds > 0:
        cancel.wait(seconds)        # returns early when cancelled


def _printable(text: str, limit: int = 200) -> str:
    """A source's refusal text, fit for a log line and a status event: one line, bounded."""
    return "".join(c if c.isprintable() else " " for c in text).strip()[:limit]
