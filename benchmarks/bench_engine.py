"""What one request/response and one connection cost, layer by layer, on one CPU.

1. The stack alone (``Stack`` driven with prebuilt guest frames): one 1-byte
   exchange, and one connect + 1-byte echo + close.
2. The engine without a scheduler (below).
3. One Trio wake-up against a plain ``selectors`` loop: two tasks bouncing a
   byte over a socketpair, versus the same with one synchronous loop.

Together they split an RR round trip of the side-by-side run (bench_peers)
into what the stack, the engine's glue and the scheduler cost.

The engine without a scheduler:
A real engine (``open_network``: stack, EngineCore, TcpRelay, splice) runs
inside ``trio.run``, but the benchmark drives it synchronously: guest frames
go straight into the backend (what the TAP link does after a read), frames
for the guest are taken from a sink (what the TAP link writes), and host
sockets are served by calling the readiness loop's ``service()`` (what its
task does after a wake-up). The host server is the other end of a loopback
connection, answered inline. So the figures are the Python cost of the
engine plus the socket syscalls, without Trio's wake-ups, the TAP, or the
peers' processes: the part of an RR round trip that trionet's code decides.

    python -m benchmarks engine

All figures are the median of three runs, in µs, on a hot cache: in the
side-by-side run the engine shares its CPU with the guest's kernel and
the peers' processes, so the same code costs more there.
"""

from __future__ import annotations

import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

from tests.stack.guest import parse_out
from trionet.addressing import HostRoutes
from trionet.config import NetworkConfig
from trionet.network import open_network
from trionet.policy import NetworkPolicy
from trionet.stack.flows import OutFrame
from trionet.tcp import TcpConfig, TcpConnection
from trionet.tcp.connection import TcpState
from trionet.wire.frames import build_ipv4_frame

GUEST_MAC = bytes.fromhex("026d73000002")
GATEWAY_MAC = bytes.fromhex("026d73000001")
GUEST = bytes([172, 16, 0, 2])
GATEWAY = bytes([172, 16, 0, 1])
EXCHANGES = 5000
CONNECTIONS = 1000
REPEATS = 3  # the median is reported


class _Guest:
    """The guest's TCP as trionet's own machine, with frames built outside the timing."""

    def __init__(self, port: int, local_port: int, now: float) -> None:
        self.port = local_port
        self.conn = TcpConnection.connect(local_port, port, iss=1000, config=TcpConfig(), now=now)

    def frames(self, now: float) -> list[bytes]:
        out = []
        for header, payload in self.conn.segments_to_send(now):
            head = build_ipv4_frame(
                GUEST_MAC, GATEWAY_MAC, GUEST, GATEWAY, header, payload=payload
            )
            out.append(bytes(head) + bytes(payload))
        return out

    def take(self, frames: list[OutFrame], now: float) -> None:
        for frame in frames:
            parsed = parse_out(frame)
            header = parsed.tcp
            assert header is not None
            if header.dst_port == self.port:  # not the last connection's stragglers
                self.conn.receive_segment(header, memoryview(parsed.payload), now)


async def _measure() -> dict[str, float]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    port = listener.getsockname()[1]
    routes = HostRoutes(ipv4=True, ipv6=False)
    # The exchange goes to the host's loopback through the gateway.
    config = NetworkConfig(policy=NetworkPolicy.allow_all())
    async with open_network(config, 0, routes=routes) as net:
        backend = net.take_backend()
        out: list[OutFrame] = []
        backend.attach_sink(out.extend)
        readiness = net.core.readiness
        engine_s = 0.0

        def engine(call: Any, *args: Any) -> None:
            nonlocal engine_s
            start = time.perf_counter()
            call(*args)
            engine_s += time.perf_counter() - start

        def ingest(frames: list[bytes]) -> None:
            backend.send_batch_nowait(frames, checksum_valid=True)

        def connect(local_port: int) -> tuple[_Guest, socket.socket]:
            now = trio.current_time()
            guest = _Guest(port, local_port, now)
            out.clear()
            engine(ingest, guest.frames(now))
            # The dial completes on loopback; the loop sees it and SYN-ACKs.
            while guest.conn.state is not TcpState.ESTABLISHED:
                engine(readiness.service)
                guest.take(out, now)
                out.clear()
            host, _ = listener.accept()
            host.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            engine(ingest, guest.frames(now))
            assert guest.conn.state is TcpState.ESTABLISHED
            return guest, host

        def exchange(guest: _Guest, host: socket.socket) -> None:
            now = trio.current_time()
            guest.conn.send(b"x")
            engine(ingest, guest.frames(now))
            assert host.recv(1) == b"x"
            host.send(b"y")
            while not out:
                engine(readiness.service)
            guest.take(out, now)
            out.clear()
            assert guest.conn.read() == b"y"

        guest, host = connect(41000)
        for _ in range(100):  # warm-up
            exchange(guest, host)
        engine_s = 0.0
        for _ in range(EXCHANGES):
            exchange(guest, host)
        rr_us = engine_s / EXCHANGES * 1e6
        host.close()

        engine_s = 0.0
        for i in range(CONNECTIONS):
            guest, host = connect(42000 + i)
            exchange(guest, host)
            now = trio.current_time()
            guest.conn.close()
            engine(ingest, guest.frames(now))
            assert host.recv(1) == b""
            host.close()
            while not guest.conn.at_eof:  # until the host's FIN reaches the guest
                engine(readiness.service)
                guest.take(out, now)
                out.clear()
            # The guest's ACK of our FIN may sit in its delayed-ACK timer.
            later = now + 1.0
            guest.conn.handle_timers(later)
            engine(ingest, guest.frames(later))
            out.clear()
            # Only the RR phase's connection (closed by the host alone) remains.
            assert len(net.core.stack.tcp) <= 1, "a finished connection stayed"
        crr_us = engine_s / CONNECTIONS * 1e6
    listener.close()
    return {"rr_engine_us": rr_us, "crr_engine_us_per_connection": crr_us}


