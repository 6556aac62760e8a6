"""A deterministic two-host link simulator for the sans-IO TCP machine.

Two :class:`TcpConnection` objects talk through a simulated link with a fake
clock. Each direction has a bandwidth (segments are serialized one after
another), a propagation delay, and seeded random loss, duplication and
reordering (extra delay for some segments). Every header crossing the link is
checked to be representable on the wire (16-bit window, 32-bit numbers, option
space), so the machine cannot lean on values the codec could not carry.

The scenario tests, the hypothesis property test and ``benchmarks/bench_tcp``
all drive the machine through this module.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from trionet.tcp import (
    Closed,
    ConnectionReset,
    PeerFinished,
    SendSpaceAvailable,
    TcpConfig,
    TcpConnection,
    TcpState,
)
from trionet.wire.tcp import TcpFlags, TcpHeader

_MASK = 0xFFFF_FFFF
_HEADER_OVERHEAD = 40  # IPv4 + TCP without options, for serialization time


def option_bytes(header: TcpHeader) -> int:
    """Bytes the options would take on the wire, padded to 32 bits."""
    o = header.options
    n = 0
    if o.mss is not None:
        n += 4
    if o.window_scale is not None:
        n += 3
    if o.sack_permitted:
        n += 2
    if o.timestamp is not None:
        n += 10
    if o.sack_blocks:
        n += 2 + 8 * len(o.sack_blocks)
    return (n + 3) & ~3


def check_wire(header: TcpHeader, payload_len: int, max_payload: int) -> None:
    """Assert that ``header`` can be emitted as a real TCP header."""
    assert 0 <= header.seq <= _MASK and 0 <= header.ack <= _MASK, header
    assert 0 <= header.window <= 0xFFFF, header
    assert 0 < header.src_port <= 0xFFFF and 0 < header.dst_port <= 0xFFFF, header
    assert option_bytes(header) <= 40, header
    o = header.options
    if o.timestamp is not None:
        assert all(0 <= v <= _MASK for v in o.timestamp), header
    for left, right in o.sack_blocks:
        assert 0 <= left <= _MASK and 0 <= right <= _MASK, header
    if o.mss is not None or o.window_scale is not None or o.sack_permitted:
        assert header.flags & TcpFlags.SYN, f"SYN-only option on a non-SYN segment: {header}"
    if o.window_scale is not None:
        assert 0 <= o.window_scale <= 14
    assert payload_len <= max_payload, (payload_len, max_payload)


@dataclass
class LinkParams:
    """One direction of the link."""

    delay: float = 0.005
    #: Bytes per second; 0 means infinitely fast.
    rate: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    #: Extra delay of a reordered segment.
    reorder_delay: float = 0.02


@dataclass(order=True)
class _InFlight:
    deliver_at: float
    order: int
    to_b: bool = field(compare=False)
    header: TcpHeader = field(compare=False)
    payload: bytes = field(compare=False)


@dataclass
class Side:
    """An application on one host: writes ``outgoing``, closes, and collects what it reads."""

    conn: TcpConnection
    outgoing: bytes
    sent: int = 0
    received: bytearray = field(default_factory=bytearray)
    closed_sent: bool = False
    peer_finished: bool = False
    closed: bool = False
    resets: list[ConnectionReset] = field(default_factory=list)
    segments_out: int = 0
    close_when_done: bool = True
    max_memory: int = 0


class Simulation:
    """Run two connections against each other until both are CLOSED or time runs out."""

    def __init__(
        self,
        a: TcpConnection,
        b: TcpConnection,
        *,
        a_data: bytes = b"",
        b_data: bytes = b"",
        a_to_b: LinkParams | None = None,
        b_to_a: LinkParams | None = None,
        seed: int = 0,
        now: float = 0.0,
    ) -> None:
        self.a = Side(a, a_data)
        self.b = Side(b, b_data)
        self.params = (a_to_b or LinkParams(), b_to_a or LinkParams())
        self.rng = random.Random(seed)
        self.now = now
        self._queue: list[_InFlight] = []
        self._order = 0
        self._busy_until = [now, now]
        self.delivered = 0
        self.lost = 0
        self.steps = 0

    # -- the link -----------------------------------------------------------

    def _transmit(self, to_b: bool, header: TcpHeader, payload: bytes) -> None:
        params = self.params[0 if to_b else 1]
        rng = self.rng
        i = 0 if to_b else 1
        start = max(self.now, self._busy_until[i])
        if params.rate:
            start += (len(payload) + _HEADER_OVERHEAD) / params.rate
        self._busy_until[i] = start
        if params.loss and rng.random() < params.loss:
            self.lost += 1
            return
        copies = 2 if params.duplicate and rng.random() < params.duplicate else 1
        for _ in range(copies):
            at = start + params.delay
            if params.reorder and rng.random() < params.reorder:
                at += rng.random() * params.reorder_delay
            self._order += 1
            heapq.heappush(self._queue, _InFlight(at, self._order, to_b, header, payload))

    # -- the applications -------------------------------------------------------

    def _pump_app(self, side: Side) -> None:
        conn = side.conn
        while (ev := conn.next_event()) is not None:
            if isinstance(ev, PeerFinished):
                side.peer_finished = True
            elif isinstance(ev, Closed):
                side.closed = True
            elif isinstance(ev, ConnectionReset):
                side.resets.append(ev)
            elif isinstance(ev, SendSpaceAvailable):
                pass
        if conn.readable_bytes:
            side.received += conn.read()
        if conn.state in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT) and not side.closed_sent:
            if side.sent < len(side.outgoing) and conn.send_space:
                side.sent += conn.send(memoryview(side.outgoing)[side.sent :])
            if side.sent == len(side.outgoing) and side.close_when_done:
                conn.close()
                side.closed_sent = True
        side.max_memory = max(side.max_memory, conn.memory_in_use)
        assert conn.memory_in_use <= conn.memory_limit

    def _flush(self) -> None:
        for side, to_b in ((self.a, True), (self.b, False)):
            self._pump_app(side)
            conn = side.conn
            limit = conn.config.max_segment_payload or conn.send_mss
            for header, payload in conn.segments_to_send(self.now):
                side.segments_out += 1
                check_wire(header, len(payload), limit)
                self._transmit(to_b, header, payload)

    def step(self) -> bool:
        """Advance to the next event; False when nothing is left to happen."""
        self._flush()
        times = [t for t in (self.a.conn.next_deadline(), self.b.conn.next_deadline()) if t]
        if self._queue:
            times.append(self._queue[0].deliver_at)
        if not times:
            return False
        self.now = max(self.now, min(times))
        self.steps += 1
        while self._queue and self._queue[0].deliver_at <= self.now:
            item = heapq.heappop(self._queue)
            target = self.b if item.to_b else self.a
            self.delivered += 1
            target.conn.receive_segment(item.header, item.payload, self.now)
        for side in (self.a, self.b):
            deadline = side.conn.next_deadline()
            if deadline is not None and deadline <= self.now:
                side.conn.handle_timers(self.now)
        return True

    def run(self, *, until: float = 3600.0, max_steps: int = 2_000_000) -> None:
        while self.now < until and self.steps < max_steps and self.step():
            pass
        self._flush()

    def run_until(self, predicate: object, *, until: float = 3600.0) -> None:
        assert callable(predicate)
        while not predicate() and self.now < until and self.step():
            pass


def make_pair(
    config_a: TcpConfig,
    config_b: TcpConfig | None = None,
    *,
    iss_a: int = 1000,
    iss_b: int = 5000,
    now: float = 0.0,
) -> tuple[TcpConnection, TcpConnection]:
    """A connecting client ``a`` and a server ``b`` built with ``accept`` from a's SYN."""
    a = TcpConnection.connect(40000, 80, iss=iss_a, config=config_a, now=now)
    ((syn, _),) = a.segments_to_send(now)
    b = TcpConnection.accept(syn, iss=iss_b, config=config_b or config_a, now=now)
    return a, b
