"""Guest SYNs through the stack: parked, accepted, refused three ways, limited."""

from __future__ import annotations

import pytest

from tests.stack.guest import (
    GUEST4,
    GUEST6,
    GW4,
    GW6,
    REMOTE4,
    REMOTE6,
    Handshake,
    handshake,
    make_stack,
    only,
    take_parsed,
    v4,
    v6,
)
from trionet.stack.flows import FlowKey, TcpConnectionGone, TcpConnectRequested
from trionet.stack.interface import RefuseReason, Stack
from trionet.stack.tcp_table import LARGE_BUFFER, LARGE_BUFFER_CONNECTIONS
from trionet.tcp import TcpConfig
from trionet.wire.icmpv4 import Icmpv4DestUnreachable
from trionet.wire.icmpv6 import Icmpv6DestUnreachable
from trionet.wire.ipv4 import PROTO_TCP, Ipv4Header, parse_ipv4
from trionet.wire.ipv6 import Ipv6Header, parse_ipv6
from trionet.wire.tcp import TcpFlags, TcpHeader, TcpOptions, parse_tcp

NOW = 50.0
SYN_OPTIONS = TcpOptions(mss=1460, window_scale=7, sack_permitted=True, timestamp=(12345, 0))


def syn(port: int = 40000, seq: int = 1000, options: TcpOptions = SYN_OPTIONS) -> TcpHeader:
    return TcpHeader(port, 80, seq, 0, TcpFlags.SYN, 64240, options=options)


def syn_frame(version: int, header: TcpHeader, payload: bytes = b"") -> bytes:
    return v4(header, payload) if version == 4 else v6(header, payload)


def key_for(version: int, port: int = 40000) -> FlowKey:
    if version == 4:
        return FlowKey(4, GUEST4, port, REMOTE4, 80)
    return FlowKey(6, GUEST6, port, REMOTE6, 80)


@pytest.mark.parametrize("version", [4, 6])
def test_syn_is_parked_and_accept_answers_syn_ack(version: int) -> None:
    stack = make_stack()
    stack.receive_frame(syn_frame(version, syn()), NOW)
    key = key_for(version)
    assert stack.take_events() == [TcpConnectRequested(key)]
    assert not stack.take_frames()
    # The guest retransmits while we dial: absorbed, not a second request.
    stack.receive_frame(syn_frame(version, syn()), NOW + 1)
    assert not stack.take_events() and not stack.take_frames()

    assert stack.tcp_accept(key, NOW + 1.5)
    synack = only(stack)
    assert synack.ip is not None
    assert (synack.ip.src, synack.ip.dst) == (key.remote_addr, key.guest_addr)
    tcp = synack.tcp
    assert tcp is not None
    assert tcp.flags == TcpFlags.SYN | TcpFlags.ACK
    assert (tcp.src_port, tcp.dst_port, tcp.ack) == (80, 40000, 1001)
    options = tcp.options
    assert options.mss == (1460 if version == 4 else 1440)
    assert options.window_scale is not None and 0 <= options.window_scale <= 14
    assert options.sack_permitted
    assert options.timestamp is not None and options.timestamp[1] == 12345
    # A second accept for the same key has nothing left to accept.
    assert not stack.tcp_accept(key, NOW + 2)


def test_syn_ack_omits_what_the_guest_did_not_offer() -> None:
    stack = make_stack()
    stack.receive_frame(v4(syn(options=TcpOptions())), NOW)
    key = key_for(4)
    stack.take_events()
    stack.tcp_accept(key, NOW)
    tcp = only(stack).tcp
    assert tcp is not None
    assert tcp.options.mss == 1460
    assert tcp.options.window_scale is None
    assert not tcp.options.sack_permitted
    assert tcp.options.timestamp is None