def _stack_alone() -> dict[str, float]:
    """The sans-IO stack per exchange and per connection (guest frames built outside)."""
    from tests.stack.guest import GUEST4, REMOTE4, handshake, make_stack, v4
    from trionet.stack.flows import FlowKey
    from trionet.wire.tcp import TcpFlags, TcpHeader

    ack, push, fin = TcpFlags.ACK, TcpFlags.ACK | TcpFlags.PSH, TcpFlags.ACK | TcpFlags.FIN
    one = memoryview(b"y")
    stack = make_stack(max_connections=100_000)
    shake = handshake(stack)
    key, gseq, sseq = shake.key, shake.guest_seq, shake.stack_seq
    frames = [
        v4(TcpHeader(40000, 80, gseq + i, sseq + i, push, 65535), b"x") for i in range(EXCHANGES)
    ]
    now = 1.0
    start = time.perf_counter()
    for frame in frames:
        now += 0.0001
        stack.receive_frame(frame, now, True)
        stack.take_events()
        stack.tcp_status(key)  # type: ignore[arg-type]
        stack.tcp_read(key, 65536, now)  # type: ignore[arg-type]
        stack.tcp_send(key, one, now)  # type: ignore[arg-type]
        stack.take_frames()
    exchange_us = (time.perf_counter() - start) / EXCHANGES * 1e6

    outside = 0.0
    start = time.perf_counter()
    for i in range(CONNECTIONS):
        now += 0.0005
        port = 10000 + i
        flow = FlowKey(4, GUEST4, port, REMOTE4, 80)
        stack.receive_frame(v4(TcpHeader(port, 80, 1000, 0, TcpFlags.SYN, 65535)), now, True)
        stack.take_events()
        stack.tcp_accept(flow, now)
        mark = time.perf_counter()
        synack = parse_out(stack.take_frames()[0]).tcp
        assert synack is not None
        s = synack.seq + 1
        guest = [
            v4(TcpHeader(port, 80, 1001, s, ack, 65535)),
            v4(TcpHeader(port, 80, 1001, s, push, 65535), b"x"),
            v4(TcpHeader(port, 80, 1002, s + 1, fin, 65535)),
            v4(TcpHeader(port, 80, 1003, s + 2, ack, 65535)),
        ]
        outside += time.perf_counter() - mark
        stack.receive_frame(guest[0], now, True)
        stack.receive_frame(guest[1], now, True)
        stack.take_events()
        stack.tcp_read(flow, 65536, now)
        stack.tcp_send(flow, one, now)
        stack.take_frames()
        stack.receive_frame(guest[2], now, True)
        stack.take_events()
        stack.tcp_shutdown(flow, now)
        stack.tcp_release(flow, now)
        stack.take_frames()
        stack.receive_frame(guest[3], now, True)
        stack.take_events()
        stack.take_frames()
    connection_us = (time.perf_counter() - start - outside) / CONNECTIONS * 1e6
    return {"stack_exchange_us": exchange_us, "stack_connection_us": connection_us}


HOPS = 20000


def _selectors_hop() -> float:
    """µs per hop: one synchronous loop answers whichever end of a socketpair is readable."""
    import selectors

    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with selectors.DefaultSelector() as selector:
        selector.register(a, selectors.EVENT_READ)
        selector.register(b, selectors.EVENT_READ)
        a.send(b"x")
        start = time.perf_counter()
        hops = 0
        while hops < HOPS:
            for ready, _ in selector.select():
                sock: socket.socket = ready.fileobj  # type: ignore[assignment]
                sock.recv(1)
                sock.send(b"x")
                hops += 1
        elapsed = time.perf_counter() - start
    a.close()
    b.close()
    return elapsed / hops * 1e6


async def _trio_hop() -> float:
    """µs per hop: two tasks each wait_readable, recv, send back."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)

    async def side(sock: socket.socket) -> None:
        for _ in range(HOPS // 2):
            await trio.lowlevel.wait_readable(sock)
            sock.recv(1)
            sock.send(b"x")

    a.send(b"x")
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(side, a)
        nursery.start_soon(side, b)
    elapsed = time.perf_counter() - start
    a.close()
    b.close()
    return elapsed / HOPS * 1e6


def _once() -> dict[str, float]:
    metrics = _stack_alone()
    metrics.update(trio.run(_measure))
    metrics["selectors_hop_us"] = _selectors_hop()
    metrics["trio_hop_us"] = trio.run(_trio_hop)
    return metrics


def run() -> dict[str, float]:
    runs = [_once() for _ in range(REPEATS)]
    metrics = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(f"   (µs, median of {REPEATS})       per 1-byte exchange   per connect+echo+close")
    print(
        f"   stack alone                   {metrics['stack_exchange_us']:8.1f}"
        f"              {metrics['stack_connection_us']:8.1f}"
    )
    print(
        f"   engine, no scheduler          {metrics['rr_engine_us']:8.1f}"
        f"              {metrics['crr_engine_us_per_connection']:8.1f}"
    )
    print(
        f"   one wake-up and reply: Trio {metrics['trio_hop_us']:.1f} µs,"
        f" a selectors loop {metrics['selectors_hop_us']:.1f} µs"
    )
    return metrics


if __name__ == "__main__":
    run()
