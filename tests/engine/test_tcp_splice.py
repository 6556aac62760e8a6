"""The TCP splice and the dial through the backend alone (no root).

The guest here is trionet's own sans-IO TCP machine speaking frames over
the engine's backend, so each case can act at a precise moment (stop
reading, reset, half-close) that a real kernel's client would hide; the
real-guest suites (test_real_guest, test_bulk, test_flows) cover the same
paths with Linux on the other end.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from tests.engine.servers import serve_tcp
from tests.stack.guest import parse_out
from trionet.addressing import HostRoutes
from trionet.config import NetworkConfig
from trionet.engine.backend import FrameBackend
from trionet.engine.tcp_relay import relay_streams
from trionet.network import Network, open_network
from trionet.policy import NetworkPolicy
from trionet.tcp import TcpConfig, TcpConnection
from trionet.tcp.connection import TcpState
from trionet.wire.frames import build_ipv4_frame
from trionet.wire.icmpv4 import Icmpv4DestUnreachable
from trionet.wire.tcp import TcpFlags, TcpHeader, TcpOptions

GUEST_MAC = bytes.fromhex("026d73000002")
GATEWAY_MAC = bytes.fromhex("026d73000001")
GUEST = bytes([172, 16, 0, 2])
GATEWAY = bytes([172, 16, 0, 1])
ROUTES = HostRoutes(True, False)


class ScriptedGuest:
    """One guest TCP connection to the gateway, driven by hand over the backend."""

    def __init__(self, backend: FrameBackend, port: int, *, recv_buffer: int = 65536) -> None:
        self.backend = backend
        config = TcpConfig(recv_buffer=recv_buffer, rto_min=0.2)
        self.conn = TcpConnection.connect(
            41000, port, iss=1000, config=config, now=trio.current_time()
        )
        self.received = bytearray()
        self.resets = 0
        self.icmp: list[Icmpv4DestUnreachable] = []

    async def push(self) -> None:
        for header, payload in self.conn.segments_to_send(trio.current_time()):
            frame = build_ipv4_frame(
                GUEST_MAC, GATEWAY_MAC, GUEST, GATEWAY, header, payload=payload
            )
            await self.backend.send(bytes(frame) + bytes(payload))

    async def step(self, timeout: float = 0.05) -> None:
        """Take whatever the engine sent within ``timeout``; answer it; run timers."""
        with trio.move_on_after(timeout):
            for frame in await self.backend.receive_batch():
                self._take(frame)
        self.conn.handle_timers(trio.current_time())
        await self.push()

    def _take(self, frame: bytes) -> None:
        parsed = parse_out(frame)
        if parsed.icmp4 is not None:
            if isinstance(parsed.icmp4, Icmpv4DestUnreachable):
                self.icmp.append(parsed.icmp4)
            return
        header = parsed.tcp
        assert header is not None
        if header.flags & TcpFlags.RST:
            self.resets += 1
        self.conn.receive_segment(header, memoryview(parsed.payload), trio.current_time())

    async def until(self, condition: object, what: str, seconds: float = 5.0) -> None:
        with trio.fail_after(seconds):
            while not condition():  # type: ignore[operator]
                await self.step()
                if self.conn.readable_bytes:
                    self.received += self.conn.read()

    async def open(self) -> None:
        await self.push()
        await self.until(lambda: self.conn.state is TcpState.ESTABLISHED, "established")


async def _accept_one(listener: trio.socket.SocketType) -> trio.socket.SocketType:
    conn, _ = await listener.accept()
    return conn


@asynccontextmanager
async def _engine(**options: object) -> AsyncIterator[tuple[Network, FrameBackend]]:
    async with open_network(
        NetworkConfig(policy=NetworkPolicy.allow_all()), 0, routes=ROUTES, **options
    ) as net:  # type: ignore[arg-type]
        yield net, net.take_backend()


async def _listener() -> tuple[trio.socket.SocketType, int]:
    listener = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    await listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener, listener.getsockname()[1]


async def test_data_and_half_close_both_ways_then_a_quiet_close() -> None:
    listener, port = await _listener()
    async with _engine() as (net, backend):
        guest = ScriptedGuest(backend, port)
        await guest.open()
        host = await _accept_one(listener)

        guest.conn.send(b"request")
        await guest.push()
        with trio.fail_after(5):
            assert await host.recv(100) == b"request"

        # The guest half-closes; the host still answers, then closes too.
        guest.conn.close()
        await guest.push()
        with trio.fail_after(5):
            assert await host.recv(100) == b""
        await host.send(b"answer after the guest's FIN")
        await guest.until(lambda: len(guest.received) == 28, "answer")
        assert guest.received == b"answer after the guest's FIN"
        host.close()
        await guest.until(lambda: guest.conn.at_eof, "host FIN")
        await guest.until(
            lambda: guest.conn.state in (TcpState.TIME_WAIT, TcpState.CLOSED), "closed"
        )
        assert guest.resets == 0
        connections = net.metrics_handle().snapshot()["connections"]
        assert connections == {"opened": 1, "refused": 0, "reset": 0, "host_sockets": 0}
    listener.close()


async def test_a_host_reset_resets_the_guest() -> None:
    listener, port = await _listener()
    async with _engine() as (_net, backend):
        guest = ScriptedGuest(backend, port)
        await guest.open()
        host = await _accept_one(listener)
        host.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        host.close()
        await guest.until(lambda: guest.resets > 0, "RST")
        assert guest.conn.state is TcpState.CLOSED
    listener.close()


async def test_a_guest_reset_resets_the_host() -> None:
    listener, port = await _listener()
    async with _engine() as (_net, backend):
        guest = ScriptedGuest(backend, port)
        await guest.open()
        host = await _accept_one(listener)
        guest.conn.abort()
        await guest.push()
        with trio.fail_after(5), pytest.raises(OSError) as caught:
            while await host.recv(100):
                pass
        assert caught.value.errno == errno.ECONNRESET
    listener.close()


async def test_a_slow_guest_stops_the_host_instead_of_growing_a_buffer() -> None:
    listener, port = await _listener()
    async with _engine() as (_net, backend):
        guest = ScriptedGuest(backend, port, recv_buffer=16384)
        await guest.open()
        host = socket.socket(fileno=(await _accept_one(listener)).detach())
        host.setblocking(False)
        host.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        # The guest never reads: its window closes, the engine's send buffer
        # fills, and then the engine must stop reading the host socket, so
        # the host's own buffers fill and its non-blocking send gives up.
        sent = 0
        chunk = b"x" * 65536
        with trio.fail_after(10):
            while True:
                try:
                    sent += host.send(chunk)
                except BlockingIOError:
                    # Full for now; it stays full only if the engine stopped.
                    await guest.step(0.2)
                    try:
                        sent += host.send(chunk)
                    except BlockingIOError:
                        break
                await guest.step(0.01)
        assert sent < 8 * 1024 * 1024, f"the engine kept reading: {sent} bytes taken"
        # Reading resumes the flow: every byte arrives, in order.
        await guest.until(lambda: len(guest.received) >= sent, "all the data", 30)
        assert guest.received == b"x" * sent
        host.close()
    listener.close()


async def test_a_dial_that_times_out_answers_host_unreachable() -> None:
    # A listener whose accept queue is full drops further SYNs, so a connect
    # to it on loopback hangs: a silent destination without leaving the box.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    await trio.sleep(0.1)
    async with _engine(connect_timeout=0.5) as (net, backend):
        guest = ScriptedGuest(backend, port)
        await guest.push()
        await guest.until(lambda: guest.icmp, "ICMP", 5)
        assert guest.icmp[0].code == 1  # host unreachable
        assert net.core.counters.connections_refused == 1
    for filler in fillers:
        filler.close()
    listener.close()


async def test_a_flow_handler_gets_trio_streams() -> None:
    """Handlers (services) get the guest as a Trio stream; relay_streams relays it."""
    listener, port = await _listener()
    async with _engine(flow_handler=relay_streams) as (_net, backend):
        guest = ScriptedGuest(backend, port)
        await guest.open()
        host = await _accept_one(listener)
        guest.conn.send(b"ping")
        await guest.push()
        with trio.fail_after(5):
            assert await host.recv(10) == b"ping"
        await host.send(b"pong")
        await guest.until(lambda: guest.received == b"pong", "pong")
        host.close()
        await guest.until(lambda: guest.conn.at_eof, "FIN")
    listener.close()


async def test_a_guest_reset_while_the_host_is_not_reading_lets_go_of_the_host() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # accepted sockets inherit it
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    async with _engine() as (net, backend):
        guest = ScriptedGuest(backend, port)
        await guest.open()
        host, _ = listener.accept()
        # The host never reads: once its buffers and the engine's socket's are
        # full, the splice holds a chunk and stops reading the guest.
        chunk = b"y" * 65536
        with trio.fail_after(20):
            stalled = 0
            while stalled < 5:
                taken = guest.conn.send(chunk)
                await guest.push()
                await guest.step(0.02)
                stalled = stalled + 1 if taken == 0 else 0
        assert net.metrics_handle().snapshot()["connections"]["host_sockets"] == 1  # type: ignore[index]
        guest.conn.abort()
        await guest.push()
        with trio.fail_after(5):
            while net.metrics_handle().snapshot()["connections"]["host_sockets"]:  # type: ignore[index]
                await trio.sleep(0.01)
        host.close()
    listener.close()


async def test_a_flow_handler_that_raises_resets_its_flow_not_the_engine() -> None:
    listener, port = await _listener()

    async def broken(guest: object, host: object) -> None:
        raise ValueError("a bug in one service")

    async with _engine(flow_handler=broken) as (net, backend):
        guest = ScriptedGuest(backend, port)
        await guest.push()
        await guest.until(lambda: guest.resets > 0, "RST")
        snapshot = net.metrics_handle().snapshot()
        assert snapshot["dropped"]["flow_handler_error"] == 1  # type: ignore[index]
        assert snapshot["connections"]["host_sockets"] == 0  # type: ignore[index]
    listener.close()


async def _echo_until_reset(stream: trio.SocketStream) -> None:
    """Echo; a connection the engine resets (an evicted half-open one) just ends."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        async with stream:
            while data := await stream.receive_some(65536):
                await stream.send_all(data)


