"""Real lanscatter processes on loopback for integration tests: start, poll, SIGKILL, clean up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lanscatter.core.auth import new_secret
from lanscatter.core.chunking import CDC
from lanscatter.deploy.process_stop import stop
from lanscatter.roles.master import MasterNode, MasterOptions
from lanscatter.roles.peer import PeerNode, PeerOptions

HOST = "127.0.0.1"


def any_port(tmp: Path, name: str) -> tuple[list[str], Path]:
    """Options making a node listen on a port of the system's choosing and write it to a file
    (`Node` reads it from there)."""
    path = tmp / f"{name}.port"
    path.unlink(missing_ok=True)             # (a restarted node writes it again)
    return ["--port", "0", "--port-file", str(path)], path


class Node:
    """A lanscatter process. `port`: the port it was told to listen on, or the file it writes the
    port into once listening (`--port 0 --port-file`: no port is chosen here and handed over, so no
    other process can take it in between)."""

    def __init__(self, argv: list[str], log: Path, port: int | Path, env: dict[str, str] | None = None) -> None:
        self._port = port if isinstance(port, int) else None
        self._port_file = port if isinstance(port, Path) else None
        self.log = log
        self._fh = open(log, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen([sys.executable, "-m", "lanscatter", *argv], stdout=self._fh,
                                     stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

    def _known_port(self) -> int | None:
        if self._port is None and self._port_file is not None:
            with contextlib.suppress(OSError, ValueError):
                self._port = int(self._port_file.read_text())
        return self._port

    @property
    def port(self) -> int:
        """The port it listens on (waits until it says, at most 30 s)."""
        port = wait_for(lambda: self._known_port() or self.proc.poll() is not None, 30, "the node's port", self)
        if self._port is None:
            raise AssertionError(f"the node exited before it listened\n{self.output()[-3000:]}")
        return int(port)

    def restarted(self, env: dict[str, str] | None = None) -> Node:
        """The same node started again (after kill()) at the same port: the nodes that knew it
        reconnect there."""
        argv = [str(a) for a in self.proc.args[3:]]          # type: ignore[index]  (drop: python -m lanscatter)
        argv[argv.index("--port") + 1] = str(self.port)
        if self._port_file is not None:
            self._port_file.unlink(missing_ok=True)
        return Node(argv, self.log, self._port_file or self.port, env)

    def status(self) -> dict[str, Any] | None:
        port = self._known_port()
        if port is None:
            return None
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/status", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        stop([self.proc], 10)
        self._fh.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Cluster:
    """A master and peers under one tmp folder; everything it starts is stopped by close(). They
    share a swarm secret made for the cluster unless one is given."""

    def __init__(self, tmp: Path, source: Path, chunk_size: str = "256KiB", secret: str | None = None) -> None:
        self.tmp = tmp
        self.source = source
        self.secret = secret or new_secret()
        self.chunk_size = chunk_size
        self.nodes: list[Node] = []
        self.master: Node | None = None

    def start_master(self, *extra: str, env: dict[str, str] | None = None) -> Node:
        port, port_file = any_port(self.tmp, "master")
        argv = ["master", str(self.source), "--listen", HOST, *port, "--chunk-size",
                self.chunk_size, "--state-dir", str(self.tmp / "state-master"), "--rescan-interval", "2", "--settle", "1",
                *extra]
        node = Node(argv, self.tmp / "master.log", port_file, {**self._env(), **(env or {})})
        self.nodes.append(node)
        self.master = node
        wait_for(lambda: node.status() is not None and node.status()["generation"], 30, "master up",
                 node)
        return node

    def start_peer(self, name: str, *extra: str, secret: str | None = None, folder: Path | None = None,
                   env: dict[str, str] | None = None) -> Node:
        assert self.master is not None
        port, port_file = any_port(self.tmp, name)
        argv = ["peer", f"{HOST}:{self.master.port}", str(folder or self.tmp / name), "--listen", HOST, *port,
                "--name", name, "--state-dir", str(self.tmp / f"state-{name}"),
                "--connect-timeout", "20", *extra]
        node = Node(argv, self.tmp / f"{name}.log", port_file,
                    {**(self._env() if secret is None else {"LANSCATTER_SECRET": secret}), **(env or {})})
        self.nodes.append(node)
        return node

    def start_relay(self, name: str, upstream: Node, *extra: str) -> Node:
        port, port_file = any_port(self.tmp, name)
        argv = ["proxy", f"{HOST}:{upstream.port}", str(self.tmp / name), "--listen", HOST, *port,
                "--peer-port", "0", "--name", name, "--state-dir", str(self.tmp / f"state-{name}"),
                "--connect-timeout", "20", *extra]
        node = Node(argv, self.tmp / f"{name}.log", port_file, self._env())
        self.nodes.append(node)
        wait_for(lambda: node.status() is not None, 30, f"relay {name} up", node)
        return node

    def start_peer_of(self, name: str, upstream: Node, *extra: str) -> Node:
        saved, self.master = self.master, upstream
        try:
            return self.start_peer(name, *extra)
        finally:
            self.master = saved

    def _env(self) -> dict[str, str]:
        return {"LANSCATTER_SECRET": self.secret}

    def close(self) -> None:
        for node in self.nodes:
            node.stop()


def synced(node: Node) -> bool:
    """Whether the node says it is in sync (False while it does not answer)."""
    st = node.status()
    return bool(st and st["synced"])


def wait_for(cond: Callable[[], Any], timeout: float, what: str, *nodes: Node) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    logs = "\n".join(f"--- {n.log.name} (exit code: {n.proc.poll()})\n{n.output()[-3000:]}" for n in nodes)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")


def make_tree(root: Path, seed: int = 1, chunk: int = 256 * 1024) -> None:
    """Nested folders, empty files and folders, sizes around chunk boundaries, duplicates, exec bits."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    sizes = [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 17, 5 * chunk]
    blobs = []
    for i, size in enumerate(sizes):
        path = root / f"d{i % 3}" / ("sub" if i % 2 else "") / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(size)
        path.write_bytes(data)
        blobs.append(data)
        os.utime(path, ns=(1_600_000_000_000_000_000 + i, 1_600_000_000_000_000_000 + i * 1000))
    (root / "copy-of-f6.bin").write_bytes(blobs[6])            # identical content: moved once
    (root / "text.txt").write_bytes(b"compressible text\n" * 40000)
    (root / "tool.sh").write_bytes(b"#!/bin/sh\necho ok\n")
    (root / "tool.sh").chmod(0o755)
    (root / "empty-dir" / "nested-empty").mkdir(parents=True)


