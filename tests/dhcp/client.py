"""A scripted DHCP/NDP client for driving the stack's autoconfiguration without root."""

from __future__ import annotations

from tests.stack.guest import (
    BROADCAST_MAC,
    GATEWAY_MAC,
    GUEST_MAC,
    Parsed,
    make_stack,
    take_parsed,
    v4,
    v6,
)
from trionet.dhcp.config import DhcpConfig
from trionet.stack.interface import Stack
from trionet.wire.dhcpv4 import (
    BOOTREQUEST,
    DhcpMessage,
    MessageType,
    Option,
    parse_dhcpv4,
)
from trionet.wire.dhcpv6 import Dhcpv6Message, parse_dhcpv6
from trionet.wire.udp import UdpHeader

ZERO4 = bytes(4)
BROADCAST4 = b"\xff\xff\xff\xff"
ALL_DHCP_SERVERS = bytes.fromhex("ff020000000000000000000000010002")
DHCPV6_MAC = bytes.fromhex("333300010002")


def dhcp_stack(config: DhcpConfig | None = None, **overrides: object) -> Stack:
    return make_stack(dhcp=config or DhcpConfig(), **overrides)


def request(
    kind: MessageType,
    *options: tuple[int, bytes],
    xid: int = 0x1234,
    ciaddr: bytes = ZERO4,
    flags: int = 0,
    chaddr: bytes = GUEST_MAC,
) -> DhcpMessage:
    return DhcpMessage(
        BOOTREQUEST,
        xid,
        chaddr.ljust(16, b"\0"),
        flags=flags,
        ciaddr=ciaddr,
        options=((Option.MESSAGE_TYPE, bytes((kind,))), *options),
    )


def dhcp_frame(
    message: DhcpMessage | bytes,
    *,
    src: bytes = ZERO4,
    dst: bytes = BROADCAST4,
    dst_mac: bytes = BROADCAST_MAC,
) -> bytes:
    payload = message if isinstance(message, bytes) else message.to_bytes()
    return v4(UdpHeader(68, 67), payload, src=src, dst=dst, dst_mac=dst_mac)


def dhcp_replies(stack: Stack) -> list[tuple[Parsed, DhcpMessage]]:
    """The DHCPv4 replies among the stack's frames (router advertisements pass by)."""
    out = []
    for frame in take_parsed(stack):
        if frame.icmp6 is not None:
            continue
        assert frame.udp is not None and frame.udp.src_port == 67 and frame.udp.dst_port == 68
        out.append((frame, parse_dhcpv4(frame.payload)))
    return out


def one_reply(stack: Stack) -> tuple[Parsed, DhcpMessage]:
    replies = dhcp_replies(stack)
    assert len(replies) == 1, replies
    return replies[0]


def dhcpv6_frame(message: Dhcpv6Message, *, src: bytes) -> bytes:
    return v6(
        UdpHeader(546, 547), message.to_bytes(), src=src, dst=ALL_DHCP_SERVERS, dst_mac=DHCPV6_MAC
    )


def dhcpv6_reply(stack: Stack) -> tuple[Parsed, Dhcpv6Message]:
    frames = take_parsed(stack)
    assert len(frames) == 1, frames
    frame = frames[0]
    assert frame.udp is not None and (frame.udp.src_port, frame.udp.dst_port) == (547, 546)
    assert frame.src_mac == GATEWAY_MAC
    return frame, parse_dhcpv6(frame.payload)
