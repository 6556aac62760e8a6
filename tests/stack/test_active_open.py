"""The stack's active open (published ports): trionet dials the guest.

The guest is a scripted :class:`TcpConnection` answering the stack's SYN;
every segment crosses as a real frame, parsed back with checksums checked.
"""

from __future__ import annotations

from tests.stack.guest import GUEST4, GUEST6, GW4, GW6, REMOTE4, make_stack, parse_out, v4, v6
from trionet.stack.flows import FlowKey, TcpActivity, TcpConnectionGone
from trionet.stack.interface import Stack
from trionet.tcp.config import TcpConfig
from trionet.tcp.connection import TcpConnection, TcpState
from trionet.wire.tcp import TcpFlags, TcpHeader

GUEST_CONFIG = TcpConfig(rto_min=0.2, rto_initial=0.2)


def _syn(stack: Stack) -> TcpHeader:
    frames = [parse_out(f) for f in stack.take_frames()]
    assert len(frames) == 1
    header = frames[0].tcp
    assert header is not None and header.flags == TcpFlags.SYN
    return header


def _deliver(stack: Stack, guest: TcpConnection, key: FlowKey, now: float) -> None:
    """Move segments both ways until quiet."""
    build = v4 if key.version == 4 else v6
    for _ in range(100):
        moved = False
        for header, payload in guest.segments_to_send(now):
            stack.receive_frame(build(header, bytes(payload), dst=key.remote_addr), now)
            moved = True
        for frame in stack.take_frames():
            parsed = parse_out(frame)
            assert parsed.ip is not None and parsed.ip.src == key.remote_addr
            assert parsed.tcp is not None
            guest.receive_segment(parsed.tcp, parsed.payload, now)
            moved = True
        if not moved:
            return


def test_active_open_from_the_gateway_carries_data_both_ways_and_half_closes() -> None:
    stack = make_stack()
    key = FlowKey(4, GUEST4, 8080, GW4, 49152)
    assert stack.tcp_connect(key, 1.0)
    assert stack.tcp_in_use(key) and not stack.tcp_established(key)
    assert not stack.tcp_connect(key, 1.0), "a key in use is refused, the engine picks another"
    syn = _syn(stack)
    assert (syn.src_port, syn.dst_port) == (49152, 8080)
    assert syn.options.mss == 1460 and syn.options.window_scale is not None
    guest = TcpConnection.accept(syn, iss=777, config=GUEST_CONFIG, now=1.0)
    _deliver(stack, guest, key, 1.0)
    assert stack.tcp_established(key) and guest.state is TcpState.ESTABLISHED
    assert TcpActivity(key) in stack.take_events()
    assert stack.tcp_send(key, memoryview(b"hello guest"), 1.0) == 11
    guest.send(b"hello host")
    _deliver(stack, guest, key, 1.0)
    assert guest.read() == b"hello guest"
    assert stack.tcp_read(key, 100, 1.0) == b"hello host"
    guest.close()  # the guest half-closes; the stack side still sends
    _deliver(stack, guest, key, 1.0)
    assert stack.tcp_status(key).at_eof
    assert stack.tcp_send(key, memoryview(b"after"), 1.0) == 5
    stack.tcp_shutdown(key, 1.0)
    _deliver(stack, guest, key, 1.0)
    assert guest.read() == b"after" and guest.at_eof


def test_active_open_from_a_real_peer_address_over_ipv6() -> None:
    stack = make_stack()
    peer = bytes.fromhex("20010db8000000000000000000000099")
    key = FlowKey(6, GUEST6, 22, peer, 50000)
    assert stack.tcp_connect(key, 0.0)
    syn = _syn(stack)
    guest = TcpConnection.accept(syn, iss=5, config=GUEST_CONFIG, now=0.0)
    _deliver(stack, guest, key, 0.0)
    assert stack.tcp_established(key)
    assert peer != GW6


def test_closed_guest_port_ends_the_open_as_refused() -> None:
    stack = make_stack()
    key = FlowKey(4, GUEST4, 81, GW4, 49153)
    assert stack.tcp_connect(key, 0.0)
    syn = _syn(stack)
    # What a guest kernel answers for a closed port: RST|ACK of the SYN.
    rst = TcpHeader(81, 49153, 0, syn.seq + 1, TcpFlags.RST | TcpFlags.ACK, 0)
    stack.receive_frame(v4(rst, dst=GW4), 0.0)
    events = stack.take_events()
    assert any(isinstance(e, TcpConnectionGone) and e.key == key for e in events)
    status = stack.tcp_status(key)
    assert status.error == "connection refused"
    assert not stack.tcp_established(key) and not stack.tcp_in_use(key)


def test_silent_guest_retransmits_the_syn_until_aborted() -> None:
    stack = make_stack()
    key = FlowKey(4, GUEST4, 81, REMOTE4, 49154)
    assert stack.tcp_connect(key, 0.0)
    _syn(stack)
    deadline = stack.next_deadline()
    assert deadline is not None
    stack.poll(deadline)
    assert _syn(stack).seq is not None  # the SYN again, from the timer
    assert stack.tcp_abort(key, deadline)
    assert not stack.tcp_in_use(key)


def test_active_opens_count_against_max_connections() -> None:
    stack = make_stack(max_connections=2)
    keys = [FlowKey(4, GUEST4, 80, GW4, 49152 + i) for i in range(3)]
    assert stack.tcp_connect(keys[0], 0.0) and stack.tcp_connect(keys[1], 0.0)
    assert not stack.tcp_connect(keys[2], 0.0)
    assert stack.drops["limit"] == 1
