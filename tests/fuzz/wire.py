"""A minimal websocket and HTTP/1.1 client on raw asyncio streams, for sending fuzzed frames
fast: frames are built by hand (any opcode, any payload, no validation), and nothing is parsed
beyond what a test needs."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

HOST = "127.0.0.1"
CLOSE = 8


class Refused(Exception):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One client frame (FIN, masked with a zero key: the payload goes as it is)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 2**16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload


class RawWs:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, path: str = "/ws", *, local: str | None = None) -> RawWs:
        reader, writer = await asyncio.open_connection(HOST, port, limit=2**24,
                                                       local_addr=(local, 0) if local else None)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                     .encode())
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            raise Refused(0) from None
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            writer.close()
            raise Refused(status)
        return cls(reader, writer)

    def send(self, payload: bytes, opcode: int = 1) -> None:
        self.writer.write(ws_frame(payload, opcode))

    async def recv(self) -> tuple[int, bytes]:
        """The next frame from the server as (opcode, payload); (CLOSE, b"") at the end."""
        try:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return b0 & 0x0F, await self.reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError):
            return CLOSE, b""

    async def until_closed(self) -> list[bytes]:
        """Text frames received until the server closes, or sends a binary frame (a sealed one:
        it let us in); then the connection is closed here."""
        texts = []
        while True:
            opcode, payload = await self.recv()
            if opcode in (CLOSE, 2):
                break
            if opcode == 1:
                texts.append(payload)
        self.close()
        return texts

    def close(self) -> None:
        self.writer.close()


async def http_exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        request: bytes) -> tuple[int, bool]:
    """Send one request, read its response whole: (status, the server keeps the connection)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if request.startswith(b"HEAD ") or status in (204, 304):
        pass                                    # no body, whatever the headers say
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() != "close"
