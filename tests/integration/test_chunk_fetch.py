"""The chunk client against a real chunk server: verified streaming, corrupt data, a source that
restarted behind a kept-alive connection."""

from __future__ import annotations

import os
from pathlib import Path

from lanscatter.auth import Auth
from lanscatter.chunk_fetch import Fetcher
from lanscatter.chunk_http import TrafficCounters
from lanscatter.master import MasterNode, MasterOptions
from tests.integration.nodes import free_port


async def _master(tmp: Path, port: int) -> MasterNode:
    m = MasterNode(MasterOptions(folder=tmp / "src", state_dir=tmp / "state", host="127.0.0.1", port=port,
                                 chunk_size=1 << 20, watch=False))
    await m.start()
    return m


async def test_fetch_survives_a_restarted_source_and_flags_corruption(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.bin").write_bytes(os.urandom(3 << 20))
    port = free_port()
    master = await _master(tmp_path, port)
    fetcher = Fetcher(TrafficCounters(), local_addr="127.0.0.1", threads=2)
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    url = f"http://127.0.0.1:{port}"
    try:
        assert master.manifest is not None
        (h0, s0), (h1, s1), (h2, s2) = master.manifest.chunk_table()
        r = await fetcher.fetch(url, h0, s0, auth=Auth(None), fd=fd, offset=0, timeout_s=10, buckets=[])
        assert r.ok and os.pread(fd, s0, 0) == (tmp_path / "src" / "a.bin").read_bytes()[:s0]
        await master.stop()                                   # the kept-alive connection is now dead
        master = await _master(tmp_path, port)
        r = await fetcher.fetch(url, h1, s1, auth=Auth(None), fd=fd, offset=s0, timeout_s=10, buckets=[])
        assert r.ok, r.error
        # The file rots under the same size and mtime: the bytes served no longer hash to the name.
        src = tmp_path / "src" / "a.bin"
        st = src.stat()
        src.write_bytes(bytes(st.st_size))
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
        r = await fetcher.fetch(url, h2, s2, auth=Auth(None), fd=fd, offset=0, timeout_s=10, buckets=[])
        assert not r.ok and r.corrupt and r.error == "hash mismatch"
    finally:
        os.close(fd)
        fetcher.close()
        await master.stop()