@pytest.mark.parametrize("version", [4, 6])
def test_refused_syn_gets_rst_ack_acknowledging_the_syn(version: int) -> None:
    stack = make_stack()
    stack.receive_frame(syn_frame(version, syn(seq=0xFFFFFFFF)), NOW)
    key = key_for(version)
    stack.take_events()
    stack.tcp_refuse(key, NOW, RefuseReason.REFUSED)
    rst = only(stack)
    assert rst.ip is not None
    assert (rst.ip.src, rst.ip.dst) == (key.remote_addr, key.guest_addr)
    assert rst.tcp is not None
    assert rst.tcp.flags == TcpFlags.RST | TcpFlags.ACK
    assert (rst.tcp.seq, rst.tcp.ack) == (0, 0)  # seq + 1 wraps
    assert stack.tcp.pending_count == 0
    # Refusing again (a late decision) does nothing.
    stack.tcp_refuse(key, NOW, RefuseReason.REFUSED)
    assert not stack.take_frames()


@pytest.mark.parametrize(
    ("reason", "code"), [(RefuseReason.UNREACHABLE, 1), (RefuseReason.PROHIBITED, 13)]
)
def test_unreachable_v4_quotes_the_syn(reason: RefuseReason, code: int) -> None:
    stack = make_stack()
    stack.receive_frame(v4(syn(seq=777)), NOW)
    key = key_for(4)
    stack.take_events()
    stack.tcp_refuse(key, NOW, reason)
    error = only(stack)
    assert isinstance(error.ip, Ipv4Header)
    # The gateway, as the router that gave up, is the error's source (RFC
    # 1812 4.3.2.4), as for IPv6; a remote saying it is itself unreachable
    # is a contradiction.
    assert (error.ip.src, error.ip.dst) == (GW4, GUEST4)
    assert error.icmp4 == Icmpv4DestUnreachable(code)
    quoted, body = parse_ipv4(error.payload, truncated_ok=True)
    assert (quoted.src, quoted.dst, quoted.protocol) == (GUEST4, REMOTE4, PROTO_TCP)
    tcp, _ = parse_tcp(body, None)
    assert (tcp.src_port, tcp.dst_port, tcp.seq, tcp.flags) == (40000, 80, 777, TcpFlags.SYN)


@pytest.mark.parametrize(
    ("reason", "code"), [(RefuseReason.UNREACHABLE, 3), (RefuseReason.PROHIBITED, 1)]
)
def test_unreachable_v6_quotes_the_syn(reason: RefuseReason, code: int) -> None:
    stack = make_stack()
    stack.receive_frame(v6(syn(seq=777)), NOW)
    key = key_for(6)
    stack.take_events()
    stack.tcp_refuse(key, NOW, reason)
    error = only(stack)
    assert isinstance(error.ip, Ipv6Header)
    assert (error.ip.src, error.ip.dst) == (GW6, GUEST6)
    assert error.icmp6 == Icmpv6DestUnreachable(code)
    quoted, body = parse_ipv6(error.payload, truncated_ok=True)
    assert (quoted.src, quoted.dst, quoted.next_header) == (GUEST6, REMOTE6, PROTO_TCP)
    tcp, _ = parse_tcp(body, None)
    assert (tcp.src_port, tcp.dst_port, tcp.seq, tcp.flags) == (40000, 80, 777, TcpFlags.SYN)


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize(
    ("flags", "payload", "expect"),
    [
        # RFC 9293 3.10.7.1: with ACK, RST at SEG.ACK ...
        (TcpFlags.ACK, b"", (5555, 0, TcpFlags.RST)),
        (TcpFlags.ACK | TcpFlags.PSH, b"hello", (5555, 0, TcpFlags.RST)),
        (TcpFlags.SYN | TcpFlags.ACK, b"", (5555, 0, TcpFlags.RST)),
        # ... without ACK, RST|ACK acknowledging SEG.SEQ + SEG.LEN.
        (TcpFlags.FIN, b"", (0, 2001, TcpFlags.RST | TcpFlags.ACK)),
        (TcpFlags.PSH, b"hello", (0, 2005, TcpFlags.RST | TcpFlags.ACK)),
    ],
)
def test_segment_for_no_connection_is_reset(
    version: int, flags: TcpFlags, payload: bytes, expect: tuple[int, int, TcpFlags]
) -> None:
    stack = make_stack()
    header = TcpHeader(40000, 80, 2000, 5555, flags, 1000)
    stack.receive_frame(syn_frame(version, header, payload), NOW)
    rst = only(stack)
    assert rst.tcp is not None
    assert (rst.tcp.seq, rst.tcp.ack, rst.tcp.flags) == expect
    assert (rst.tcp.src_port, rst.tcp.dst_port) == (80, 40000)
    assert stack.drops["tcp_no_connection"] == 1
    assert not stack.take_events()


