"""A minimal TCP relay in Python, to show what any Python relay costs on this machine.

    python relay_floor.py trio|selectors LISTEN_PORT TARGET_PORT

Listens on 0.0.0.0:LISTEN_PORT and relays each connection to
127.0.0.1:TARGET_PORT, with half-close, like trionet's relay does after its
stack. Put between a kernel veth guest and the echo server, its RR latency and
connection rate are the floor for a relay written in that style: ``trio``
(a task per direction, as trionet's relay_streams) or ``selectors`` (one
synchronous event loop, no tasks). Prints ``LISTENING`` once bound.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import sys

TARGET = "127.0.0.1"


def _listener(port: int) -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(1024)
    return server


def run_trio(port: int, target_port: int) -> None:
    import trio

    async def handle(client: trio.SocketStream) -> None:
        async with client:
            upstream = await trio.open_tcp_stream(TARGET, target_port)
            async with upstream:

                async def pump(
                    source: trio.abc.ReceiveStream, sink: trio.abc.HalfCloseableStream
                ) -> None:
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        while data := await source.receive_some(65536):
                            await sink.send_all(data)
                        await sink.send_eof()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(pump, client, upstream)
                    nursery.start_soon(pump, upstream, client)

    async def main() -> None:
        listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(_listener(port)))]
        print("LISTENING", flush=True)
        await trio.serve_listeners(handle, listeners)

    trio.run(main)


def run_selectors(port: int, target_port: int) -> None:
    selector = selectors.DefaultSelector()
    server = _listener(port)
    server.setblocking(False)
    selector.register(server, selectors.EVENT_READ)
    peer: dict[socket.socket, socket.socket] = {}
    finished: set[socket.socket] = set()  # reached EOF, no longer registered
    print("LISTENING", flush=True)

    def close_pair(sock: socket.socket) -> None:
        other = peer.pop(sock)
        del peer[other]
        for s in (sock, other):
            if s in finished:
                finished.discard(s)
            else:
                selector.unregister(s)
            s.close()

    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is server:
                client, _ = server.accept()
                # A blocking connect to loopback completes at once.
                upstream = socket.create_connection((TARGET, target_port))
                for s in (client, upstream):
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    selector.register(s, selectors.EVENT_READ)
                peer[client], peer[upstream] = upstream, client
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                close_pair(sock)
                continue
            if data:
                peer[sock].sendall(data)  # small echoes: never blocks for long
                continue
            finished.add(sock)
            selector.unregister(sock)
            other = peer[sock]
            with contextlib.suppress(OSError):
                other.shutdown(socket.SHUT_WR)
            if other in finished:
                close_pair(sock)


if __name__ == "__main__":
    style, listen_port, target_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    (run_trio if style == "trio" else run_selectors)(listen_port, target_port)
