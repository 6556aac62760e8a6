"""A hostile guest: arbitrary and mutated frames never raise and never grow memory unboundedly.

Sequences of frames (valid ones for the gateway, mutated ones, random bytes)
interleave with the engine's calls (accept, refuse, read, send, shutdown,
abort, release) and clock jumps. After every step the stack's tables must be
within their bounds and every frame it emitted must parse back with verified
checksums.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.stack_target import check_output_frame
from tests.stack.guest import (
    GUEST4,
    GUEST6,
    GUEST6_LL,
    GW4,
    GW6,
    REMOTE4,
    REMOTE6,
    arp_request,
    ipv4_fragment,
    ipv6_packet,
    make_stack,
    multicast_mac,
    solicited_node,
    v4,
    v6,
)
from trionet.stack.flows import FlowKey, TcpConnectRequested
from trionet.stack.interface import RefuseReason, Stack, StackParams
from trionet.stack.reassembly import DEFAULT_MAX_BYTES, DEFAULT_MAX_DATAGRAMS
from trionet.wire.icmpv4 import Icmpv4Echo
from trionet.wire.icmpv6 import Icmpv6Echo, NeighborSolicitation
from trionet.wire.ipv4 import PROTO_UDP, Ipv4Header
from trionet.wire.ipv6 import Ipv6Fragment, Ipv6Header
from trionet.wire.tcp import TcpFlags, TcpHeader, TcpOptions
from trionet.wire.udp import UdpHeader

MAX_CONNECTIONS = 6
PORTS = st.integers(1, 12)
SEQS = st.sampled_from([0, 1, 1000, 1001, 0x7FFFFFFF, 0xFFFFFFFF]) | st.integers(0, 2**32 - 1)
FLAGS = st.sampled_from(
    [
        TcpFlags.SYN,
        TcpFlags.ACK,
        TcpFlags.ACK | TcpFlags.PSH,
        TcpFlags.FIN | TcpFlags.ACK,
        TcpFlags.RST,
        TcpFlags.RST | TcpFlags.ACK,
        TcpFlags.SYN | TcpFlags.ACK,
        TcpFlags.SYN | TcpFlags.FIN,
    ]
) | st.integers(0, 0x1FF).map(TcpFlags)
OPTIONS = st.builds(
    TcpOptions,
    mss=st.none() | st.integers(0, 65535),
    window_scale=st.none() | st.integers(0, 20),
    sack_permitted=st.booleans(),
    timestamp=st.none() | st.tuples(SEQS, SEQS),
)


@st.composite
def tcp_frames(draw: st.DrawFn) -> bytes:
    version = draw(st.sampled_from([4, 6]))
    header = TcpHeader(
        draw(PORTS),
        draw(st.sampled_from([80, 443])),
        draw(SEQS),
        draw(SEQS),
        draw(FLAGS),
        draw(st.integers(0, 65535)),
        options=draw(OPTIONS),
    )
    payload = draw(st.binary(max_size=64))
    if version == 4:
        return v4(header, payload, dst=draw(st.sampled_from([REMOTE4, GW4])))
    return v6(header, payload, dst=draw(st.sampled_from([REMOTE6, GW6])))


@st.composite
def fragment_frames(draw: st.DrawFn) -> bytes:
    offset = draw(st.integers(0, 8191)) * 8
    size = draw(st.sampled_from([0, 1, 8, 16, 1024, 1480]))
    data = draw(st.binary(min_size=size, max_size=size))
    more = draw(st.booleans())
    ident = draw(st.integers(0, 3))
    if draw(st.booleans()):
        header = Ipv4Header(GUEST4, REMOTE4, PROTO_UDP, len(data), 64, ident, False, more, offset)
        return ipv4_fragment(header, data)
    header6 = Ipv6Header(
        GUEST6, REMOTE6, PROTO_UDP, len(data), 64, fragment=Ipv6Fragment(ident, offset, more)
    )
    return ipv6_packet(header6, data)


@st.composite
def other_frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return arp_request(draw(st.sampled_from([GW4, REMOTE4])))
    if kind == 1:
        target = draw(st.sampled_from([GW6, GUEST6]))
        dst = solicited_node(target)
        ns = NeighborSolicitation(target, draw(st.none() | st.just(b"\x02" * 6)))
        return v6(ns, src=GUEST6_LL, dst=dst, dst_mac=multicast_mac(dst), hop_limit=255)
    if kind == 2:
        echo = Icmpv4Echo(True, draw(st.integers(0, 65535)), draw(st.integers(0, 65535)))
        return v4(echo, draw(st.binary(max_size=32)), dst=draw(st.sampled_from([GW4, REMOTE4])))
    if kind == 3:
        echo6 = Icmpv6Echo(True, draw(st.integers(0, 65535)), draw(st.integers(0, 65535)))
        return v6(echo6, draw(st.binary(max_size=32)), dst=draw(st.sampled_from([GW6, REMOTE6])))
    if kind == 4:
        return v4(
            UdpHeader(draw(PORTS), 53), draw(st.binary(max_size=32)), ttl=draw(st.integers(0, 2))
        )
    return draw(st.binary(max_size=128))


@st.composite
def mutate(draw: st.DrawFn, frames: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(frames))
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.integers(0, 2))
        if op == 0:
            data[pos] = draw(st.integers(0, 255))
        elif op == 1:
            del data[pos:]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


FRAMES = mutate(tcp_frames() | fragment_frames() | other_frames())


def _key(version: int, port: int, to_gateway: bool) -> FlowKey:
    if version == 4:
        return FlowKey(4, GUEST4, port, GW4 if to_gateway else REMOTE4, 80)
    return FlowKey(6, GUEST6, port, GW6 if to_gateway else REMOTE6, 80)


KEYS = st.builds(_key, st.sampled_from([4, 6]), PORTS, st.booleans())
ENGINE_CALLS = st.sampled_from(
    ["accept", "refuse", "unreachable", "read", "send", "shutdown", "abort", "release", "status"]
)
STEPS = st.lists(
    st.one_of(
        FRAMES.map(lambda f: ("frame", f)),
        st.tuples(ENGINE_CALLS, KEYS),
        st.floats(0.0, 120.0).map(lambda dt: ("time", dt)),
    ),
    max_size=60,
)


def _engine_call(stack: Stack, call: str, key: FlowKey, now: float) -> None:
    actions: dict[str, Callable[[], object]] = {
        "accept": lambda: stack.tcp_accept(key, now),
        "refuse": lambda: stack.tcp_refuse(key, now, RefuseReason.REFUSED),
        "unreachable": lambda: stack.tcp_refuse(key, now, RefuseReason.PROHIBITED),
        "read": lambda: stack.tcp_read(key, 1000, now),
        "send": lambda: stack.tcp_send(key, memoryview(b"x" * 3000), now),
        "shutdown": lambda: stack.tcp_shutdown(key, now),
        "abort": lambda: stack.tcp_abort(key, now),
        "release": lambda: stack.tcp_release(key, now),
        "status": lambda: stack.tcp_status(key),
    }
    actions[call]()


def check_bounds(stack: Stack, params: StackParams) -> None:
    tcp = stack.tcp
    assert len(tcp) + tcp.pending_count <= params.max_connections
    assert len(tcp._gone) <= 4 * params.max_connections
    # Stale entries of forgotten connections wait for the next rebuild.
    assert len(tcp._timers) <= 2 * params.max_connections + 65
    assert len(tcp._time_wait) <= len(tcp)
    assert len(stack._reassembly) <= DEFAULT_MAX_DATAGRAMS
    assert 0 <= stack._reassembly.bytes_held <= DEFAULT_MAX_BYTES


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS, checksum_valid=st.booleans(), writable=st.booleans())
def test_hostile_sequences_never_raise_and_stay_bounded(
    steps: list[tuple[str, object]], checksum_valid: bool, writable: bool
) -> None:
    stack = make_stack(max_connections=MAX_CONNECTIONS)
    params = stack.params
    now = 0.0
    for kind, value in steps:
        if kind == "frame":
            assert isinstance(value, bytes)
            # Links may hand over views into a writable ring buffer.
            frame = memoryview(bytearray(value)) if writable else value
            stack.receive_frame(frame, now, checksum_valid)
        elif kind == "time":
            assert isinstance(value, float)
            now += value
            stack.poll(now)
        else:
            assert isinstance(value, FlowKey)
            _engine_call(stack, kind, value, now)
        for event in stack.take_events():
            # Half the requests are answered at once, the rest left parked.
            if isinstance(event, TcpConnectRequested) and event.key.guest_port % 2:
                stack.tcp_accept(event.key, now)
        for frame in stack.take_frames():
            check_output_frame(frame, params)
        check_bounds(stack, params)
    # After poll(now), nothing due at or before now may be left waiting.
    stack.poll(now)
    deadline = stack.next_deadline()
    assert deadline is None or deadline > now


@settings(max_examples=40, deadline=None)
@given(st.lists(FRAMES, min_size=1, max_size=30))
def test_syn_floods_and_fragment_floods_stay_bounded(frames: list[bytes]) -> None:
    # The same frames repeated at one instant: nothing times out to help.
    stack = make_stack(max_connections=MAX_CONNECTIONS)
    for _ in range(5):
        for frame in frames:
            stack.receive_frame(frame, 1.0)
        stack.take_events()
        stack.take_frames()
        check_bounds(stack, stack.params)


def test_many_distinct_syns_are_bounded_by_max_connections() -> None:
    stack = make_stack(max_connections=MAX_CONNECTIONS)
    for port in range(1, 2001):
        stack.receive_frame(v4(TcpHeader(port, 80, port, 0, TcpFlags.SYN, 1000)), 0.0)
    assert stack.tcp.pending_count == MAX_CONNECTIONS
    assert stack.drops["limit"] == 2000 - MAX_CONNECTIONS
    assert len(stack.take_events()) == MAX_CONNECTIONS
    assert len(stack.take_frames()) == 2000 - MAX_CONNECTIONS  # one RST each