def test_rst_for_no_connection_is_never_answered() -> None:
    stack = make_stack()
    stack.receive_frame(v4(TcpHeader(40000, 80, 1, 1, TcpFlags.RST | TcpFlags.ACK, 0)), NOW)
    stack.receive_frame(v4(TcpHeader(40000, 80, 1, 0, TcpFlags.RST, 0)), NOW)
    assert not stack.take_frames() and not stack.take_events()


def test_max_connections_resets_and_counts() -> None:
    # Only real connections make a SYN be refused: half-open ones make room.
    stack = make_stack(max_connections=3)
    for port in (1, 2, 3):
        handshake(stack, port, now=NOW)
    stack.receive_frame(v4(syn(4, seq=99)), NOW)
    rst = only(stack)
    assert rst.tcp is not None
    assert rst.tcp.flags == TcpFlags.RST | TcpFlags.ACK and rst.tcp.ack == 100
    assert stack.drops["limit"] == 1
    assert not stack.take_events()
    # A connection that ends frees a slot.
    assert stack.tcp_abort(key_for(4, 2), NOW)
    stack.take_frames()
    stack.take_events()
    stack.receive_frame(v4(syn(4, seq=99)), NOW)
    assert stack.take_events() == [TcpConnectRequested(key_for(4, 4))]


def test_a_full_table_of_half_open_connections_evicts_the_oldest() -> None:
    # A SYN flood against an open host port: every SYN is dialled and
    # answered, and the guest never completes a handshake. New SYNs, the
    # flood's and a real client's, take the oldest half-open slot.
    stack = make_stack(max_connections=3)
    for port in (1, 2, 3):
        stack.receive_frame(v4(syn(port)), NOW)
        stack.take_events()
        assert stack.tcp_accept(key_for(4, port), NOW)
    stack.take_frames()
    stack.receive_frame(v4(syn(4)), NOW + 1)
    assert stack.take_events() == [
        TcpConnectionGone(key_for(4, 1), "half-open connection evicted"),
        TcpConnectRequested(key_for(4, 4)),
    ]
    assert not stack.take_frames()  # silently, as Linux drops a request socket
    assert stack.drops["half_open_evicted"] == 1 and stack.drops["limit"] == 0
    assert stack.tcp_status(key_for(4, 1)).error == "half-open connection evicted"
    assert len(stack.tcp) + stack.tcp.pending_count == 3
    # The evicted guest's late ACK finds no connection.
    stack.receive_frame(v4(TcpHeader(1, 80, 1001, 7, TcpFlags.ACK, 65535)), NOW + 1)
    rst = only(stack).tcp
    assert rst is not None and rst.flags & TcpFlags.RST
    # A completed handshake is no longer half-open; parked SYNs (their
    # dials in flight) are never evicted, so dials stay bounded too.
    assert stack.tcp_accept(key_for(4, 4), NOW + 1)
    synack = only(stack).tcp
    assert synack is not None
    stack.receive_frame(v4(TcpHeader(4, 80, 1001, synack.seq + 1, TcpFlags.ACK, 65535)), NOW + 1)
    stack.take_events()
    for port in (5, 6, 7):
        stack.receive_frame(v4(syn(port)), NOW + 2)
    assert stack.take_events() == [
        TcpConnectionGone(key_for(4, 2), "half-open connection evicted"),
        TcpConnectRequested(key_for(4, 5)),
        TcpConnectionGone(key_for(4, 3), "half-open connection evicted"),
        TcpConnectRequested(key_for(4, 6)),
    ]
    assert stack.drops["limit"] == 1  # port 7: one real connection, two dials
    assert stack.tcp_status(key_for(4, 4)).error is None


