"""Small real servers for the engine's tests, run in the test's host namespace."""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass, field

import trio


@dataclass
class HttpServer:
    """Serves ``GET /<n>`` with n bytes of a repeating pattern, and records requests."""

    port: int = 0
    requests: list[bytes] = field(default_factory=list)
    #: clients that reset the connection mid-response (a server shrugs those off)
    resets: int = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            await self._serve(stream)
        except trio.BrokenResourceError:
            self.resets += 1

    async def _serve(self, stream: trio.SocketStream) -> None:
        data = b""
        async with stream:
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
            line = data.split(b"\r\n", 1)[0]
            self.requests.append(line)
            path = line.split(b" ")[1].decode()
            size = int(path.strip("/") or "0")
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size
            )
            await send_pattern(stream, size)


def pattern_chunk() -> bytes:
    return bytes(range(256)) * 256  # 64 KiB


async def send_pattern(stream: trio.abc.SendStream, size: int) -> None:
    chunk = pattern_chunk()
    while size > 0:
        piece = chunk[: min(size, len(chunk))]
        await stream.send_all(piece)
        size -= len(piece)


def pattern_sha256(size: int) -> str:
    digest = hashlib.sha256()
    chunk = pattern_chunk()
    while size > 0:
        piece = chunk[: min(size, len(chunk))]
        digest.update(piece)
        size -= len(piece)
    return digest.hexdigest()


async def serve_tcp(nursery: trio.Nursery, handler: object, host: str, port: int = 0) -> int:
    """Listen on host:port (in the current namespace); return the bound port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    await sock.bind((host, port))
    sock.listen(512)
    listener = trio.SocketListener(sock)
    nursery.start_soon(trio.serve_listeners, handler, [listener])
    return int(sock.getsockname()[1])


async def serve_udp(nursery: trio.Nursery, serve: object, host: str, port: int = 0) -> int:
    """Bind a datagram socket on host:port and run ``serve(sock)``; return the bound port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_DGRAM)
    await sock.bind((host, port))
    nursery.start_soon(serve, sock)  # type: ignore[arg-type]
    return int(sock.getsockname()[1])


async def echo_handler(stream: trio.SocketStream) -> None:
    async with stream:
        while data := await stream.receive_some(65536):
            await stream.send_all(data)


async def sha256_sink_handler(stream: trio.SocketStream) -> None:
    """Read to EOF, then answer with the SHA-256 of everything read (hex)."""
    digest = hashlib.sha256()
    async with stream:
        while data := await stream.receive_some(1 << 20):
            digest.update(data)
        await stream.send_all(digest.hexdigest().encode())


async def udp_echo(sock: trio.socket.SocketType) -> None:
    """Echo every datagram back to its sender, forever."""
    while True:
        data, peer = await sock.recvfrom(65535)
        await sock.sendto(data, peer)
