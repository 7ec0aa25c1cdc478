"""`lanscatter tui` as an operator runs it: its own process on a terminal, quit with `q`."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

from feed_server import serve

from lanscatter.deploy.process_stop import stop


def read_until(fd: int, needle: bytes, timeout_s: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout_s
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not on the terminal within {timeout_s} s; got {seen[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            seen += os.read(fd, 65536)
    return seen


def test_lanscatter_tui_shows_the_sites_and_quits_on_q() -> None:
    with serve(at=12.0) as servers:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        command = [
            sys.executable,
            "-c",
            "from lanscatter.cli import main; main()",
            "tui",
            f"hq={servers.url('hq')}",
            f"branch={servers.url('branch')}",
        ]
        proc = subprocess.Popen(
            command,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "TERM": "xterm-256color"},
            start_new_session=True,
        )
        os.close(slave)
        try:
            read_until(master, b"hq-3", timeout_s=20)
            os.write(master, b"q")
            assert proc.wait(timeout=10) == 0
        finally:
            stop([proc], 5)
            os.close(master)