def test_half_open_connections_give_up_when_the_kernel_does() -> None:
    # 5 SYN-ACK retransmissions from a 1 s RTO (tcp_synack_retries): 63 s.
    stack = make_stack()
    stack.receive_frame(v4(syn(1)), 0.0)
    stack.take_events()
    assert stack.tcp_accept(key_for(4, 1), 0.0)
    synacks = len(take_parsed(stack))
    while (deadline := stack.next_deadline()) is not None and deadline < 63.0:
        stack.poll(deadline)
        synacks += len(take_parsed(stack))
    assert synacks == 6
    assert len(stack.tcp) == 1 and not stack.take_events()
    assert stack.next_deadline() == pytest.approx(63.0)
    stack.poll(63.0)
    assert len(stack.tcp) == 0
    assert stack.take_events() == [TcpConnectionGone(key_for(4, 1), "timed out")]


def test_syn_to_the_gateway_keeps_the_gateway_as_remote() -> None:
    stack = make_stack()
    stack.receive_frame(v4(syn(), dst=GW4), NOW)
    stack.receive_frame(v6(syn(), dst=GW6), NOW)
    assert stack.take_events() == [
        TcpConnectRequested(FlowKey(4, GUEST4, 40000, GW4, 80)),
        TcpConnectRequested(FlowKey(6, GUEST6, 40000, GW6, 80)),
    ]


def test_abort_all_resets_parked_syns_and_connections() -> None:
    stack = make_stack()
    stack.receive_frame(v4(syn(1)), NOW)
    stack.receive_frame(v4(syn(2)), NOW)
    stack.take_events()
    stack.tcp_accept(key_for(4, 1), NOW)
    stack.take_frames()
    stack.abort_all(NOW)
    frames = [f.tcp for f in take_parsed(stack)]
    assert len(frames) == 2
    assert all(f is not None and f.flags & TcpFlags.RST for f in frames)
    assert len(stack.tcp) == 0 and stack.tcp.pending_count == 0


def test_timer_heap_stays_proportional_to_connections() -> None:
    # Each re-armed deadline pushes a heap entry and the stale one waits
    # until its time passes. A guest repeating a FIN into TIME-WAIT re-arms
    # a 60 s timer each time: without compaction, one entry per frame piles
    # up for a minute (millions at line rate).
    stack = make_stack()
    opened = handshake(stack, now=0.0)
    key = opened.key
    assert isinstance(key, FlowKey)
    stack.tcp_shutdown(key, 0.0)  # our FIN
    take_parsed(stack)
    fin = TcpHeader(40000, 80, 1001, opened.stack_seq + 1, TcpFlags.FIN | TcpFlags.ACK, 65535)
    stack.receive_frame(v4(fin), 0.0)  # acknowledges ours: TIME-WAIT
    now = 0.0
    for _ in range(3000):
        now += 0.001
        stack.receive_frame(v4(fin), now)  # a retransmitted FIN restarts 2MSL
    stack.take_frames()
    assert len(stack.tcp) == 1
    assert len(stack.tcp._timers) <= 100
    # The connection still leaves TIME-WAIT at the right moment.
    deadline = stack.next_deadline()
    assert deadline == pytest.approx(now + 60)
    stack.poll(deadline)
    assert len(stack.tcp) == 0


