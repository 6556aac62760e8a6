"""A scripted guest for driving :class:`trionet.stack.interface.Stack` without root.

Frames are built with the wire builders and the stack's output is parsed back
with the wire parsers, so every test sees exactly the bytes a real guest would.
Time is a plain float the test advances.
"""

from __future__ import annotations

from dataclasses import dataclass

from trionet.stack.flows import OffloadFrame, OutFrame
from trionet.stack.interface import Stack, StackParams
from trionet.wire.arp import ArpOperation, ArpPacket, parse_arp
from trionet.wire.checksum import pseudo_header_v4, pseudo_header_v6
from trionet.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, parse_ethernet
from trionet.wire.frames import build_arp_frame, build_ipv4_frame, build_ipv6_frame
from trionet.wire.icmpv4 import Icmpv4Message, parse_icmpv4
from trionet.wire.icmpv6 import Icmpv6Message, parse_icmpv6
from trionet.wire.ipv4 import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Ipv4Header, parse_ipv4
from trionet.wire.ipv6 import NEXT_HEADER_ICMPV6, Ipv6Header, parse_ipv6
from trionet.wire.tcp import TcpHeader, parse_tcp
from trionet.wire.udp import UdpHeader, parse_udp

GUEST_MAC = bytes.fromhex("5a9400000002")
GATEWAY_MAC = bytes.fromhex("5a9400000001")
OTHER_MAC = bytes.fromhex("5a94000000ee")
BROADCAST_MAC = b"\xff" * 6
GUEST4 = bytes([172, 16, 0, 2])
GW4 = bytes([172, 16, 0, 1])
REMOTE4 = bytes([93, 184, 216, 34])
GUEST6 = bytes.fromhex("fd426d73006200000000000000000002")
GW6 = bytes.fromhex("fd426d73006200000000000000000001")
GW6_LL = bytes.fromhex("fe800000000000000000000000000001")
GUEST6_LL = bytes.fromhex("fe800000000000000000000000000002")
REMOTE6 = bytes.fromhex("20010db8000000000000000000000042")
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
UNSPECIFIED6 = bytes(16)


def solicited_node(address: bytes) -> bytes:
    return bytes.fromhex("ff0200000000000000000001ff") + address[13:]


def multicast_mac(address: bytes) -> bytes:
    return b"\x33\x33" + address[12:]


def make_params(**overrides: object) -> StackParams:
    values: dict[str, object] = {
        "guest_mac": GUEST_MAC,
        "gateway_mac": GATEWAY_MAC,
        "mtu": 1500,
        "gateway_ipv4": GW4,
        "guest_ipv4": GUEST4,
        "gateway_ipv6": GW6,
        "gateway_ipv6_link_local": GW6_LL,
        "guest_ipv6": GUEST6,
        "max_connections": 16,
        "isn_secret": b"k" * 16,
    }
    values.update(overrides)
    return StackParams(**values)  # type: ignore[arg-type]


def make_stack(**overrides: object) -> Stack:
    return Stack(make_params(**overrides))


# -- frames from the guest ------------------------------------------------------------


def v4(
    transport: TcpHeader | UdpHeader | Icmpv4Message,
    payload: bytes = b"",
    *,
    src: bytes = GUEST4,
    dst: bytes = REMOTE4,
    dst_mac: bytes = GATEWAY_MAC,
    ttl: int = 64,
) -> bytes:
    frame = build_ipv4_frame(GUEST_MAC, dst_mac, src, dst, transport, payload=payload, ttl=ttl)
    return bytes(frame + payload)


def v6(
    transport: TcpHeader | UdpHeader | Icmpv6Message,
    payload: bytes = b"",
    *,
    src: bytes = GUEST6,
    dst: bytes = REMOTE6,
    dst_mac: bytes = GATEWAY_MAC,
    hop_limit: int = 64,
) -> bytes:
    frame = build_ipv6_frame(
        GUEST_MAC, dst_mac, src, dst, transport, payload=payload, hop_limit=hop_limit
    )
    return bytes(frame + payload)


def arp_request(target: bytes, *, dst_mac: bytes = BROADCAST_MAC) -> bytes:
    packet = ArpPacket(ArpOperation.REQUEST, GUEST_MAC, GUEST4, bytes(6), target)
    return bytes(build_arp_frame(GUEST_MAC, dst_mac, packet))


def ipv4_fragment(
    header: Ipv4Header, data: bytes, *, dst_mac: bytes = GATEWAY_MAC, src_mac: bytes = GUEST_MAC
) -> bytes:
    eth = dst_mac + src_mac + b"\x08\x00"
    return eth + header.to_bytes() + data


def ipv6_packet(header: Ipv6Header, data: bytes, *, dst_mac: bytes = GATEWAY_MAC) -> bytes:
    return dst_mac + GUEST_MAC + b"\x86\xdd" + header.to_bytes() + data


