"""The engine's own CPU per request/response and per connection, no scheduler, no TAP.

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

from trionet.addressing import HostRoutes
from trionet.config import NetworkConfig
from trionet.engine.network import open_network
from trionet.stack.flows import OffloadFrame, OutFrame
from trionet.tcp import TcpConfig, TcpConnection
from trionet.tcp.connection import TcpState
from trionet.wire.checksum import pseudo_header_v4
from trionet.wire.ethernet import parse_ethernet
from trionet.wire.frames import build_ipv4_frame
from trionet.wire.ipv4 import parse_ipv4
from trionet.wire.tcp import parse_tcp

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
            raw = frame
            if isinstance(frame, OffloadFrame):
                raw = bytes(frame.head) + bytes(frame.payload)
            _, packet = parse_ethernet(raw)
            ip, body = parse_ipv4(packet)
            pseudo = pseudo_header_v4(ip.src, ip.dst, ip.protocol, len(body))
            header, payload = parse_tcp(body, pseudo)
            if header.dst_port == self.port:  # not the last connection's stragglers
                self.conn.receive_segment(header, payload, now)


async def _measure() -> dict[str, float]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    port = listener.getsockname()[1]
    routes = HostRoutes(ipv4=True, ipv6=False)
    async with open_network(NetworkConfig(), 0, routes=routes) as net:
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


def run() -> dict[str, float]:
    runs = [trio.run(_measure) for _ in range(REPEATS)]
    metrics = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(f"   engine per 1-byte exchange: {metrics['rr_engine_us']:.1f} µs (median of {REPEATS})")
    print(f"   engine per connect+echo+close: {metrics['crr_engine_us_per_connection']:.1f} µs")
    return metrics


if __name__ == "__main__":
    run()
