"""Attacks found against real nodes on loopback, each replayed: the node stays up, keeps serving
the others, and its memory, status document and log stay small (docs/security.md, "Input bounds")."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from lanscatter.core import protocol as p
from lanscatter.core.auth import TOKEN_HEADER, Auth
from lanscatter.core.chunking import FIXED
from lanscatter.core.handshake import seal_hello
from lanscatter.deploy.process_stop import stop
from lanscatter.net.server import bind_site
from tests.integration import control_client
from tests.integration.nodes import (
    HOST,
    Cluster,
    any_port,
    local_peer,
    make_tree,
    started_master,
    tree_state,
    wait_for,
)

SECRET = "bounds-test-secret"


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def with_descriptors(nofile: int, argv: list[str]) -> list[str]:
    """`argv` (a Python command line) run with at most `nofile` descriptors."""
    limit = (f"import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile})); "
             "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
    return [sys.executable, "-c", limit, *argv]


def hello_body(name: str) -> bytes:
    return p.encode(control_client.hello(name)).encode()


async def send_hello(ws: aiohttp.ClientWebSocketResponse, secret: str | None, body: bytes) -> None:
    """`body` as the Hello answering the challenge waiting on `ws`, sealed with `secret`: a member
    of the swarm (or, with no secret, anyone) sending a hostile hello."""
    challenge = await ws.receive_json(timeout=5)
    await ws.send_bytes(seal_hello(_auth(secret), challenge["nonce"], body))


@functools.cache
def _auth(secret: str | None) -> Auth:
    """The secret stretched once (a node does the same), not in the event loop of every hello."""
    return Auth(secret)


async def test_a_huge_integer_in_stats_leaves_the_master_serving(tmp_path: Path) -> None:
    master = await started_master(tmp_path)
    try:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"http://{HOST}:{master.port}/ws") as ws:
            client = await control_client.ControlClient.join(ws, control_client.hello("big"))
            for digits in (400, 401):       # two samples: the rate meter divides their difference
                stats = json.dumps({"t": "stats", "rx_bytes": int("9" * digits), "tx_bytes": 0, "uploads": 0,
                                    "complete": False})
                await ws.send_bytes(client.channel.seal(stats.encode()))
            async with asyncio.timeout(5):
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        body = client.channel.open(msg.data, "master")
                        assert len(body) < 1000 or json.loads(body)["t"] != "error"
        status, body = await asyncio.to_thread(get, f"http://{HOST}:{master.port}/status")
        assert status == 200 and json.loads(body)["generation"]
        status, _ = await asyncio.to_thread(get, f"http://{HOST}:{master.port}/metrics")
        assert status == 200
    finally:
        await master.stop()


def test_fifty_hellos_with_big_names_leave_memory_status_and_log_small(tmp_path: Path) -> None:
    make_tree(tmp_path / "origin")
    cluster = Cluster(tmp_path, tmp_path / "origin", secret=SECRET)
    try:
        master = cluster.start_master()
        log_before = master.log.stat().st_size

        async def attack() -> None:
            async with aiohttp.ClientSession() as session:
                async def one(k: int) -> None:
                    try:
                        async with session.ws_connect(f"http://{HOST}:{master.port}/ws") as ws:
                            await send_hello(ws, SECRET, hello_body(f"{k}" + "n" * 4_000_000))
                            await ws.receive(timeout=10)
                    except (aiohttp.ClientError, ConnectionError):
                        pass        # refused mid-frame: that is the point
                await asyncio.gather(*(one(k) for k in range(50)))
        asyncio.run(attack())
        status, body = get(f"http://{HOST}:{master.port}/status")
        assert status == 200 and len(body) < 100_000, len(body)
        grown = master.log.stat().st_size - log_before
        assert grown < 100_000, master.output()[-2000:]
        assert peak_rss_mb(master.proc.pid) < 200, peak_rss_mb(master.proc.pid)
    finally:
        cluster.close()


def test_a_60_mb_frame_is_refused_without_being_echoed(tmp_path: Path) -> None:
    make_tree(tmp_path / "origin")
    cluster = Cluster(tmp_path, tmp_path / "origin", secret=SECRET)
    try:
        master = cluster.start_master()

        async def attack() -> int:
            received = 0
            async with aiohttp.ClientSession() as session, \
                    session.ws_connect(f"http://{HOST}:{master.port}/ws", max_msg_size=0) as ws:
                try:
                    await send_hello(ws, SECRET, hello_body("x" * 60_000_000))
                except ConnectionError:
                    pass
                async with asyncio.timeout(20):
                    async for msg in ws:
                        received += len(msg.data or b"") if isinstance(msg.data, (str, bytes)) else 0
            return received
        assert asyncio.run(attack()) < 1000
        assert get(f"http://{HOST}:{master.port}/status")[0] == 200
        assert peak_rss_mb(master.proc.pid) < 200
    finally:
        cluster.close()


async def test_deeply_nested_json_is_a_protocol_error_not_a_traceback(tmp_path: Path) -> None:
    master = await started_master(tmp_path)
    try:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"http://{HOST}:{master.port}/ws") as ws:
            await send_hello(ws, None, b"[" * 30_000 + b"]" * 30_000)
            error = await ws.receive_json(timeout=5)
            assert error["t"] == "error" and "nested too deeply" in error["message"]
    finally:
        await master.stop()


async def test_a_huge_rate_is_refused_and_the_chunk_server_keeps_serving(tmp_path: Path) -> None:
    master = await started_master(tmp_path)
    try:
        assert master.manifest is not None
        chunk, size = master.manifest.chunk_table()[0]
        url = f"http://{HOST}:{master.port}/chunks/{chunk}"
        for query in ("?rate=1e30", "?rate=nan", "?group=g&group_rate=1e300", "?t=-3", "?rate=-1"):
            status, _ = await asyncio.to_thread(get, url + query)
            assert status == 400, query
        status, body = await asyncio.to_thread(get, url + "?rate=1000000")
        assert status == 200 and len(body) == size
        async with asyncio.timeout(5):     # (the handler ends just after its last byte went out)
            while master.counters.uploads:
                await asyncio.sleep(0.01)
        assert not master.server.pacer._uploads
    finally:
        await master.stop()


async def test_a_bad_hash_with_a_valid_token_is_a_404_without_an_error_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_tree(tmp_path / "origin")
    from lanscatter.roles.master import MasterNode, MasterOptions
    master = MasterNode(MasterOptions(folder=tmp_path / "origin", state_dir=tmp_path / "ms", host=HOST, port=0,
                                      chunk_size=256 * 1024, watch=False, secret=SECRET))
    await master.start()
    try:
        for bad in ("zz", "Z" * 64, "0" * 63, "0" * 200):
            token = Auth(SECRET).chunk_token(bad, HOST, f"{HOST}:{master.port}", int(time.time()) + 60)
            status, _ = await asyncio.to_thread(get, f"http://{HOST}:{master.port}/chunks/{bad}",
                                                {TOKEN_HEADER: token})
            assert status == 404, bad
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await master.stop()


async def test_status_clients_beyond_the_cap_get_a_503(tmp_path: Path) -> None:
    from lanscatter.net.node_http import STATUS_CLIENTS_MAX
    master = await started_master(tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            held = [await session.ws_connect(f"http://{HOST}:{master.port}/status/ws")
                    for _ in range(STATUS_CLIENTS_MAX)]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"http://{HOST}:{master.port}/status/ws")
            assert refused.value.status == 503
            await held.pop().close()
            await asyncio.sleep(0.2)
            held.append(await session.ws_connect(f"http://{HOST}:{master.port}/status/ws"))
            for ws in held:
                await ws.close()
    finally:
        await master.stop()


async def test_connections_beyond_the_per_address_limit_get_a_503(tmp_path: Path) -> None:
    from aiohttp import web

    from lanscatter.net.server import ConnectionLimits
    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")
    app = web.Application()
    app.add_routes([web.get("/", ok)])
    runner, port = await bind_site(app, HOST, 0, limits=ConnectionLimits(total=100, per_address=3))
    try:
        held = [await asyncio.open_connection(HOST, port) for _ in range(3)]
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 503") and b"too many connections" in answer
        writer.close()
        other = await asyncio.open_connection(HOST, port, local_addr=("127.0.0.2", 0))   # another address
        other[1].write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            assert (await other[0].readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
        for _, w in [*held, other]:
            w.close()
    finally:
        await runner.cleanup()


def _limited_master(tmp: Path, nofile: int) -> tuple[subprocess.Popen[bytes], int, Path]:
    """A master in a process allowed `nofile` descriptors."""
    make_tree(tmp / "origin")
    listen, port_file = any_port(tmp, "master")
    log = tmp / "master.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(with_descriptors(nofile, [
            "-m", "lanscatter", "master", str(tmp / "origin"), "--listen", HOST, *listen,
            "--chunk-size", "256KiB", "--state-dir", str(tmp / "ms"), "--rescan-interval", "2"]),
            stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "LANSCATTER_SECRET": SECRET})
    wait_for(lambda: port_file.exists() or proc.poll() is not None, 30, "the master listening")
    return proc, int(port_file.read_text()), log


def test_status_clients_beyond_the_descriptors_neither_storm_the_log_nor_lock_out_a_peer(
        tmp_path: Path) -> None:
    proc, port, log = _limited_master(tmp_path, 200)
    peer: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: proc.poll() is not None or get(f"http://{HOST}:{port}/status")[0] == 200, 30,
                 "master up")
        assert proc.poll() is None

        async def flood_then_join() -> tuple[int, int]:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                clients: list[aiohttp.ClientWebSocketResponse] = []
                refused = 0

                async def one() -> None:
                    nonlocal refused
                    try:
                        clients.append(await session.ws_connect(f"http://{HOST}:{port}/status/ws", timeout=
                                                                aiohttp.ClientWSTimeout(ws_close=1)))
                    except (aiohttp.WSServerHandshakeError, aiohttp.ClientError):
                        refused += 1
                await asyncio.gather(*(one() for _ in range(400)))
                await asyncio.sleep(3)          # held open while the master rescans and a peer joins
                held = len(clients)
                for ws in clients:
                    await ws.close()
                return held, refused
        lines_before = len(log.read_bytes().splitlines())
        with (tmp_path / "peer.log").open("wb") as peer_log:
            peer = subprocess.Popen(
                [sys.executable, "-m", "lanscatter", "peer", f"{HOST}:{port}", str(tmp_path / "p"), "--listen",
                 "127.0.0.2", "--port", "0", "--name", "real", "--state-dir", str(tmp_path / "ps"),
                 "--connect-timeout", "20"], stdout=peer_log, stderr=subprocess.STDOUT,
                env={**os.environ, "LANSCATTER_SECRET": SECRET})
        held, refused = asyncio.run(flood_then_join())
        assert held + refused == 400 and refused > 300
        (tmp_path / "origin" / "new.txt").write_text("a rescan under pressure\n")
        wait_for(lambda: tree_state(tmp_path / "p") == tree_state(tmp_path / "origin"), 60, "peer synced")
        lines = log.read_bytes().splitlines()[lines_before:]
        assert len(lines) < 50, lines[:20]
        assert proc.poll() is None
    finally:
        stop([p for p in (peer, proc) if p is not None], 10)


_EMFILE_SERVER = """
import asyncio, logging, sys
from aiohttp import web
from lanscatter.net.server import bind_site
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
async def main():
    async def ok(_request):
        return web.Response(text="ok")
    app = web.Application()
    app.add_routes([web.get("/", ok)])
    runner, port = await bind_site(app, "127.0.0.1", 0)
    held = []
    try:
        while True:     # descriptors busy with files, all but two
            held.append(open("/dev/null"))
    except OSError:
        del held[:2]
    print(port, flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def test_running_out_of_descriptors_on_accept_warns_rarely(tmp_path: Path) -> None:
    """A node whose descriptors are mostly taken by open files: accept fails with EMFILE, and the
    node says so once, not thousands of times."""
    proc = subprocess.Popen(with_descriptors(60, ["-c", _EMFILE_SERVER]), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    socks = []
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        for _ in range(200):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((HOST, port))
            socks.append(s)
        time.sleep(3)
        for s in socks:
            s.close()
        socks.clear()
        time.sleep(1)
        with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=10) as r:   # serving again
            assert r.read() == b"ok"
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    lines = err.decode(errors="replace").splitlines()
    assert any("out of file descriptors" in line for line in lines), lines
    assert len(lines) < 20, lines[:20]


async def test_a_have_longer_than_one_frame_goes_in_pieces(tmp_path: Path) -> None:
    """A peer holding more chunks than one 64 KiB frame lists tells the master all of them."""
    master = await started_master(tmp_path, chunk_size=1024, chunking=FIXED)   # thousands of chunks
    assert master.manifest is not None and len(master.manifest.chunk_table()) > 3 * 512
    shutil.copytree(tmp_path / "origin", tmp_path / "p")       # (copy2: mtimes kept)
    peer = local_peer(tmp_path, master, "many")
    task = asyncio.create_task(peer.run())
    try:
        async with asyncio.timeout(60):
            while not ((link := master.swarm.peers.get("many")) and link.complete):
                await asyncio.sleep(0.1)
        assert peer.downloaded_chunks == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await peer.stop()
        await master.stop()
