"""Fuzz target for the sans-IO stack's receive path (``Stack.receive_frame``).

The stack plays the gateway of the corpus capture (10.77.0.1, fd77::1, MAC
02:aa:00:00:00:01; the kernel that sent the frames is the guest), so corpus
seeds reach past the address checks into ARP, NDP, ICMP, UDP, reassembly and
TCP. Each input is fed twice (the second copy, in a writable buffer, meets the
state the first left: a parked SYN, an accepted connection, a partial
datagram), with the
engine's part played by accepting every connection request, then the clock
jumps so every timer fires.

Beyond "never raises", the target checks what a hostile guest must not break:
every frame the stack emits parses back with verified checksums, and its
tables stay within their bounds.
"""

from __future__ import annotations

from fuzz.walk import walk_frame
from trionet.dhcp.config import DhcpConfig
from trionet.stack.flows import OffloadFrame, OutFrame, TcpConnectRequested
from trionet.stack.interface import Stack, StackParams
from trionet.stack.reassembly import DEFAULT_MAX_BYTES, DEFAULT_MAX_DATAGRAMS
from trionet.wire.ethernet import parse_ethernet

MAX_CONNECTIONS = 4

CORPUS_GATEWAY = StackParams(
    guest_mac=bytes.fromhex("02aa00000002"),
    gateway_mac=bytes.fromhex("02aa00000001"),
    mtu=1500,
    gateway_ipv4=bytes([10, 77, 0, 1]),
    guest_ipv4=bytes([10, 77, 0, 2]),
    gateway_ipv6=bytes.fromhex("fd770000000000000000000000000001"),
    gateway_ipv6_link_local=bytes.fromhex("fe800000000000000000000000000001"),
    guest_ipv6=bytes.fromhex("fd770000000000000000000000000002"),
    max_connections=MAX_CONNECTIONS,
    isn_secret=bytes(16),
    # DHCPv4, DHCPv6 and router advertisements answer too (the RA once the link is up).
    dhcp=DhcpConfig(search_domains=("corp.example",)),
)


def check_output_frame(frame: OutFrame, params: StackParams = CORPUS_GATEWAY) -> None:
    """Assert that a frame the stack emitted is well formed, checksums included."""
    assert not isinstance(frame, OffloadFrame), "no offload was enabled"
    eth, _ = parse_ethernet(frame)
    assert eth.src == params.gateway_mac
    # Everything the stack sends is ARP, IP fragments, TCP, UDP or ICMP.
    assert walk_frame(frame) != "other"


def check_bounds(stack: Stack) -> None:
    """The tables a guest can grow stay within their limits."""
    tcp = stack.tcp
    assert len(tcp) + tcp.pending_count <= stack.params.max_connections
    assert len(tcp._gone) <= 4 * stack.params.max_connections
    # Stale entries of forgotten connections wait for the next rebuild.
    assert len(tcp._timers) <= 2 * stack.params.max_connections + 65
    reassembly = stack._reassembly
    assert len(reassembly) <= DEFAULT_MAX_DATAGRAMS
    assert 0 <= reassembly.bytes_held <= DEFAULT_MAX_BYTES


def drive(stack: Stack, frame: bytes | memoryview, now: float, *, checksum_valid: bool) -> None:
    """Feed one frame, play the engine (accept every request), check the output."""
    stack.receive_frame(frame, now, checksum_valid)
    for event in stack.take_events():
        if isinstance(event, TcpConnectRequested):
            stack.tcp_accept(event.key, now)
    for out in stack.take_frames():
        check_output_frame(out)
    check_bounds(stack)


def fuzz_stack(data: bytes) -> None:
    for checksum_valid in (False, True):
        stack = Stack(CORPUS_GATEWAY)
        drive(stack, data, 0.0, checksum_valid=checksum_valid)
        # Links may hand over views into a writable buffer (never hashable).
        drive(stack, memoryview(bytearray(data)), 0.5, checksum_valid=checksum_valid)
        for now in (1.0, 100.0, 1000.0):
            stack.poll(now)
            for out in stack.take_frames():
                check_output_frame(out)
            stack.take_events()
        check_bounds(stack)