def udp_datagram_v4(src_port: int, dst_port: int, payload: bytes, src: bytes, dst: bytes) -> bytes:
    return UdpHeader(src_port, dst_port).to_bytes(
        payload, pseudo_header_v4(src, dst, PROTO_UDP, 8 + len(payload))
    )


def udp_datagram_v6(src_port: int, dst_port: int, payload: bytes, src: bytes, dst: bytes) -> bytes:
    return UdpHeader(src_port, dst_port).to_bytes(
        payload, pseudo_header_v6(src, dst, PROTO_UDP, 8 + len(payload))
    )


# -- frames from the stack ------------------------------------------------------------


@dataclass
class Parsed:
    """One frame the stack sent, decoded layer by layer."""

    dst_mac: bytes
    src_mac: bytes
    ethertype: int
    ip: Ipv4Header | Ipv6Header | None = None
    arp: ArpPacket | None = None
    tcp: TcpHeader | None = None
    udp: UdpHeader | None = None
    icmp4: Icmpv4Message | None = None
    icmp6: Icmpv6Message | None = None
    payload: bytes = b""
    #: the IP payload for a fragment (not parsed further)
    fragment_data: bytes = b""


def as_bytes(frame: OutFrame) -> bytes:
    if isinstance(frame, OffloadFrame):
        return bytes(frame.head) + bytes(frame.payload)
    return frame


def parse_out(frame: OutFrame) -> Parsed:
    """Decode a frame from the stack, verifying every checksum on the way."""
    eth, l3 = parse_ethernet(as_bytes(frame))
    out = Parsed(eth.dst, eth.src, eth.ethertype)
    if eth.ethertype == ETHERTYPE_ARP:
        out.arp = parse_arp(l3)
    elif eth.ethertype == ETHERTYPE_IPV4:
        ip4, l4 = parse_ipv4(l3)
        out.ip = ip4
        if ip4.is_fragment:
            out.fragment_data = bytes(l4)
            return out
        pseudo = pseudo_header_v4(ip4.src, ip4.dst, ip4.protocol, len(l4))
        if ip4.protocol == PROTO_TCP:
            out.tcp, data = parse_tcp(l4, pseudo)
        elif ip4.protocol == PROTO_UDP:
            out.udp, data = parse_udp(l4, pseudo)
        elif ip4.protocol == PROTO_ICMP:
            out.icmp4, data = parse_icmpv4(l4)
        else:
            raise AssertionError(f"unexpected protocol {ip4.protocol}")
        out.payload = bytes(data)
    elif eth.ethertype == ETHERTYPE_IPV6:
        ip6, l4 = parse_ipv6(l3)
        out.ip = ip6
        if ip6.fragment is not None:
            out.fragment_data = bytes(l4)
            return out
        pseudo = pseudo_header_v6(ip6.src, ip6.dst, ip6.next_header, len(l4))
        if ip6.next_header == PROTO_TCP:
            out.tcp, data = parse_tcp(l4, pseudo)
        elif ip6.next_header == PROTO_UDP:
            out.udp, data = parse_udp(l4, pseudo, zero_checksum_ok=False)
        elif ip6.next_header == NEXT_HEADER_ICMPV6:
            out.icmp6, data = parse_icmpv6(l4, pseudo)
        else:
            raise AssertionError(f"unexpected next header {ip6.next_header}")
        out.payload = bytes(data)
    else:
        raise AssertionError(f"unexpected ethertype {eth.ethertype:#x}")
    return out


def take_parsed(stack: Stack) -> list[Parsed]:
    return [parse_out(frame) for frame in stack.take_frames()]


def only(stack: Stack) -> Parsed:
    """The single frame the stack produced."""
    frames = take_parsed(stack)
    assert len(frames) == 1, frames
    return frames[0]


def handshake(stack: Stack, port: int = 40000, *, now: float = 0.0, version: int = 4) -> Handshake:
    """Open a connection from a scripted guest (no options): SYN, accept, ACK."""
    from trionet.stack.flows import FlowKey
    from trionet.wire.tcp import TcpFlags

    if version == 4:
        key = FlowKey(4, GUEST4, port, REMOTE4, 80)
    else:
        key = FlowKey(6, GUEST6, port, REMOTE6, 80)
    send = v4 if version == 4 else v6
    stack.receive_frame(send(TcpHeader(port, 80, 1000, 0, TcpFlags.SYN, 65535)), now)
    assert stack.tcp_accept(key, now)
    synack = only(stack).tcp
    assert synack is not None
    ours = synack.seq + 1
    stack.receive_frame(send(TcpHeader(port, 80, 1001, ours, TcpFlags.ACK, 65535)), now)
    stack.take_events()
    return Handshake(key, 1001, ours)


@dataclass
class Handshake:
    key: object
    #: the guest's next sequence number, and the stack's
    guest_seq: int
    stack_seq: int
