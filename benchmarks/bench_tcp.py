"""TCP state machine benchmarks.

1. Throughput matrix (like smoltcp's netsim): one bulk transfer over the
   deterministic link simulator for each (buffer size, loss rate), reported in
   megabytes per *simulated* second. This measures the protocol (windows,
   recovery, timers), not the CPU, and is identical on every run.
2. Machine cost: bulk data pushed through two connections back to back with
   no link in between, timing each side's calls separately, reported as
   segments processed per wall-clock second on the receive path (guest to
   host: the machine takes data segments and emits ACKs) and the send path
   (host to guest: the machine emits data segments and takes ACKs), with MSS
   segments and with 64 KB TSO super-segments.

Run: ``python -m benchmarks.bench_tcp`` (or through ``python -m benchmarks``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.tcp_sim import LinkParams, Simulation
from trionet.tcp import TcpConfig, TcpConnection

BUFFERS = (16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024)
LOSSES = (0.0, 0.001, 0.01, 0.05)
TRANSFER = 4 * 1024 * 1024
LINK_RATE = 100e6  # bytes per second (800 Mbit/s)
LINK_DELAY = 0.005  # one way: 10 ms round trip


def _pattern(n: int) -> bytes:
    block = bytes(range(256)) * 256
    return (block * (n // len(block) + 1))[:n]


def throughput(buffer: int, loss: float, *, seed: int = 1) -> float:
    """Megabytes per simulated second for one ``TRANSFER`` from a to b."""
    cfg = TcpConfig(send_buffer=buffer, recv_buffer=buffer, rto_min=0.2, time_wait=1.0)
    a = TcpConnection.connect(40000, 80, iss=1, config=cfg, now=0.0)
    ((syn, _),) = a.segments_to_send(0.0)
    b = TcpConnection.accept(syn, iss=2, config=cfg, now=0.0)
    link = LinkParams(delay=LINK_DELAY, rate=LINK_RATE, loss=loss)
    data = _pattern(TRANSFER)
    sim = Simulation(a, b, a_data=data, a_to_b=link, b_to_a=link, seed=seed)
    sim.run_until(lambda: len(sim.b.received) >= TRANSFER, until=3600.0)
    if bytes(sim.b.received) != data:
        raise AssertionError("transfer corrupted")
    return TRANSFER / sim.now / 1e6


def machine_cost(*, tso: bool, total: int = 32 * 1024 * 1024) -> tuple[float, float, float]:
    """(receive-path segments/s, send-path segments/s, payload MB/s of the slower side)."""
    cfg = TcpConfig(
        send_buffer=1024 * 1024,
        recv_buffer=1024 * 1024,
        max_segment_payload=65160 if tso else None,
        initial_cwnd_segments=1000,
    )
    a = TcpConnection.connect(40000, 80, iss=1, config=cfg, now=0.0)
    ((syn, _),) = a.segments_to_send(0.0)
    b = TcpConnection.accept(syn, iss=2, config=cfg, now=0.0)
    for h, p in b.segments_to_send(0.0):
        a.receive_segment(h, p, 0.0)
    for h, p in a.segments_to_send(0.0):
        b.receive_segment(h, p, 0.0)
    chunk = memoryview(_pattern(1024 * 1024))
    now = 0.0
    received = 0
    data_segments = 0
    send_time = 0.0
    recv_time = 0.0
    clock = time.perf_counter
    while received < total:
        now += 0.0001
        t0 = clock()
        a.send(chunk[: a.send_space])
        out = a.segments_to_send(now)
        t1 = clock()
        for h, p in out:
            b.receive_segment(h, p, now)
        received += len(b.read())
        acks = b.segments_to_send(now)
        t2 = clock()
        for h, p in acks:
            a.receive_segment(h, p, now)
        t3 = clock()
        data_segments += len(out)
        send_time += (t1 - t0) + (t3 - t2)
        recv_time += t2 - t1
        if not out and not acks:
            now = b.next_deadline() or a.next_deadline() or now
            b.handle_timers(now)
            a.handle_timers(now)
    slower = max(send_time, recv_time)
    return data_segments / recv_time, data_segments / send_time, total / slower / 1e6


def run() -> dict[str, float]:
    metrics: dict[str, float] = {}
    print(f"TCP throughput, MB per simulated second ({TRANSFER >> 20} MiB, link ", end="")
    print(f"{LINK_RATE / 1e6:.0f} MB/s, RTT {2 * LINK_DELAY * 1000:.0f} ms, MSS 1448 + TS, SACK)")
    print(f"{'buffer':>10} " + " ".join(f"{f'loss {loss:.1%}':>12}" for loss in LOSSES))
    for buffer in BUFFERS:
        row = []
        for loss in LOSSES:
            mbps = throughput(buffer, loss)
            metrics[f"throughput_buf{buffer // 1024}k_loss{loss * 100:g}pct_MBps"] = mbps
            row.append(f"{mbps:12.2f}")
        print(f"{buffer // 1024:>9}K " + " ".join(row))
    print()
    print("TCP machine cost, bulk data, segments per wall-clock second")
    print(f"{'segments':>10} {'receive path':>14} {'send path':>12} {'MB/s':>8}")
    for tso in (False, True):
        recv_rate, send_rate, mbps = machine_cost(tso=tso)
        name = "tso64k" if tso else "mss"
        metrics[f"machine_{name}_recv_segments_per_s"] = recv_rate
        metrics[f"machine_{name}_send_segments_per_s"] = send_rate
        metrics[f"machine_{name}_payload_MBps"] = mbps
        print(f"{name:>10} {recv_rate:14.0f} {send_rate:12.0f} {mbps:8.0f}")
    return metrics


if __name__ == "__main__":
    run()
