"""TLS on loopback: real nodes sync over it, a wrong pin or a missing TLS setting is refused with a
clear error, chunks fetched over TLS are verified as before (plain, LZ4, pipelined)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

from lanscatter.core.chunking import FIXED
from lanscatter.disk.hashing import new_hasher
from lanscatter.net.chunk_fetch import Fetcher
from lanscatter.net.chunk_http import TrafficCounters
from lanscatter.net.tls import client_context, fingerprint_der, fingerprint_file, new_identity, server_tls
from lanscatter.net.upload_pace import Pace
from lanscatter.roles.master import MasterNode, MasterOptions
from tests.integration.nodes import HOST, Cluster, make_tree, synced, tree_state, wait_for
from tests.integration.up_runs import UpRun, write_tree


def _tls_master(cluster: Cluster, tmp: Path) -> tuple[object, str]:
    """A master that serves TLS only (control and chunks), its identity made on its first start."""
    ident = tmp / "master-tls"
    master = cluster.start_master("--tls-cert", str(ident / "cert.pem"), "--tls-key", str(ident / "key.pem"),
                                  "--tls-required")
    return master, fingerprint_file(ident / "cert.pem")


def test_tls_master_and_peers_sync_byte_identically(cluster: Cluster, tmp_path: Path) -> None:
    master, master_fp = _tls_master(cluster, tmp_path)
    fps = {name: new_identity(tmp_path / f"{name}-tls", name) for name in ("p1", "p2")}
    pins = [a for fp in (master_fp, *fps.values()) for a in ("--tls-fingerprint", fp)]
    peers = [cluster.start_peer(name, "--tls-cert", str(tmp_path / f"{name}-tls" / "cert.pem"),
                                "--tls-key", str(tmp_path / f"{name}-tls" / "key.pem"), "--tls-required", *pins)
             for name in fps]
    wait_for(lambda: all(synced(n) for n in peers) and synced(master), 60, "every peer in sync over TLS",
             master, *peers)
    want = tree_state(cluster.source)
    for name in fps:
        assert tree_state(tmp_path / name) == want, f"{name} differs from the origin"
    # /status stays plain HTTP on the same port (Node.status above used it); the chunk port of a
    # peer answers TLS, with the certificate the others pinned.
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((HOST, peers[0].port), timeout=5) as raw, \
            ctx.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None and fingerprint_der(der) == fps["p1"]
    for node in (master, *peers):
        out = node.output()
        assert "Traceback" not in out and " ERROR " not in out, out[-2000:]


def test_a_peer_pinning_another_certificate_refuses_to_join(cluster: Cluster, tmp_path: Path) -> None:
    master, _fp = _tls_master(cluster, tmp_path)
    folder = tmp_path / "wary"
    (folder / "keep").mkdir(parents=True)
    (folder / "keep" / "mine.txt").write_bytes(b"local content")
    before = tree_state(folder)
    wrong = new_identity(tmp_path / "other-tls", "impostor")
    peer = cluster.start_peer("wary", "--tls-fingerprint", wrong)
    code = peer.proc.wait(timeout=30)
    out = peer.output()
    assert code != 0
    assert "error: the master at 127.0.0.1" in out and "is not the one this node trusts" in out, out
    assert "hint:" in out and "Traceback" not in out
    assert tree_state(folder) == before
    assert " ERROR " not in master.output()


def test_a_plaintext_peer_to_a_tls_only_master_is_told_so(cluster: Cluster, tmp_path: Path) -> None:
    master, _fp = _tls_master(cluster, tmp_path)
    peer = cluster.start_peer("plain")
    code = peer.proc.wait(timeout=30)
    out = peer.output()
    assert code != 0
    assert "accepts control and chunk requests over TLS only" in out and "hint:" in out, out
    assert "Traceback" not in out
    # A chunk request in the clear gets the same answer and nothing else.
    try:
        urllib.request.urlopen(f"http://{HOST}:{master.port}/chunks/{'0' * 64}", timeout=5)
        raise AssertionError("a plaintext chunk request was served")
    except urllib.error.HTTPError as exc:
        assert exc.code == 426
    master_out = master.output()
    assert "Traceback" not in master_out and " ERROR " not in master_out


def test_a_tls_peer_to_a_plain_master_stops_at_once(cluster: Cluster, tmp_path: Path) -> None:
    master = cluster.start_master()
    peer = cluster.start_peer("eager", "--tls-fingerprint", "ab" * 32)
    code = peer.proc.wait(timeout=30)
    out = peer.output()
    assert code != 0 and "error: no TLS with the master at 127.0.0.1" in out and "Traceback" not in out, out
    master_out = master.output()
    assert "Traceback" not in master_out and " ERROR " not in master_out, master_out


async def _tls_source(tmp: Path, files: dict[str, bytes]) -> tuple[MasterNode, str]:
    (tmp / "src").mkdir()
    for name, data in files.items():
        (tmp / "src" / name).write_bytes(data)
    fp = new_identity(tmp / "tls", "source")
    master = MasterNode(MasterOptions(folder=tmp / "src", state_dir=tmp / "state", host=HOST, port=0,
                                      chunk_size=1 << 20, chunking=FIXED, watch=False,
                                      tls=server_tls(tmp / "tls" / "cert.pem", tmp / "tls" / "key.pem",
                                                     required=True)))
    await master.start()
    return master, fp


async def test_chunks_over_tls_are_verified_plain_lz4_pipelined_and_paced(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    text = b"compressible text line\n" * 50_000
    master, fp = await _tls_source(tmp_path, {"a.bin": data, "t.txt": text})
    fetcher = Fetcher(TrafficCounters(), local_addr=HOST, threads=4, tls=client_context([fp]))
    stranger = Fetcher(TrafficCounters(), local_addr=HOST, threads=1, tls=client_context(["ab" * 32]))
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    url = f"http://{HOST}:{master.port}"
    try:
        assert master.manifest is not None
        table = master.manifest.chunk_table()
        wire = []
        for i, (h, size) in enumerate(table):
            pace = Pace(group="wan:a>b", group_rate=1e9) if i % 2 else None     # odd ones pipelined
            r = await fetcher.fetch(url, h, size, token="", fd=fd, offset=0, timeout_s=20,
                                    buckets=[], pace=pace)
            assert r.ok, r.error                    # hashed while streaming: the bytes are right
            hasher = new_hasher()
            hasher.update(os.pread(fd, size, 0))
            assert hasher.hexdigest() == h
            wire.append(r.wire_bytes / size)
        assert min(wire) < 0.5 and max(wire) >= 1      # the text went as LZ4, the random data plain
        # Pacing is set on the TCP socket under the TLS layer: 1 MiB at 600 kB/s takes about 1.7 s,
        # and at its first bytes the upload is one the source's kernel paces (not a token bucket).
        first = new_hasher()
        first.update(data[:1 << 20])
        start = time.monotonic()
        kernel_paced: list[int] = []
        r = await fetcher.fetch(url, first.hexdigest(), 1 << 20, token="", fd=fd, offset=0, timeout_s=20,
                                buckets=[], pace=Pace(rate=6e5),
                                receiving=lambda: kernel_paced.append(len(master.server.pacer._uploads)))
        assert r.ok and time.monotonic() - start > 1.2, (r, time.monotonic() - start)
        assert kernel_paced == [1]
        # A source whose certificate is not pinned: no byte of the chunk is taken.
        h0, s0 = table[0]
        r = await stranger.fetch(url, h0, s0, token="", fd=fd, offset=0, timeout_s=10, buckets=[])
        assert not r.ok and "not pinned" in r.error, r.error
        # The file rots under the same size and mtime: over TLS too, the hash catches it. Rot shows
        # in no metadata, so the master's hash cache still vouches for the file (its ctime, which
        # a rewrite changes, is put back in the cache as rot would leave it).
        src = tmp_path / "src" / "a.bin"
        st = src.stat()
        src.write_bytes(bytes(st.st_size))
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
        entry = master.manifest.file("a.bin")
        assert entry is not None
        master.cache.put("a.bin", src.stat(), master.manifest.chunking, entry.chunks, entry.sizes)
        r = await fetcher.fetch(url, first.hexdigest(), 1 << 20, token="", fd=fd, offset=0, timeout_s=10,
                                buckets=[])
        assert not r.ok and r.corrupt and r.error == "hash mismatch"
    finally:
        os.close(fd)
        fetcher.close()
        stranger.close()
        await master.stop()


def test_a_local_rehearsal_runs_tls_with_no_manual_step(tmp_path: Path, runs: list[UpRun]) -> None:
    # hq under the default (wan): it serves TLS to br's relay; br under `all`: its LAN too.
    make_tree(tmp_path / "source")
    tree = write_tree(tmp_path / "tls.yaml", {
        "dataset": {"source": str(tmp_path / "source"), "origin": "o", "chunk_size": "256KiB",
                    "secret": {"value": "tls rehearsal secret, long enough"}},
        "sites": {"hq": {"hosts": {"o": None, "p": None}},
                  "br": {"gateway": "g", "tls": "all", "hosts": {"g": None, "b": None}}},
        "wan": [{"between": ["hq", "br"], "bandwidth": "200Mbit"}],
    })
    work = tmp_path / "work"
    run = UpRun(tree, "--local", "--exit-when-synced", "--timeout", "90", workdir=work, log=tmp_path / "up.log")
    runs.append(run)
    assert run.wait(110) == 0, run.output()
    want = tree_state(tmp_path / "source")
    for site, host in (("hq", "p"), ("br", "g"), ("br", "b")):
        assert tree_state(work / site / host) == want, f"{host} differs from the origin"
    logs = {h: (work / "logs" / f"{h}.log").read_text() for h in "opgb"}
    for h in "opgb":
        assert "serving TLS too" in logs[h], logs[h][-2000:]          # each made its identity
        assert "Traceback" not in logs[h] and " ERROR " not in logs[h]
    assert "--tls-fingerprint" in logs["g"] and "--tls-fingerprint" in logs["b"]
    assert "--tls-fingerprint" not in logs["p"] and "--tls-required" not in logs["o"]
    assert "--tls-required" in logs["b"]


async def test_garbage_after_a_tls_byte_closes_that_connection_only(tmp_path: Path) -> None:
    # The first byte says TLS, the rest is junk (or nothing at all): one connection ends, the node
    # logs no error and keeps serving, in the clear and over TLS.
    master, fp = await _tls_source(tmp_path, {"a.bin": os.urandom(1 << 20)})
    fetcher = Fetcher(TrafficCounters(), local_addr=HOST, threads=1, tls=client_context([fp]))
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    try:
        async with asyncio.timeout(20):
            for junk in (b"\x16" + os.urandom(300_000), b"\x16\x03\x01\xff\xff" + b"\x00" * 70_000, b"\x16"):
                reader, writer = await asyncio.open_connection(HOST, master.port)
                writer.write(junk)
                await writer.drain()
                if len(junk) == 1:
                    writer.write_eof()
                with contextlib.suppress(ConnectionError):
                    while await reader.read(65536):
                        pass                      # whatever the server says, it ends the connection
                writer.close()
            assert master.manifest is not None
            (h, s), = master.manifest.chunk_table()
            r = await fetcher.fetch(f"http://{HOST}:{master.port}", h, s, token="", fd=fd, offset=0,
                                    timeout_s=10, buckets=[])
            assert r.ok, r.error
            status = await asyncio.to_thread(_get, f"http://{HOST}:{master.port}/status")
            assert status == 200
    finally:
        os.close(fd)
        fetcher.close()
        await master.stop()


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return int(resp.status)