def _flood_syn(src_port: int, port: int) -> bytes:
    header = TcpHeader(src_port, port, 7777, 0, TcpFlags.SYN, 64240, options=TcpOptions(mss=1460))
    return bytes(build_ipv4_frame(GUEST_MAC, GATEWAY_MAC, GUEST, GATEWAY, header))


async def test_a_half_open_syn_flood_leaves_room_for_a_real_connection() -> None:
    # A guest floods SYNs from distinct ports to an open host port and never
    # completes a handshake: each is dialled and answered, and the table
    # fills with half-open connections that each hold a host connection.
    # A real connection made during the flood must still get through (the
    # oldest half-open entry makes room), and host sockets stay bounded.
    limit = 32
    async with trio.open_nursery() as servers:
        port = await serve_tcp(servers, _echo_until_reset, "127.0.0.1")
        config = NetworkConfig(max_connections=limit, policy=NetworkPolicy.allow_all())
        async with open_network(config, 0, routes=ROUTES) as net:
            backend = net.take_backend()
            metrics = net.metrics_handle()
            peak = 0

            def host_sockets() -> int:
                return metrics.snapshot()["connections"]["host_sockets"]  # type: ignore[index,no-any-return]

            async def flood() -> None:
                nonlocal peak
                for batch in range(40):  # 1,000 SYNs in about a second
                    base = 20000 + 25 * batch
                    await backend.send_batch([_flood_syn(base + i, port) for i in range(25)])
                    await trio.sleep(0.025)
                    peak = max(peak, host_sockets())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood)
                await trio.sleep(0.3)  # the table is full by now
                guest = ScriptedGuest(backend, port)
                await guest.open()
                guest.conn.send(b"through the flood")
                await guest.push()
                await guest.until(lambda: guest.received == b"through the flood", "echo")
            snapshot = metrics.snapshot()
            dropped = snapshot["dropped"]
            assert dropped["half_open_evicted"] > 900  # type: ignore[index]
            assert dropped.get("limit", 0) == 0  # type: ignore[attr-defined]
            assert 0 < peak <= limit
            # The evicted entries' host connections are gone; what is left is
            # at most one table's worth, and those give up within 63 s.
            assert host_sockets() <= limit
        servers.cancel_scope.cancel()
