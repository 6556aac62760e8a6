"""Real TLS servers for the interception tests: each with its own test CA, echoing requests.

They run in the test's host namespace on public-looking addresses (added to
that namespace's loopback, so nothing leaves the machine). Each records the
raw bytes of every request it received: what trionet forwarded.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import trio

from trionet.tls.certs import CertificateAuthority, generate_ca, issue_leaf

__all__ = ["TlsEchoServer", "UpstreamCa"]


@dataclass
class UpstreamCa:
    """A CA of the test's own, trusted by trionet as an upstream root."""

    directory: Path
    ca: CertificateAuthority = field(default_factory=generate_ca)

    @property
    def path(self) -> Path:
        path = self.directory / f"ca-{id(self)}.pem"
        if not path.exists():
            path.write_bytes(self.ca.cert_pem)
        return path

    def server_context(self, name: str, alpn: list[str]) -> ssl.SSLContext:
        leaf = issue_leaf(self.ca, name, time.time())
        chain = self.directory / f"{name}-{id(self)}.pem"
        key = self.directory / f"{name}-{id(self)}.key"
        chain.write_bytes(leaf.chain_pem)
        key.write_bytes(leaf.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain, key)
        ctx.set_alpn_protocols(alpn)
        return ctx


@dataclass
class TlsEchoServer:
    """HTTPS on ``address:443``: answers each request with the request's own bytes.

    A WebSocket upgrade gets a 101 and one text frame holding the upgrade
    request as received.
    """

    ctx: ssl.SSLContext
    received: list[bytes] = field(default_factory=list)
    alpn: list[str | None] = field(default_factory=list)

    async def serve(self, nursery: trio.Nursery, address: str, port: int = 443) -> None:
        listeners = await trio.open_tcp_listeners(port, host=address)
        await nursery.start(trio.serve_listeners, self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, self.ctx, server_side=True, https_compatible=True)
        try:
            with trio.fail_after(20):
                await tls.do_handshake()
                protocol = tls.selected_alpn_protocol()
                self.alpn.append(protocol)
                if protocol == "h2":
                    await self._serve_h2(tls)
                else:
                    await self._serve(tls)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            pass
        finally:
            await trio.aclose_forcefully(tls)

    async def _serve_h2(self, tls: trio.SSLStream[trio.SocketStream]) -> None:
        """HTTP/2: each request is answered with its headers and body, as text."""
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        await tls.send_all(conn.data_to_send())
        requests: dict[int, bytearray] = {}
        while data := await tls.receive_some(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    requests[event.stream_id] = bytearray(
                        b"".join(bytes(n) + b": " + bytes(v) + b"\r\n" for n, v in event.headers)
                        + b"\r\n"
                    )
                elif isinstance(event, h2.events.DataReceived):
                    requests[event.stream_id] += event.data
                    conn.acknowledge_received_data(len(event.data), event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    body = bytes(requests.pop(event.stream_id))
                    self.received.append(body)
                    conn.send_headers(
                        event.stream_id,
                        [(":status", "200"), ("content-length", str(len(body)))],
                    )
                    conn.send_data(event.stream_id, body, end_stream=True)
            await tls.send_all(conn.data_to_send())

    async def _serve(self, tls: trio.SSLStream[trio.SocketStream]) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await tls.receive_some(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = await tls.receive_some(65536)
            if not chunk:
                break
            body += chunk
        request = head + b"\r\n\r\n" + body
        self.received.append(request)
        if b"upgrade: websocket" in head.lower():
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(
                hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
            )
            await tls.send_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            payload = head[:125]
            await tls.send_all(b"\x81" + bytes([len(payload)]) + payload)
            return
        await tls.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(request)
            + request
        )


class ThreadedTlsEcho:
    """The same echo (no WebSocket) on 127.0.0.1, in a thread: for ``trionet run`` tests."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        import socketserver
        import threading

        self.received: list[bytes] = []
        received = self.received

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    tls = ctx.wrap_socket(self.request, server_side=True)
                    tls.settimeout(10)
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = tls.recv(65536)
                        if not chunk:
                            return
                        data += chunk
                    received.append(data)
                    tls.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                        % len(data)
                        + data
                    )
                    tls.close()
                except (OSError, ssl.SSLError):
                    pass

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@dataclass
class ConnectProxy:
    """A minimal HTTP CONNECT proxy: resolves names from ``names``, then splices."""

    names: dict[str, str]
    requests: list[bytes] = field(default_factory=list)

    async def serve(self, nursery: trio.Nursery, address: str, port: int = 3128) -> None:
        listeners = await trio.open_tcp_listeners(port, host=address)
        await nursery.start(trio.serve_listeners, self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                data = await stream.receive_some(4096)
                if not data:
                    return
                head += data
            self.requests.append(head)
            target = head.split(b" ")[1].decode()
            name, _, port = target.rpartition(":")
            upstream = await trio.open_tcp_stream(self.names.get(name, name), int(port))
        except (OSError, trio.BrokenResourceError):
            await trio.aclose_forcefully(stream)
            return
        await stream.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        rest = head.split(b"\r\n\r\n", 1)[1]

        async def pump(src: trio.abc.ReceiveStream, dst: trio.abc.SendStream) -> None:
            try:
                while data := await src.receive_some(65536):
                    await dst.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            nursery.cancel_scope.cancel()

        async with upstream, stream, trio.open_nursery() as nursery:
            if rest:
                await upstream.send_all(rest)
            nursery.start_soon(pump, stream, upstream)
            nursery.start_soon(pump, upstream, stream)


@dataclass
class PlainHttpEcho:
    """HTTP on port 80: records each request head, answers 200."""

    received: list[bytes] = field(default_factory=list)

    async def serve(self, nursery: trio.Nursery, address: str, port: int = 80) -> None:
        listeners = await trio.open_tcp_listeners(port, host=address)
        await nursery.start(trio.serve_listeners, self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
            self.received.append(data)
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            )
        except trio.BrokenResourceError:
            pass
        finally:
            await trio.aclose_forcefully(stream)