def tree_state(root: Path) -> dict[str, Any]:
    """Everything a mirror must reproduce: files' bytes, mtimes and exec bits, and directories."""
    out: dict[str, Any] = {}
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = "dir"
        for f in files:
            p = Path(dirpath) / f
            try:
                st = p.lstat()
                data = p.read_bytes()
            except FileNotFoundError:      # renamed into place while we walked: seen as missing
                continue
            out[os.path.relpath(p, root)] = (data, st.st_mtime_ns, bool(st.st_mode & 0o100))
    return out


async def started_master(tmp: Path, *, chunk_size: int = 256 * 1024, chunking: str = CDC) -> MasterNode:
    """An in-process master of `tmp/origin` (filled with `make_tree`) on a free loopback port."""
    make_tree(tmp / "origin")
    master = MasterNode(MasterOptions(folder=tmp / "origin", state_dir=tmp / "ms", host=HOST, port=0,
                                      chunk_size=chunk_size, chunking=chunking, watch=False))
    await master.start()
    return master


def local_peer(tmp: Path, master: MasterNode, name: str) -> PeerNode:
    """An in-process peer of `master` mirroring into `tmp/p` (not yet running)."""
    return PeerNode(PeerOptions(master=HOST, master_port=master.port, folder=tmp / "p", state_dir=tmp / "ps",
                                host=HOST, port=0, name=name))


def flip_byte(path: Path, offset: int) -> None:
    """Rot one byte of a file in place, keeping its size and mtime (no rescan notices)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


async def run_peer_until(peer: PeerNode, done: Callable[[], bool], timeout: float = 30.0) -> None:
    """Run an in-process peer until `done` (at most `timeout` seconds; it must keep running), then
    stop it."""
    task = asyncio.create_task(peer.run())
    try:
        async with asyncio.timeout(timeout):
            while not done():
                assert not task.done(), "the peer stopped"
                await asyncio.sleep(0.05)
        assert not task.done(), "the peer stopped"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await peer.stop()