def _close_host_first(stack: Stack, port: int, now: float, *, release: bool = True) -> Handshake:
    """Open a connection, then close it from our side first: it ends in TIME-WAIT."""
    opened = handshake(stack, port, now=now)
    key = opened.key
    assert isinstance(key, FlowKey)
    stack.tcp_shutdown(key, now)
    if release:
        stack.tcp_release(key, now)  # the relay is done with it
    take_parsed(stack)
    fin = TcpHeader(port, 80, 1001, opened.stack_seq + 1, TcpFlags.FIN | TcpFlags.ACK, 65535)
    stack.receive_frame(v4(fin), now)
    ack = only(stack).tcp
    assert ack is not None and ack.ack == 1002
    stack.take_events()
    return opened


def test_time_wait_does_not_count_against_max_connections() -> None:
    # The host closing first (HTTP/1.0 servers, Connection: close) leaves
    # our side in TIME-WAIT for 60 s. Counting those as connections refused
    # new ones at max_connections per minute (256 by default).
    stack = make_stack(max_connections=2)
    _close_host_first(stack, 1, 0.0)
    _close_host_first(stack, 2, 0.0)
    stack.receive_frame(v4(syn(3)), 1.0)
    assert stack.take_events() == [
        TcpConnectionGone(key_for(4, 1), "connection closed"),
        TcpConnectRequested(key_for(4, 3)),
    ]
    assert not stack.take_frames()
    assert stack.drops["limit"] == 0
    # The table itself stays bounded: the oldest TIME-WAIT entry made room.
    assert len(stack.tcp) + stack.tcp.pending_count <= 2
    # Live connections still count (a half-open one would be evicted).
    stack.tcp_accept(key_for(4, 3), 1.0)
    synack = only(stack).tcp
    assert synack is not None
    stack.receive_frame(v4(TcpHeader(3, 80, 1001, synack.seq + 1, TcpFlags.ACK, 65535)), 1.0)
    stack.receive_frame(v4(syn(4)), 1.0)
    stack.receive_frame(v4(syn(5)), 1.0)
    assert stack.drops["limit"] == 1


def test_new_syn_reopens_a_time_wait_connection() -> None:
    # RFC 6191 / RFC 9293 3.6.1: a SYN whose sequence number is beyond the
    # old connection's may reopen it from TIME-WAIT (Linux does). The guest,
    # having closed second, has no TIME-WAIT and may reuse the port at once;
    # answering it with ACKs for the old connection stalled it for 60 s.
    stack = make_stack()
    _close_host_first(stack, 40000, 0.0)
    stack.receive_frame(v4(syn(40000, seq=900_000)), 1.0)
    assert stack.take_events() == [
        TcpConnectionGone(key_for(4, 40000), "connection closed"),
        TcpConnectRequested(key_for(4, 40000)),
    ]
    assert not stack.take_frames()
    assert stack.tcp_accept(key_for(4, 40000), 1.0)
    synack = only(stack).tcp
    assert synack is not None and synack.ack == 900_001


def test_old_syn_in_time_wait_does_not_reopen() -> None:
    stack = make_stack()
    _close_host_first(stack, 40000, 0.0)
    stack.receive_frame(v4(syn(40000, seq=500)), 1.0)  # behind the old connection
    assert not stack.take_events()
    assert len(stack.tcp) == 1


def test_time_wait_still_owned_by_a_stream_keeps_its_slot() -> None:
    # Its stream may still hold unread data: it is not evicted.
    stack = make_stack(max_connections=1)
    _close_host_first(stack, 1, 0.0, release=False)
    stack.receive_frame(v4(syn(2)), 1.0)
    assert stack.drops["limit"] == 1
    assert len(stack.tcp) == 1


def _close_guest_first(stack: Stack, port: int, now: float) -> None:
    """A connection the guest closes first, fully finished while its stream is open."""
    opened = handshake(stack, port, now=now)
    key = opened.key
    assert isinstance(key, FlowKey)
    fin = TcpHeader(port, 80, 1001, opened.stack_seq, TcpFlags.FIN | TcpFlags.ACK, 65535)
    stack.receive_frame(v4(fin), now)
    stack.tcp_shutdown(key, now)
    ack = TcpHeader(port, 80, 1002, opened.stack_seq + 1, TcpFlags.ACK, 65535)
    stack.receive_frame(v4(ack), now)
    stack.take_frames()
    stack.take_events()
    assert len(stack.tcp) == 0


