"""Pipelined chunk requests on one connection, for the transfers of a WAN link.

The planner lets one source at a time serve a WAN link, and that source paces the link's uploads
together (upload_pace.py). A download over a WAN link writes its request at once on the one
pipelined connection to that source, behind the responses still arriving, so the source sends
chunk after chunk with no idle round trip between them: on a long link that gap costs a share of
the link at every chunk, and an idle connection restarts TCP's ramp (or, with BBR, a rate that
changes mid-stream takes many round trips to be used). Responses come back in request order; a
download thread waits for its turn, reads its response, and passes the turn on.

A pipe that fails (its source closed it, a download on it was cancelled or failed) is broken for
all: a download still waiting for its turn raises `PipeBroken` and retries on a new pipe, since
its response never began.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

# socket.create_connection's signature: (host, port), timeout, source address
Connect = Callable[[tuple[str, int], float, tuple[str, int] | None], socket.socket]


class PipeBroken(Exception):
    """The pipe failed before this download's response began."""


class PipeCancelled(Exception):
    """The download was cancelled while waiting for its turn."""


class _SharedReader:
    """The pipe's one buffered reader, lent to each response in turn: a response that reaches its
    end closes its file object, which must not close the reader the next response needs."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader

    def makefile(self, *_args: Any, **_kw: Any) -> _SharedReader:
        return self

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


class Pipe:
    """One pipelined HTTP/1.1 connection to a chunk server."""

    def __init__(self, host: str, port: int, timeout: float, source_address: tuple[str, int] | None,
                 connect: Connect) -> None:
        """`connect`: socket.create_connection's work, TLS included where the node speaks it."""
        sock = connect((host, port), timeout, source_address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self._reader = _SharedReader(self.sock.makefile("rb", buffering=1 << 16))
        self._cond = threading.Condition()
        self._sent = 0          # tickets handed out, in request order
        self._turn = 0          # the ticket whose response comes next
        self.broken = False
        self.broken_for_other = False    # closed because another download on it was given up

    def send(self, request: bytes) -> int:
        """Write one request; returns its ticket (its place among the responses)."""
        with self._cond:        # requests must not interleave on the wire
            if self.broken:
                raise PipeBroken("the connection was closed")
            try:
                self.sock.sendall(request)
            except OSError as exc:
                self._break()
                raise PipeBroken(str(exc)) from None
            ticket = self._sent
            self._sent += 1
            return ticket

    def response(self, ticket: int, deadline: float, cancel: threading.Event) -> http.client.HTTPResponse:
        """Wait for this ticket's turn, then read its response's status and headers."""
        with self._cond:
            while self._turn != ticket and not self.broken:
                if cancel.is_set() or time.monotonic() > deadline:
                    # Its response will still come: nobody could read the ones behind it.
                    self._break(for_other=True)
                    raise PipeCancelled()
                self._cond.wait(0.05)
            if self.broken:
                raise PipeBroken("the connection failed before this response")
        resp = http.client.HTTPResponse(self._reader)       # type: ignore[arg-type]
        resp.begin()
        return resp

    def done(self, resp: http.client.HTTPResponse) -> None:
        """The current response was read to its end: the next ticket's turn."""
        with self._cond:
            if resp.will_close:
                self._break()
            self._turn += 1
            self._cond.notify_all()

    def close(self, *, for_other: bool = False) -> None:
        """Close the pipe; `for_other`: because a download on it was given up, which says nothing
        about the source to the one being received."""
        with self._cond:
            self._break(for_other)

    def _break(self, for_other: bool = False) -> None:
        if not self.broken:
            self.broken = True
            self.broken_for_other = for_other
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self._cond.notify_all()


class Pipes:
    """The current pipe per (source host, port, WAN link), shared by the download threads.

    A pipe is connected outside the lock: a connect to a source that stopped hangs until its
    timeout, and must hold up neither the downloads of other links nor a cancel of a download
    waiting for that same pipe."""

    def __init__(self, local_addr: str | None) -> None:
        self.local_addr = local_addr
        self._pipes: dict[tuple[str, int, str], Pipe] = {}
        self._connecting: dict[tuple[str, int, str], threading.Event] = {}
        self._lock = threading.Lock()
        self._closed = False

    def get(self, host: str, port: int, group: str, timeout: float, connect: Connect,
            cancel: threading.Event) -> tuple[Pipe, bool]:
        """The pipe to use and whether it existed already (False: just connected, by `connect`).
        Raises PipeCancelled when `cancel` is set while another download connects the pipe."""
        key = (host, port, group)
        while True:
            with self._lock:
                pipe = self._pipes.get(key)
                if pipe is not None and not pipe.broken:
                    return pipe, True
                connected = self._connecting.get(key)
                if connected is None:
                    connected = self._connecting[key] = threading.Event()
                    break                       # this download connects it
            while not connected.wait(0.05):     # (then takes it, or connects anew if that failed)
                if cancel.is_set():
                    raise PipeCancelled()
        pipe = None
        try:
            pipe = Pipe(host, port, timeout, (self.local_addr, 0) if self.local_addr else None, connect)
        finally:
            with self._lock:
                del self._connecting[key]
                if pipe is not None:
                    if self._closed:
                        pipe.close()
                    else:
                        self._pipes[key] = pipe
            connected.set()
        return pipe, False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for pipe in self._pipes.values():
                pipe.close()
            self._pipes.clear()
