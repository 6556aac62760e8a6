"""Guest TCP flows: decide, dial the host first, then relay as Trio streams.

The guest gets its SYN-ACK only after the host-side connect succeeded. A
refused connect becomes a RST and an unreachable or timed-out one an ICMP
unreachable, so the guest's client fails at once and a dual-stack client
falls back to the other family instead of hanging on a connection that was
"established" to nowhere.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
from collections.abc import Awaitable, Callable

import trio

from trionet.engine.core import EngineCore
from trionet.engine.guest_stream import GuestTcpStream
from trionet.stack.flows import FlowKey
from trionet.stack.interface import RefuseReason

__all__ = ["FlowHandler", "TcpRelay", "relay_streams"]

DEFAULT_CONNECT_TIMEOUT = 10.0
RELAY_CHUNK = 256 * 1024

#: What runs once a guest connection and its host connection both exist.
FlowHandler = Callable[[GuestTcpStream, trio.SocketStream], Awaitable[None]]

_UNREACHABLE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL}


class TcpRelay:
    """Handles TcpConnectRequested events for one engine."""

    def __init__(
        self,
        core: EngineCore,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        handler: FlowHandler | None = None,
    ) -> None:
        self._core = core
        self._connect_timeout = connect_timeout
        self._handler = handler or relay_streams
        core.on_tcp_connect = self.open_flow

    async def open_flow(self, key: FlowKey) -> None:
        core = self._core
        flow = core.describe(key, "tcp")
        if not core.allows(flow):
            core.tcp_refuse(key, RefuseReason.PROHIBITED)
            return
        target = core.host_target(flow)
        family = socket.AF_INET if target.version == 4 else socket.AF_INET6
        try:
            sock = trio.socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            # Out of file descriptors, most likely: refuse this flow, keep running.
            core.counters.dropped["host_socket_error"] += 1
            core.tcp_refuse(key, RefuseReason.REFUSED)
            return
        try:
            with trio.fail_after(self._connect_timeout):
                await sock.connect((str(target), flow.destination_port))
        except ConnectionRefusedError:
            sock.close()
            core.tcp_refuse(key, RefuseReason.REFUSED)
            return
        except trio.TooSlowError:
            sock.close()
            core.tcp_refuse(key, RefuseReason.UNREACHABLE)
            return
        except OSError as exc:
            sock.close()
            unreachable = exc.errno in _UNREACHABLE_ERRNOS
            core.tcp_refuse(key, RefuseReason.UNREACHABLE if unreachable else RefuseReason.REFUSED)
            return
        except BaseException:
            sock.close()
            core.tcp_refuse(key, RefuseReason.REFUSED)
            raise
        if not core.tcp_accept(key):
            sock.close()  # the guest gave up while we dialled
            return
        guest = GuestTcpStream(core, key)
        host = trio.SocketStream(sock)
        try:
            await self._handler(guest, host)
        finally:
            # Whatever the handler left open is torn down hard: on
            # cancellation (engine exit) the guest must see a reset.
            guest.abort()
            _close_with_reset(host)


async def relay_streams(guest: GuestTcpStream, host: trio.SocketStream) -> None:
    """Copy both ways with half-close; a reset on either side resets the other.

    Back-pressure is end to end: a pump reads only after its previous chunk
    was accepted by the other side, so a slow reader stops the TCP window of
    the fast writer instead of growing a buffer.
    """
    broken = False

    async def pump(source: trio.abc.ReceiveStream, sink: trio.abc.HalfCloseableStream) -> None:
        nonlocal broken
        try:
            while data := await source.receive_some(RELAY_CHUNK):
                await sink.send_all(data)
            await sink.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            broken = True
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump, guest, host)
        nursery.start_soon(pump, host, guest)
    if broken:
        guest.abort()
        _close_with_reset(host)
    else:
        await guest.aclose()
        await host.aclose()


def _close_with_reset(stream: trio.SocketStream) -> None:
    """Close a host socket so its peer sees RST rather than FIN."""
    sock = stream.socket
    if sock.fileno() < 0:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