def test_gone_connections_are_remembered_for_their_streams() -> None:
    stack = make_stack()
    _close_guest_first(stack, 1, 0.0)
    status = stack.tcp_status(key_for(4, 1))
    assert status.at_eof and status.readable == 0
    stack.tcp_release(key_for(4, 1), 0.0)
    assert not stack.tcp_status(key_for(4, 1)).at_eof


def test_gone_connections_never_released_are_bounded() -> None:
    # The record of a finished connection waits for its stream's release()
    # or abort(). A stream that never calls either (GuestTcpStream.aclose
    # skips release() once the connection is gone) must not make the table
    # grow with every connection a guest ever made.
    stack = make_stack(max_connections=4)
    for port in range(1, 201):
        _close_guest_first(stack, port, float(port))
    assert len(stack.tcp._gone) <= 4 * 4
    # The most recent ones are still answered correctly.
    assert stack.tcp_status(key_for(4, 200)).at_eof


def test_request_and_answer_cost_one_frame() -> None:
    # The first data of a connection is acknowledged at once (quick-ACK at
    # connection start, as Linux). From then on an answer within the
    # delayed-ACK time makes the exchange interactive (Linux's pingpong):
    # the guest's next request is acknowledged by the answer itself, and
    # reading it owes no window update (the unscaled window is at its
    # 65535 ceiling).
    stack = make_stack()
    hs = handshake(stack, now=NOW)
    push = TcpFlags.ACK | TcpFlags.PSH
    stack.receive_frame(
        v4(TcpHeader(40000, 80, hs.guest_seq, hs.stack_seq, push, 65535), b"q"), NOW
    )
    quick = only(stack).tcp
    assert quick is not None and quick.ack == hs.guest_seq + 1
    assert stack.tcp_read(hs.key, 100, NOW) == b"q"
    assert stack.tcp_send(hs.key, memoryview(b"a"), NOW + 0.001) == 1
    assert only(stack).payload == b"a"
    stack.receive_frame(
        v4(TcpHeader(40000, 80, hs.guest_seq + 1, hs.stack_seq + 1, push, 65535), b"r"),
        NOW + 0.002,
    )
    assert stack.take_frames() == []
    assert stack.tcp_read(hs.key, 100, NOW + 0.002) == b"r"
    assert stack.take_frames() == []
    assert stack.tcp_send(hs.key, memoryview(b"b"), NOW + 0.003) == 1
    answer = only(stack)
    assert answer.tcp is not None and answer.payload == b"b"
    assert answer.tcp.ack == hs.guest_seq + 2


def test_first_read_after_a_scaled_handshake_owes_no_window_update() -> None:
    # The SYN-ACK advertises at most 65535 unscaled; the first data then
    # finds the window already at the full buffer, so a read owes no ACK
    # beyond the quick ACK of the first data.
    stack = make_stack()
    key = FlowKey(4, GUEST4, 40000, REMOTE4, 80)
    options = TcpOptions(mss=1460, window_scale=7)
    syn = TcpHeader(40000, 80, 1000, 0, TcpFlags.SYN, 65535, 0, options)
    stack.receive_frame(v4(syn), NOW)
    assert stack.tcp_accept(key, NOW)
    synack = only(stack).tcp
    assert synack is not None and synack.options.window_scale is not None
    ours = synack.seq + 1
    stack.receive_frame(v4(TcpHeader(40000, 80, 1001, ours, TcpFlags.ACK, 512)), NOW)
    assert stack.take_frames() == []
    push = TcpFlags.ACK | TcpFlags.PSH
    stack.receive_frame(v4(TcpHeader(40000, 80, 1001, ours, push, 512), b"x"), NOW)
    quick = only(stack).tcp
    assert quick is not None and quick.ack == 1002
    assert stack.tcp_read(key, 100, NOW) == b"x"
    assert stack.take_frames() == []


