"""The chunk client against a real chunk server: verified streaming, corrupt data, a source that
restarted behind a kept-alive connection."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from lanscatter.core.chunking import FIXED
from lanscatter.disk.hashing import hash_bytes
from lanscatter.net import chunk_http
from lanscatter.net.chunk_fetch import Fetcher
from lanscatter.net.chunk_http import ChunkServer, TrafficCounters
from lanscatter.net.tls import client_context
from lanscatter.net.upload_pace import Pace
from lanscatter.roles.master import MasterNode, MasterOptions


async def _master(tmp: Path, port: int, chunk_size: int = 1 << 20) -> MasterNode:
    m = MasterNode(MasterOptions(folder=tmp / "src", state_dir=tmp / "state", host="127.0.0.1", port=port,
                                 chunk_size=chunk_size, chunking=FIXED, watch=False))
    await m.start()
    return m


@contextlib.asynccontextmanager
async def _source(tmp: Path, mib: int, chunk_mib: int = 1) -> AsyncIterator[tuple[MasterNode, Fetcher, int, str, bytes]]:
    """A master serving one random file of `mib` MiB in `chunk_mib` MiB chunks, a fetcher, an output file."""
    (tmp / "src").mkdir()
    data = os.urandom(mib << 20)
    (tmp / "src" / "a.bin").write_bytes(data)
    master = await _master(tmp, 0, chunk_mib << 20)
    fetcher = Fetcher(TrafficCounters(), local_addr="127.0.0.1", threads=8)
    fd = os.open(tmp / "out", os.O_RDWR | os.O_CREAT)
    try:
        yield master, fetcher, fd, f"http://127.0.0.1:{master.port}", data
    finally:
        os.close(fd)
        fetcher.close()
        await master.stop()


async def test_fetch_survives_a_restarted_source_and_flags_corruption(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.bin").write_bytes(os.urandom(3 << 20))
    master = await _master(tmp_path, 0)
    port = master.port                # where it starts again below (the fetcher keeps this address)
    fetcher = Fetcher(TrafficCounters(), local_addr="127.0.0.1", threads=2)
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    url = f"http://127.0.0.1:{port}"
    try:
        assert master.manifest is not None
        (h0, s0), (h1, s1), (h2, s2) = master.manifest.chunk_table()
        r = await fetcher.fetch(url, h0, s0, token="", fd=fd, offset=0, timeout_s=10, buckets=[])
        assert r.ok and os.pread(fd, s0, 0) == (tmp_path / "src" / "a.bin").read_bytes()[:s0]
        await master.stop()                                   # the kept-alive connection is now dead
        master = await _master(tmp_path, port)
        r = await fetcher.fetch(url, h1, s1, token="", fd=fd, offset=s0, timeout_s=10, buckets=[])
        assert r.ok, r.error
        # The file rots under the same size and mtime: the bytes served no longer hash to the name.
        # Rot shows in no metadata, so the master's hash cache still vouches for the file (its
        # ctime, which a rewrite changes, is put back in the cache as rot would leave it).
        src = tmp_path / "src" / "a.bin"
        st = src.stat()
        src.write_bytes(bytes(st.st_size))
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
        entry = master.manifest.file("a.bin")
        assert entry is not None
        master.cache.put("a.bin", src.stat(), master.manifest.chunking, entry.chunks, entry.sizes)
        r = await fetcher.fetch(url, h2, s2, token="", fd=fd, offset=0, timeout_s=10, buckets=[])
        assert not r.ok and r.corrupt and r.error == "hash mismatch"
    finally:
        os.close(fd)
        fetcher.close()
        await master.stop()


async def test_a_download_says_it_is_ending_when_the_lead_is_left_not_a_piece_earlier(tmp_path: Path) -> None:
    # 8 MiB paced at 4 MB/s: about 2 s, a 1 MiB read a quarter of a second. The notice is to come
    # with about 0.1 s left, which is what the master needs to arrange the slot's next transfer
    # inside a site; a notice a whole read early would start that transfer beside this one for
    # three times as long.
    async with _source(tmp_path, 8, chunk_mib=8) as (master, fetcher, fd, url, data):
        assert master.manifest is not None
        (h, s), = master.manifest.chunk_table()
        said: list[tuple[float, float]] = []                  # (seconds left it said, when)
        r = await fetcher.fetch(url, h, s, token="", fd=fd, offset=0, timeout_s=20, buckets=[],
                                pace=Pace(rate=4e6), ending=lambda left: said.append((left, time.monotonic())))
        done = time.monotonic()
        assert r.ok, r.error
        assert os.pread(fd, s, 0) == data
        assert len(said) == 1
        left, at = said[0]
        assert 0.06 <= left <= 0.1, left
        assert 0.03 <= done - at <= 0.25, done - at


async def test_a_download_too_short_to_measure_says_it_is_ending_by_the_rate_its_source_was_told(
        tmp_path: Path) -> None:
    # 1 MiB paced at 100 MB/s: about 10 ms, shorter than the 30 ms a rate is measured over (16 MiB
    # at 10 Gbit/s is 13 ms). Judged by its told rate once half of it came, it still says Ending,
    # so the master arranges the slot's next transfer while this one runs, not after its report.
    async with _source(tmp_path, 1, chunk_mib=1) as (master, fetcher, fd, url, data):
        assert master.manifest is not None
        (h, s), = master.manifest.chunk_table()
        said: list[float] = []
        r = await fetcher.fetch(url, h, s, token="", fd=fd, offset=0, timeout_s=20, buckets=[],
                                pace=Pace(rate=1e8), ending=said.append)
        assert r.ok, r.error
        assert os.pread(fd, s, 0) == data
        assert len(said) == 1 and 0 <= said[0] <= 0.1, said


async def test_a_download_says_its_bytes_arrive_at_the_first_of_them(tmp_path: Path) -> None:
    # 1 MiB paced at 200 kB/s: a first read of 256 KiB would take 1.3 s. The master shares the
    # ports with a transfer from its first bytes on, so the notice must not wait for a full read.
    async with _source(tmp_path, 1, chunk_mib=1) as (master, fetcher, fd, url, data):
        assert master.manifest is not None
        (h, s), = master.manifest.chunk_table()
        start = time.monotonic()
        heard: list[float] = []
        r = await fetcher.fetch(url, h, s, token="", fd=fd, offset=0, timeout_s=20, buckets=[],
                                pace=Pace(rate=2e5), receiving=lambda: heard.append(time.monotonic()))
        assert r.ok, r.error
        assert os.pread(fd, s, 0) == data
        assert len(heard) == 1 and heard[0] - start < 0.5, [t - start for t in heard]


async def test_a_download_says_its_bytes_arrive_once_they_are_written(tmp_path: Path) -> None:
    """Receiving makes the downloader a source of the arriving chunk (protocol 11): it is said
    after the first bytes are written and their progress posted, so a request the master sends
    here on hearing it finds the prefix, not a 404."""
    async with _source(tmp_path, 1, chunk_mib=1) as (master, fetcher, fd, url, data):
        assert master.manifest is not None
        (h, s), = master.manifest.chunk_table()
        said: list[tuple[str, int]] = []

        def receiving() -> None:
            said.append(("receiving", len(os.pread(fd, s, 0))))

        r = await fetcher.fetch(url, h, s, token="", fd=fd, offset=0, timeout_s=20, buckets=[],
                                pace=Pace(rate=2e5), receiving=receiving,
                                progress=lambda n: said.append(("progress", n)))
        assert r.ok, r.error
        assert os.pread(fd, s, 0) == data
        assert [kind for kind, _ in said[:2]] == ["progress", "receiving"], said[:3]
        assert 0 < said[0][1] <= said[1][1]              # the first bytes were in the part file by then


async def _notices(fetcher: Fetcher, url: str, chunk: str, size: int, fd: int, rate: float,
                   ending_receives: bool) -> list[str]:
    """The notices a download paced at `rate` gives, in order."""
    said: list[str] = []
    r = await fetcher.fetch(url, chunk, size, token="", fd=fd, offset=0, timeout_s=20, buckets=[],
                            pace=Pace(rate=rate), ending=lambda _left: said.append("ending"),
                            receiving=lambda: said.append("receiving"), ending_receives=ending_receives)
    assert r.ok, r.error
    return said


async def test_a_download_too_short_to_measure_says_ending_alone_to_a_master_that_takes_it(tmp_path: Path) -> None:
    # 1 MiB told at 100 MB/s: 10 ms, under RATE_WINDOW_S. Its Ending half-way says that its bytes
    # flow too (protocol.ENDING_RECEIVES); for an older master it says Receiving as well.
    async with _source(tmp_path, 1, chunk_mib=1) as (master, fetcher, fd, url, data):
        assert master.manifest is not None
        (h, s), = master.manifest.chunk_table()
        assert await _notices(fetcher, url, h, s, fd, 1e8, ending_receives=True) == ["ending"]
        assert sorted(await _notices(fetcher, url, h, s, fd, 1e8, ending_receives=False)) == ["ending", "receiving"]
        # one long enough to measure says both, whatever the master
        assert await _notices(fetcher, url, h, s, fd, 2e6, ending_receives=True) == ["receiving", "ending"]
        assert os.pread(fd, s, 0) == data


async def test_an_upload_to_a_receiver_that_stops_reading_ends_and_frees_its_share(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A frozen downloader's kernel keeps the connection open with a zero window; without a limit
    # the upload would hold its share of the source's upload limit (and its count) for good.
    monkeypatch.setattr(chunk_http, "UNACKED_LIMIT_S", 1.0)
    loop = asyncio.get_running_loop()
    async with _source(tmp_path, 16, chunk_mib=16) as (master, _fetcher, _fd, url, _data):
        assert master.manifest is not None
        (h, _s), = master.manifest.chunk_table()
        port = int(url.rsplit(":", 1)[1])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)     # fills at once
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
            await loop.sock_sendall(sock, f"GET /chunks/{h} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            start = time.monotonic()
            while master.counters.uploads == 0 and time.monotonic() - start < 5:
                await asyncio.sleep(0.02)
            assert master.counters.uploads == 1                 # under way, and never read
            stalled = time.monotonic()
            while master.counters.uploads and time.monotonic() - stalled < 15:
                await asyncio.sleep(0.1)
            assert master.counters.uploads == 0
            assert time.monotonic() - stalled < 10
        finally:
            sock.close()


async def test_wan_transfers_pipelined_on_one_connection_and_cancel_spares_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    peers: list[object] = []                                  # the connection each request came on
    handle = ChunkServer.handle

    async def counting(self: ChunkServer, request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        return await handle(self, request)
    monkeypatch.setattr(ChunkServer, "handle", counting)
    pace = Pace(group="wan:hub>far", group_rate=8e6)          # ~0.13 s a chunk: the requests overlap
    async with _source(tmp_path, 6) as (master, fetcher, fd, url, data):
        assert master.manifest is not None
        table = master.manifest.chunk_table()
        endings: list[float] = []
        arrived: list[int] = []
        rs = await asyncio.gather(*(fetcher.fetch(url, h, s, token="", fd=fd, offset=k << 20, timeout_s=20,
                                                  buckets=[], pace=pace, ending=endings.append,
                                                  receiving=lambda k=k: arrived.append(k))
                                    for k, (h, s) in enumerate(table[:3])))
        assert sorted(arrived) == [0, 1, 2]                  # each said once that its bytes came
        assert all(r.ok for r in rs), rs
        assert len(endings) == 3 and all(0 <= e <= 0.3 for e in endings)   # once each, near the end
        assert os.pread(fd, 3 << 20, 0) == data[: 3 << 20]
        assert len(peers) == 3 and len(set(peers)) == 1          # one connection, requests pipelined
        # Cancel the first of three: the pipe breaks, the two behind it retry on a new one.
        tasks = [asyncio.create_task(fetcher.fetch(url, h, s, token="", fd=fd, offset=k << 20, timeout_s=20,
                                                   buckets=[], pace=pace))
                 for k, (h, s) in enumerate(table[3:6], start=3)]
        await asyncio.sleep(0.05)
        tasks[0].cancel()
        rest = await asyncio.gather(*tasks[1:])
        assert all(r.ok for r in rest), rest
        assert os.pread(fd, 2 << 20, 4 << 20) == data[4 << 20: 6 << 20]
        assert len(set(peers)) == 2


async def test_giving_up_a_queued_wan_transfer_does_not_blame_the_source_of_the_one_under_way(
        tmp_path: Path) -> None:
    pace = Pace(group="wan:hub>far", group_rate=2e6)          # ~0.5 s a chunk
    async with _source(tmp_path, 3) as (master, fetcher, fd, url, data):
        assert master.manifest is not None
        tasks = []
        for k, (h, s) in enumerate(master.manifest.chunk_table()):
            tasks.append(asyncio.create_task(fetcher.fetch(url, h, s, token="", fd=fd, offset=k << 20,
                                                           timeout_s=20, buckets=[], pace=pace)))
            await asyncio.sleep(0.02)                          # requests in this order on the pipe
        await asyncio.sleep(0.15)
        tasks[1].cancel()                                      # queued behind the first: the pipe must go
        first, third = await tasks[0], await tasks[2]
        # Cut off mid-body: a failure, neither corrupt (the old reading) nor the source's doing.
        assert not first.ok and first.blameless and not first.corrupt, first
        assert third.ok, third                                 # retried on a new connection
        assert os.pread(fd, 1 << 20, 2 << 20) == data[2 << 20:]


async def test_a_withdrawn_transfer_is_refused_when_its_request_comes_late(tmp_path: Path) -> None:
    """The seed cut a transfer before its request came (a downloader frozen, not gone): the
    request, when it comes, is refused and nothing is sent; other transfers are served."""
    async with _source(tmp_path, 2) as (master, fetcher, fd, url, data):
        assert master.manifest is not None
        (h0, s0), (h1, s1) = master.manifest.chunk_table()
        assert master.server.pacer.cut({41}) == 0                 # nothing under way yet
        sent = master.counters.tx_bytes
        r = await fetcher.fetch(url, h0, s0, token="", fd=fd, offset=0, timeout_s=10, buckets=[],
                                pace=Pace(rate=1e8, transfer=41))
        assert not r.ok and "410" in (r.error or "") and master.counters.tx_bytes == sent
        r = await fetcher.fetch(url, h1, s1, token="", fd=fd, offset=s0, timeout_s=10, buckets=[],
                                pace=Pace(rate=1e8, transfer=42))
        assert r.ok and os.pread(fd, s1, s0) == data[s0:s0 + s1]


class _StoppedSource:
    """A source that stopped (a frozen process): it answers one GET (`body`, if any) on its first
    connection and then nothing, and once its listen queue is full (`fill_queue`) a new connect
    hangs in the kernel (the SYN is dropped) until its timeout."""

    def __init__(self, body: bytes | None) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._served: threading.Thread | None = None
        if body is not None:
            self._served = threading.Thread(target=self._serve_one, args=(body,), daemon=True)
            self._served.start()

    def _serve_one(self, body: bytes) -> None:
        conn, _ = self.listener.accept()
        self._held.append(conn)
        request = b""
        while not request.endswith(b"\r\n\r\n"):
            request += conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    def fill_queue(self) -> None:
        """Connect until the queue is full (a connect times out): from then on connects hang."""
        if self._served is not None:
            self._served.join(5)
            assert not self._served.is_alive(), "the first GET was never served"
        for _ in range(20):
            s = socket.socket()
            s.settimeout(0.3)
            try:
                s.connect(("127.0.0.1", self.port))
            except TimeoutError:
                s.close()
                return
            self._held.append(s)
        raise AssertionError("the listen queue never filled")

    def close(self) -> None:
        for s in (*self._held, self.listener):
            s.close()


async def _cancelled_within(task: asyncio.Task[object], limit: float) -> float:
    await asyncio.sleep(0.5)
    assert not task.done(), task
    began = time.monotonic()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    took = time.monotonic() - began
    assert took < limit, f"the cancelled download took {took:.1f} s to stop"
    return took


@pytest.mark.parametrize("tls", [False, True], ids=["tcp-connect", "tls-handshake"])
@pytest.mark.parametrize("pace", [None, Pace(group="wan:hub>far", group_rate=8e6)], ids=["lan", "wan-pipe"])
async def test_a_cancel_ends_a_download_connecting_to_a_source_that_stopped(
        tmp_path: Path, pace: Pace | None, tls: bool) -> None:
    """A download that is connecting when its source freezes ends at once when cancelled, not at
    its socket's timeout: a standby gateway taking over, or a peer losing its master, waits for
    every download it cancels. Stuck in the TCP connect (the listen queue full), or with TLS in
    the handshake (the connection queued by the kernel, nobody answering it)."""
    source = _StoppedSource(None)
    if not tls:
        source.fill_queue()
    fetcher = Fetcher(TrafficCounters(), local_addr="127.0.0.1", threads=2,
                      tls=client_context(["ab" * 32]) if tls else None)
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    try:
        task = asyncio.create_task(fetcher.fetch(f"http://127.0.0.1:{source.port}", "0" * 64, 1 << 20, token="",
                                                 fd=fd, offset=0, timeout_s=30, buckets=[], pace=pace))
        await _cancelled_within(task, 2.0)
    finally:
        os.close(fd)
        fetcher.close()
        source.close()


async def test_a_cancel_ends_a_download_on_a_kept_connection_to_a_source_that_stopped(tmp_path: Path) -> None:
    """A kept-alive connection whose source froze: cancelled, the download neither waits for an
    answer nor connects again (which would hang too)."""
    data = os.urandom(64 << 10)
    chunk = hash_bytes(data)
    source = _StoppedSource(data)
    fetcher = Fetcher(TrafficCounters(), local_addr="127.0.0.1", threads=2)
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    url = f"http://127.0.0.1:{source.port}"
    try:
        first = await fetcher.fetch(url, chunk, len(data), token="", fd=fd, offset=0, timeout_s=30, buckets=[])
        assert first.ok, first
        source.fill_queue()
        task = asyncio.create_task(fetcher.fetch(url, chunk, len(data), token="", fd=fd, offset=0, timeout_s=30,
                                                 buckets=[]))
        await _cancelled_within(task, 2.0)
    finally:
        os.close(fd)
        fetcher.close()
        source.close()


async def test_a_wan_download_waiting_behind_a_hung_connect_is_cancelled_alone_and_others_go_on(
        tmp_path: Path) -> None:
    """Two downloads of one WAN link to a source that stopped: the first hangs connecting its
    pipe, the second waits for that pipe. Cancelled alone (the planner withdrew it), the second
    ends at once; a download over another link, to a source that answers, is not held up by the
    hung connect meanwhile."""
    source = _StoppedSource(None)
    source.fill_queue()
    pace = Pace(group="wan:hub>far", group_rate=8e6)
    async with _source(tmp_path, 1) as (master, fetcher, fd, url, data):
        assert master.manifest is not None
        (h, s), = master.manifest.chunk_table()
        stopped = f"http://127.0.0.1:{source.port}"
        try:
            first, second = (asyncio.create_task(fetcher.fetch(stopped, "0" * 64, 1 << 20, token="", fd=fd,
                                                               offset=0, timeout_s=30, buckets=[], pace=pace))
                             for _ in range(2))
            await asyncio.sleep(0.3)
            began = time.monotonic()
            other = await asyncio.wait_for(
                fetcher.fetch(url, h, s, token="", fd=fd, offset=0, timeout_s=30, buckets=[],
                              pace=Pace(group="wan:hub>near", group_rate=8e6)), 10)
            assert other.ok and time.monotonic() - began < 5, other
            assert os.pread(fd, s, 0) == data
            await _cancelled_within(second, 2.0)
            assert not first.done()                 # still connecting: only the second was withdrawn
            await _cancelled_within(first, 2.0)
        finally:
            source.close()
