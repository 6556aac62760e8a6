"""The stack's TCP path end to end, without root: the guest is a second TcpConnection.

The guest actively opens, both sides exchange data with half-close, and every
segment crosses as a real Ethernet frame (built by the wire builders, parsed
back with checksums verified). A fake clock advances only to the next timer,
so retransmission after loss runs in milliseconds of real time.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from tests.stack.guest import (
    GUEST4,
    GUEST6,
    GW4,
    GW6,
    REMOTE4,
    REMOTE6,
    make_stack,
    parse_out,
    v4,
    v6,
)
from trionet.stack.flows import (
    FlowKey,
    OffloadFrame,
    TcpActivity,
    TcpConnectionGone,
    TcpConnectRequested,
)
from trionet.stack.interface import Stack
from trionet.tcp.config import TcpConfig
from trionet.tcp.connection import TcpConnection, TcpState
from trionet.wire.ethernet import parse_ethernet
from trionet.wire.ipv4 import parse_ipv4
from trionet.wire.ipv6 import parse_ipv6
from trionet.wire.tcp import TcpHeader, parse_tcp

Drop = Callable[[str, int], bool]


def _never(direction: str, index: int) -> bool:
    return False


class Link:
    """A stack and a guest connection joined by frames, with an optional loss pattern."""

    def __init__(
        self, stack: Stack, guest: TcpConnection, version: int, drop: Drop = _never
    ) -> None:
        self.stack = stack
        self.guest = guest
        self.version = version
        self.drop = drop
        self.now = 1000.0
        self.sent = {"to_stack": 0, "to_guest": 0}
        self.key: FlowKey | None = None
        self.events: list[object] = []
        self.super_segments = 0
        self.lost = 0

    def _to_stack(self, header: TcpHeader, payload: bytes | memoryview) -> None:
        index = self.sent["to_stack"]
        self.sent["to_stack"] += 1
        if self.drop("to_stack", index):
            self.lost += 1
            return
        remote = REMOTE4 if self.version == 4 else REMOTE6
        build = v4 if self.version == 4 else v6
        self.stack.receive_frame(build(header, bytes(payload), dst=remote), self.now)

    def _to_guest(self, frame: bytes | OffloadFrame) -> None:
        index = self.sent["to_guest"]
        self.sent["to_guest"] += 1
        if self.drop("to_guest", index):
            self.lost += 1
            return
        if isinstance(frame, OffloadFrame):
            # A TSO super-segment with a partial checksum: the guest's NIC
            # would finish it, so take the segment as the guest kernel would.
            self.super_segments += len(frame.payload) > self.guest.send_mss
            _, l3 = parse_ethernet(bytes(frame.head) + bytes(frame.payload))
            if self.version == 4:
                _, l4 = parse_ipv4(l3)
            else:
                _, l4 = parse_ipv6(l3)
            header, payload = parse_tcp(l4, None)
        else:
            parsed = parse_out(frame)
            assert parsed.tcp is not None
            header, payload = parsed.tcp, memoryview(parsed.payload)
        self.guest.receive_segment(header, payload, self.now)

    def pump(self) -> bool:
        """Move every pending segment both ways until quiet; True if anything moved."""
        moved_any = False
        while True:
            moved = False
            for header, payload in self.guest.segments_to_send(self.now):
                self._to_stack(header, payload)
                moved = True
            for event in self.stack.take_events():
                self.events.append(event)
                if isinstance(event, TcpConnectRequested):
                    self.key = event.key
                    assert self.stack.tcp_accept(event.key, self.now)
            for frame in self.stack.take_frames():
                self._to_guest(frame)
                moved = True
            if not moved:
                return moved_any
            moved_any = True

    def advance(self) -> None:
        """Jump the clock to the earliest timer on either side and run it."""
        deadlines = [
            d for d in (self.stack.next_deadline(), self.guest.next_deadline()) if d is not None
        ]
        assert deadlines, "both sides idle with work outstanding: a deadlock"
        self.now = max(self.now, min(deadlines))
        self.stack.poll(self.now)
        self.guest.handle_timers(self.now)


def _connect(version: int, *, drop: Drop = _never, tso: bool = False) -> Link:
    stack = make_stack()
    if tso:
        stack.enable_tso(ipv4=True, ipv6=True)
    config = TcpConfig(mss=1460 if version == 4 else 1440, rto_min=0.2, rto_initial=0.2)
    guest = TcpConnection.connect(40000, 8080, iss=123456, config=config, now=1000.0)
    link = Link(stack, guest, version, drop)
    for _ in range(200):
        link.pump()
        if guest.state is TcpState.ESTABLISHED and link.key is not None:
            break
        link.advance()
    assert guest.state is TcpState.ESTABLISHED
    guest_addr, remote = (GUEST4, REMOTE4) if version == 4 else (GUEST6, REMOTE6)
    assert link.key == FlowKey(version, guest_addr, 40000, remote, 8080)
    return link


def _exchange(link: Link, up: bytes, down: bytes) -> tuple[bytes, bytes]:
    """Send ``up`` guest->stack and ``down`` stack->guest, each then FIN; return what arrived."""
    stack, guest, key = link.stack, link.guest, link.key
    assert key is not None
    got_up = bytearray()
    got_down = bytearray()
    up_view, down_view = memoryview(up), memoryview(down)
    up_closed = down_closed = False
    for _ in range(100_000):
        if up_view:
            up_view = up_view[guest.send(up_view) :]
        elif not up_closed:
            guest.close()
            up_closed = True
        if down_view:
            down_view = down_view[stack.tcp_send(key, down_view, link.now) :]
        elif not down_closed:
            stack.tcp_shutdown(key, link.now)
            down_closed = True
        moved = link.pump()
        got_up += stack.tcp_read(key, 1 << 20, link.now)
        got_down += guest.read()
        status = stack.tcp_status(key)
        finished = status.at_eof and guest.at_eof and up_closed and down_closed
        if finished and not up_view and not down_view:
            break
        if not moved and not stack.take_frames():
            link.advance()
    return bytes(got_up), bytes(got_down)


def _payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize("version", [4, 6])
def test_data_both_ways_with_half_close(version: int) -> None:
    link = _connect(version)
    up, down = _payload(300_000, 1), _payload(500_000, 2)
    got_up, got_down = _exchange(link, up, down)
    assert got_up == up
    assert got_down == down
    assert any(isinstance(e, TcpActivity) for e in link.events)
    # Both FINs acknowledged: the stack's side ends (it closed second or
    # simultaneously) and the guest's enters TIME-WAIT or CLOSED.
    for _ in range(50):
        if link.stack.tcp_status(link.key).error is not None:  # type: ignore[arg-type]
            break
        link.pump()
        link.advance()
    assert link.guest.state in (TcpState.TIME_WAIT, TcpState.CLOSED)
    assert link.stack.drops.total() == 0


@pytest.mark.parametrize("version", [4, 6])
def test_data_survives_loss_in_both_directions(version: int) -> None:
    rng = random.Random(7)
    lost = {
        d: {i for i in range(5, 4000) if rng.random() < 0.05} for d in ("to_stack", "to_guest")
    }

    def drop(direction: str, index: int) -> bool:
        return index in lost[direction]

    link = _connect(version, drop=drop)
    up, down = _payload(100_000, 3), _payload(200_000, 4)
    got_up, got_down = _exchange(link, up, down)
    assert got_up == up and got_down == down
    assert link.lost > 5


def test_lost_syn_and_lost_fin_are_retransmitted_on_timers() -> None:
    def drop(direction: str, index: int) -> bool:
        return direction == "to_stack" and index == 0  # the guest's first SYN

    link = _connect(4, drop=drop)
    assert link.now >= 1000.2  # the guest's SYN timer fired
    # The next frame the stack sends (its FIN or an ACK) is lost once: timers recover it.
    sent_before = link.sent["to_guest"]
    link.drop = lambda direction, index: direction == "to_guest" and index == sent_before
    got_up, got_down = _exchange(link, b"up", b"")
    assert (got_up, got_down) == (b"up", b"")
    assert link.lost == 2


def test_tso_super_segments_reach_the_guest_intact() -> None:
    link = _connect(4, tso=True)
    down = _payload(400_000, 5)
    got_up, got_down = _exchange(link, b"", down)
    assert got_down == down and got_up == b""
    assert link.super_segments > 0


def test_guest_reset_is_reported_to_the_stream() -> None:
    link = _connect(4)
    key = link.key
    assert key is not None
    link.guest.abort()
    link.pump()
    status = link.stack.tcp_status(key)
    assert status.error is not None and not status.at_eof
    assert any(isinstance(e, TcpConnectionGone) for e in link.events)
    assert len(link.stack.tcp) == 0


def test_gateway_destination_works_the_same() -> None:
    stack = make_stack()
    guest = TcpConnection.connect(1234, 80, iss=1, config=TcpConfig(), now=0.0)
    for header, payload in guest.segments_to_send(0.0):
        stack.receive_frame(v4(header, bytes(payload), dst=GW4), 0.0)
    assert stack.take_events() == [TcpConnectRequested(FlowKey(4, GUEST4, 1234, GW4, 80))]
    guest6 = TcpConnection.connect(1234, 80, iss=1, config=TcpConfig(mss=1440), now=0.0)
    for header, payload in guest6.segments_to_send(0.0):
        stack.receive_frame(v6(header, bytes(payload), dst=GW6), 0.0)
    assert stack.take_events() == [TcpConnectRequested(FlowKey(6, GUEST6, 1234, GW6, 80))]