def test_read_reopening_the_window_sends_a_window_update() -> None:
    stack = make_stack()
    hs = handshake(stack, now=NOW)
    seq, chunk = hs.guest_seq, b"w" * 1400
    window = 65535
    while window >= 30_000:
        header = TcpHeader(40000, 80, seq, hs.stack_seq, TcpFlags.ACK, 65535)
        stack.receive_frame(v4(header, chunk), NOW)
        seq += len(chunk)
        for frame in take_parsed(stack):
            assert frame.tcp is not None
            window = frame.tcp.window
    unread = seq - hs.guest_seq
    assert len(stack.tcp_read(hs.key, 1 << 20, NOW)) == unread
    update = only(stack)
    assert update.tcp is not None and update.tcp.window == 65535 and update.tcp.ack == seq


def test_data_for_a_released_connection_is_reset() -> None:
    stack = make_stack()
    hs = handshake(stack, now=NOW)
    stack.tcp_release(hs.key, NOW)
    assert stack.take_frames() == []
    push = TcpFlags.ACK | TcpFlags.PSH
    header = TcpHeader(40000, 80, hs.guest_seq, hs.stack_seq, push, 65535)
    stack.receive_frame(v4(header, b"late"), NOW)
    reset = only(stack)
    assert reset.tcp is not None and reset.tcp.flags == TcpFlags.RST | TcpFlags.ACK
    assert reset.tcp.ack == hs.guest_seq + 4
    assert stack.take_events() == [TcpConnectionGone(hs.key, "reset: data after close")]  # type: ignore[arg-type]
    assert len(stack.tcp) == 0


def test_a_half_closed_guest_may_stay_silent_until_the_relay_lets_go() -> None:
    """FIN-WAIT-2 has no limit while the connection is held; 60 s once released."""
    stack = make_stack()
    shake = handshake(stack)
    key = shake.key
    stack.tcp_shutdown(key, 0.0)  # type: ignore[arg-type]
    fin = only(stack).tcp
    assert fin is not None and fin.flags & TcpFlags.FIN
    # The guest acknowledges our FIN and keeps its own side open.
    stack.receive_frame(
        v4(TcpHeader(40000, 80, shake.guest_seq, shake.stack_seq + 1, TcpFlags.ACK, 65535)), 0.0
    )
    stack.take_frames()
    stack.poll(600.0)
    assert stack.tcp_status(key).error is None, "a held half-closed connection was timed out"  # type: ignore[arg-type]
    stack.tcp_release(key, 600.0)  # type: ignore[arg-type]
    stack.poll(659.0)
    assert len(stack.tcp) == 1
    stack.poll(661.0)
    assert len(stack.tcp) == 0, "a released connection stuck in FIN-WAIT-2 is given up on"


def test_the_first_connections_get_large_buffers_and_later_ones_the_default() -> None:
    # Large buffers make bulk transfers cheaper per byte; only a bounded
    # number of connections get them, so a guest that stops reading on every
    # connection cannot make the engine hold LARGE_BUFFER per connection.
    stack = make_stack(max_connections=64)
    keys = [handshake(stack, 40000 + i).key for i in range(LARGE_BUFFER_CONNECTIONS + 2)]
    spaces = [stack.tcp_status(key).send_space for key in keys]  # type: ignore[arg-type]
    assert spaces[:LARGE_BUFFER_CONNECTIONS] == [LARGE_BUFFER] * LARGE_BUFFER_CONNECTIONS
    assert spaces[LARGE_BUFFER_CONNECTIONS:] == [TcpConfig().send_buffer] * 2
    assert TcpConfig().send_buffer < LARGE_BUFFER
    # The receive side too: unread guest data is taken up to the buffer.
    first, last = keys[0], keys[-1]
    for key, expected in ((first, LARGE_BUFFER), (last, TcpConfig().recv_buffer)):
        conn = stack.tcp._connections[key].conn  # type: ignore[index]
        assert conn.config.recv_buffer == expected
