"""Fuzzing a real master (its own process) on every surface a remote node reaches: the control
websocket before and after login, the chunk server, /status/ws. At least 10,000 hostile inputs
each, while a real peer (its own process) syncs every new generation byte for byte. The master
must answer every input (an error, a refusal, a close: never a hang), stay up, and stay under
RSS_LIMIT_MB of peak memory.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lanscatter.core import protocol as p
from lanscatter.core.auth import TOKEN_HEADER
from lanscatter.core.chunking import CDC, Chunking
from lanscatter.core.handshake import Channel
from lanscatter.disk.hash_cache import HashCache
from lanscatter.disk.scanner import scan_folder
from tests.fuzz.frames import (
    BINARY,
    TEXT,
    Frame,
    chunk_request,
    draw_many,
    draw_requests,
    frame,
    request_bytes,
)
from tests.fuzz.handshake import hello_frame, join, swarm_auth
from tests.fuzz.wire import CLOSE, HOST, RawWs, http_exchange
from tests.integration.nodes import Cluster, Node, make_tree, tree_state, wait_for

pytestmark = pytest.mark.fuzz

N = 10_000
SECRET = "fuzz-secret-0123456789"
RSS_LIMIT_MB = 150        # peak resident memory of the fuzzed master (about 60 MB at rest)
CHUNK = 64 * 1024
SLOW = 0                  # (a status for responses paced slower than the client waits)
PEER_TYPES = (p.Have, p.Report, p.Ending, p.Receiving, p.Stats)


@dataclass
class Swarm:
    cluster: Cluster
    master: Node
    peer: Node
    origin: Path
    hashes: list[str]

    def change_origin(self, tag: str) -> None:
        """A new generation: the peer syncs it while the fuzzing goes on."""
        (self.origin / f"{tag}.bin").write_bytes(tag.encode() * 50_000)

    def assert_well(self, record: Callable[[str, object], None]) -> None:
        assert self.master.proc.poll() is None, self.master.output()[-3000:]
        assert self.peer.proc.poll() is None, self.peer.output()[-3000:]
        peak = peak_rss_mb(self.master.proc.pid)
        record("master_peak_rss_mb", round(peak, 1))       # (in --junitxml reports)
        assert peak < RSS_LIMIT_MB
        wait_for(lambda: tree_state(self.cluster.tmp / "real") == tree_state(self.origin), 60,
                 "the real peer synced", self.master, self.peer)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    tmp = tmp_path_factory.mktemp("fuzz")
    origin = tmp / "origin"
    make_tree(origin, chunk=CHUNK)
    manifest, _ = scan_folder(origin, Chunking(CDC, CHUNK), HashCache(None))
    cluster = Cluster(tmp, origin, chunk_size="64KiB", secret=SECRET)
    try:
        master = cluster.start_master()
        peer = cluster.start_peer("real")
        yield Swarm(cluster, master, peer, origin, [h for h, _ in manifest.chunk_table()])
    finally:
        cluster.close()


async def _workers(n: int, work: object) -> None:
    async with asyncio.timeout(240):
        await asyncio.gather(*(work() for _ in range(n)))  # type: ignore[operator]


def _decodes_to(f: Frame, kinds: tuple[type[p.Message], ...]) -> bool:
    opcode, payload = f
    if opcode != TEXT or len(payload) > p.MAX_FRAME:
        return False
    try:
        return isinstance(p.decode(payload, "fuzz", p.MAX_FRAME), kinds)
    except p.RemoteProtocolError:
        return False


async def test_control_before_login(swarm: Swarm, record_property: Callable[[str, object], None]) -> None:
    """Every other frame goes as it was drawn (no secret), the others sealed as a Hello with the
    secret (a member sending hostile hellos: they reach decode)."""
    frames = draw_many(frame(list(p._REGISTRY.values()), swarm.hashes), N, salt=1)
    todo = iter(enumerate(frames))
    answered = 0
    swarm.change_origin("before-login")

    async def work() -> None:
        nonlocal answered
        for k, (opcode, payload) in todo:
            ws = await RawWs.open(swarm.master.port)
            if k % 2:
                ws.send(await hello_frame(ws, SECRET, payload), BINARY)
            else:
                assert json.loads((await ws.recv())[1])["t"] == "challenge"
                ws.send(payload, opcode)
            for reply in await ws.until_closed():       # refused: an error, or just the close
                assert len(reply) < 2000 and json.loads(reply)["t"] == "error"
            answered += 1
    await _workers(8, work)
    assert answered == N
    swarm.assert_well(record_property)


async def test_control_after_login(swarm: Swarm, record_property: Callable[[str, object], None]) -> None:
    frames = draw_many(frame(list(PEER_TYPES), swarm.hashes, strict=True, malformed=1), N, strict=True, salt=2)
    todo = iter(frames)
    sent = closed = 0
    swarm.change_origin("after-login")

    async def drain(ws: RawWs, channel: Channel) -> list[bytes]:
        errors = []
        while True:
            opcode, payload = await ws.recv()
            if opcode == CLOSE:
                return errors
            body = channel.open(payload, "master") if opcode == BINARY else payload
            if json.loads(body)["t"] == "error":
                errors.append(body)

    async def work() -> None:
        nonlocal sent, closed
        ws, channel = await join(swarm.master.port, SECRET)
        reader = asyncio.create_task(drain(ws, channel))
        for f in itertools.chain(todo, [None]):
            if f is None:       # the end: a message only a master sends is answered with an error
                ws.send(channel.seal(p.encode(p.Cancel(1)).encode()), BINARY)
                errors = await reader
                assert len(errors) == 1 and b"only a master sends" in errors[0], errors
                return
            opcode, payload = f       # sealed, as a member sends; drawn binary frames unsealed
            ws.send(channel.seal(payload) if opcode == TEXT else payload, BINARY)
            sent += 1
            if not _decodes_to(f, PEER_TYPES):   # this one closes the connection: join again
                errors = await reader
                assert all(len(e) < 2000 for e in errors)
                closed += 1
                ws, channel = await join(swarm.master.port, SECRET)
                reader = asyncio.create_task(drain(ws, channel))
            else:
                await ws.writer.drain()
    await _workers(4, work)
    assert sent == N and closed < N // 4
    swarm.assert_well(record_property)


async def test_chunk_server(swarm: Swarm, record_property: Callable[[str, object], None]) -> None:
    auth, source = swarm_auth(SECRET), f"{HOST}:{swarm.master.port}"
    tokens: dict[str, str] = {}

    def fresh_tokens() -> None:     # (a token lives two minutes)
        expires = int(time.time()) + 100
        tokens.update({h: auth.chunk_token(h, HOST, source, expires) for h in swarm.hashes})
    todo = iter(draw_requests(chunk_request(swarm.hashes), N))
    fresh_tokens()
    renewed = time.monotonic()
    statuses: dict[int, int] = {}
    swarm.change_origin("chunks")

    async def work() -> None:
        reader, writer = await asyncio.open_connection(HOST, swarm.master.port, limit=2**24)
        nonlocal renewed
        for parts in todo:
            if time.monotonic() - renewed > 60:
                fresh_tokens()
                renewed = time.monotonic()
            try:
                async with asyncio.timeout(0.5):     # (a chunk on loopback takes milliseconds)
                    status, keep = await http_exchange(reader, writer, request_bytes(parts, tokens, TOKEN_HEADER))
            except TimeoutError:      # a chunk sent as slowly as asked (rate=1): given up here
                status, keep = SLOW, False
            statuses[status] = statuses.get(status, 0) + 1
            if not keep:
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, swarm.master.port, limit=2**24)
        writer.close()
    await _workers(4, work)
    assert sum(statuses.values()) == N
    assert set(statuses) <= {200, 400, 403, 404, 405, 431, SLOW}, statuses
    assert statuses.get(SLOW, 0) < N // 50
    assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0 and statuses.get(404, 0) > 0
    swarm.assert_well(record_property)


async def test_status_websocket(swarm: Swarm, record_property: Callable[[str, object], None]) -> None:
    frames = draw_many(frame(list(p._REGISTRY.values()), swarm.hashes), N, salt=3)
    # ... and opcodes a client may not send: continuation, reserved, close with a body, pings.
    opcodes = itertools.cycle([TEXT] * 6 + [BINARY, 0, 3, 9, 10, 11, 15])
    todo = iter([(next(opcodes) if op == TEXT else op, payload) for op, payload in frames])
    sent = reconnects = 0
    swarm.change_origin("status")

    async def work() -> None:
        nonlocal sent, reconnects
        ws = await RawWs.open(swarm.master.port, "/status/ws")
        reader = asyncio.create_task(ws.until_closed())
        for opcode, payload in todo:
            ws.send(payload, opcode)
            sent += 1
            try:
                await ws.writer.drain()
            except ConnectionError:
                pass
            await asyncio.sleep(0)
            if reader.done() or ws.writer.is_closing():   # the server closed this one: open another
                ws.close()
                reader.cancel()
                reconnects += 1
                ws = await RawWs.open(swarm.master.port, "/status/ws")
                reader = asyncio.create_task(ws.until_closed())
        ws.close()
        reader.cancel()
    started = time.monotonic()
    await _workers(4, work)
    assert sent == N
    status, _ = await asyncio.to_thread(_get_status, swarm.master.port)
    assert status == 200, time.monotonic() - started
    swarm.assert_well(record_property)


def _get_status(port: int) -> tuple[int, bytes]:
    import urllib.request
    with urllib.request.urlopen(f"http://{HOST}:{port}/status", timeout=10) as r:
        return r.status, r.read()
