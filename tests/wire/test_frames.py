"""The transmit builders: header bytes that parse back, with the payload kept apart."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.wire import strategies as s
from trionet.wire.arp import ArpPacket, parse_arp
from trionet.wire.checksum import pseudo_header_v4, pseudo_header_v6
from trionet.wire.ethernet import parse_ethernet
from trionet.wire.frames import (
    TRANSPORT_OFFSET_V4,
    TRANSPORT_OFFSET_V6,
    build_arp_frame,
    build_icmpv4_error,
    build_icmpv6_error,
    build_ipv4_frame,
    build_ipv6_frame,
    build_tcp_ipv4_frame,
)
from trionet.wire.icmpv4 import Icmpv4DestUnreachable, parse_icmpv4
from trionet.wire.icmpv6 import Icmpv6PacketTooBig, parse_icmpv6
from trionet.wire.ipv4 import Ipv4Header, parse_ipv4
from trionet.wire.ipv6 import Ipv6Header, parse_ipv6
from trionet.wire.tcp import TcpFlags, TcpHeader, TcpOptions, parse_tcp
from trionet.wire.udp import UdpHeader, parse_udp

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


@settings(max_examples=60)
@given(s.ipv4_addrs, s.ipv4_addrs, s.tcp_headers | s.udp_headers, s.payloads, st.booleans())
def test_ipv4_frame_parses_back(
    src: bytes, dst: bytes, transport: TcpHeader | UdpHeader, payload: bytes, partial: bool
) -> None:
    header = build_ipv4_frame(
        MAC_A, MAC_B, src, dst, transport, payload=payload, partial_checksum=partial
    )
    assert len(header) == TRANSPORT_OFFSET_V4 + transport.header_len
    eth, l3 = parse_ethernet(bytes(header) + payload)
    assert (eth.src, eth.dst, eth.ethertype) == (MAC_A, MAC_B, 0x0800)
    ip, l4 = parse_ipv4(l3)  # the IP checksum is complete even in partial mode
    assert (ip.src, ip.dst, ip.dont_fragment) == (src, dst, True)
    pseudo = pseudo_header_v4(src, dst, ip.protocol, len(l4))
    if isinstance(transport, TcpHeader):
        field = 16
        assert ip.protocol == 6
        assert parse_tcp(l4, None if partial else pseudo) == (transport, payload)
    else:
        field = 6
        assert ip.protocol == 17
        assert parse_udp(l4, None if partial else pseudo) == (transport, payload)
    if partial:
        assert struct.unpack_from("!H", header, TRANSPORT_OFFSET_V4 + field)[0] == pseudo


_ts_only_headers = st.builds(
    TcpHeader,
    s.u16,
    s.u16,
    s.u32,
    s.u32,
    s.u8.map(TcpFlags),
    s.u16,
    urgent=s.u16,
    options=st.builds(TcpOptions, timestamp=st.tuples(s.u32, s.u32)),
)
_plain_headers = st.builds(
    TcpHeader, s.u16, s.u16, s.u32, s.u32, s.u8.map(TcpFlags), s.u16, urgent=s.u16
)


@settings(max_examples=200)
@given(
    s.ipv4_addrs,
    s.ipv4_addrs,
    s.tcp_headers | _ts_only_headers | _plain_headers,
    s.payloads,
    st.booleans(),
)
def test_tcp_ipv4_frame_matches_the_general_builder(
    src: bytes, dst: bytes, header: TcpHeader, payload: bytes, partial: bool
) -> None:
    fast = build_tcp_ipv4_frame(
        MAC_A, MAC_B, src, dst, header, payload=payload, partial_checksum=partial
    )
    general = build_ipv4_frame(
        MAC_A, MAC_B, src, dst, header, payload=payload, partial_checksum=partial
    )
    assert fast == general


def test_tcp_ipv4_frame_refuses_an_oversized_segment() -> None:
    header = TcpHeader(1, 2, 3, 4, TcpFlags.ACK, 5)
    with pytest.raises(ValueError, match="16-bit total length"):
        build_tcp_ipv4_frame(MAC_A, MAC_B, bytes(4), bytes(4), header, payload=bytes(65516))


@settings(max_examples=60)
@given(s.ipv6_addrs, s.ipv6_addrs, s.tcp_headers | s.udp_headers, s.payloads, s.u8)
def test_ipv6_frame_parses_back(
    src: bytes, dst: bytes, transport: TcpHeader | UdpHeader, payload: bytes, hop_limit: int
) -> None:
    header = build_ipv6_frame(
        MAC_A, MAC_B, src, dst, transport, payload=payload, hop_limit=hop_limit
    )
    assert len(header) == TRANSPORT_OFFSET_V6 + transport.header_len
    eth, l3 = parse_ethernet(bytes(header) + payload)
    assert eth.ethertype == 0x86DD
    ip, l4 = parse_ipv6(l3)
    assert (ip.src, ip.dst, ip.hop_limit) == (src, dst, hop_limit)
    pseudo = pseudo_header_v6(src, dst, ip.next_header, len(l4))
    if isinstance(transport, TcpHeader):
        assert parse_tcp(l4, pseudo) == (transport, payload)
    else:
        assert parse_udp(l4, pseudo, zero_checksum_ok=False) == (transport, payload)


def test_frag_needed_error_quotes_the_offending_datagram() -> None:
    guest, gateway, remote = b"\x0a\0\0\x0f", b"\x0a\0\0\x02", b"\x08\x08\x08\x08"
    udp = UdpHeader(5000, 53)
    body = bytes(1472)
    offending = bytes(build_ipv4_frame(MAC_B, MAC_A, guest, remote, udp, payload=body))[14:]
    offending += body
    header, quote = build_icmpv4_error(
        MAC_A, MAC_B, gateway, Icmpv4DestUnreachable.frag_needed(1400), offending
    )
    frame = bytes(header) + quote
    assert len(frame) == 14 + 576
    ip, l4 = parse_ipv4(parse_ethernet(frame)[1])
    assert (ip.src, ip.dst, ip.protocol) == (gateway, guest, 1)
    message, quoted = parse_icmpv4(l4)
    assert message == Icmpv4DestUnreachable(4, 1400)
    assert quoted == offending[:548]
    # The quote starts with the original IP header, then the UDP header.
    assert bytes(quoted[16:20]) == remote
    assert struct.unpack_from("!HH", quoted, 20) == (udp.src_port, udp.dst_port)


def test_short_datagram_is_quoted_whole() -> None:
    offending = Ipv4Header(b"\x0a\0\0\x0f", b"\x01\x01\x01\x01", 17, 4).to_bytes() + b"abcd"
    header, quote = build_icmpv4_error(
        MAC_A, MAC_B, b"\x0a\0\0\x02", Icmpv4DestUnreachable(3), offending
    )
    assert bytes(quote) == offending
    assert len(header) + len(quote) == 14 + 20 + 8 + 24


def test_packet_too_big_fits_the_minimum_mtu() -> None:
    guest = b"\xfd" + bytes(14) + b"\x0f"
    gateway = b"\xfd" + bytes(14) + b"\x02"
    offending = Ipv6Header(guest, b"\x20" + bytes(15), 17, 2960).to_bytes() + bytes(2960)
    header, quote = build_icmpv6_error(MAC_A, MAC_B, gateway, Icmpv6PacketTooBig(1280), offending)
    frame = bytes(header) + quote
    assert len(frame) - 14 == 1280
    ip, l4 = parse_ipv6(parse_ethernet(frame)[1])
    assert (ip.src, ip.dst) == (gateway, guest)
    pseudo = pseudo_header_v6(gateway, guest, 58, len(l4))
    assert parse_icmpv6(l4, pseudo) == (Icmpv6PacketTooBig(1280), offending[:1232])


def test_oversized_frames_are_refused() -> None:
    tcp = TcpHeader(1, 2, 3, 4, TcpFlags.ACK, 5)
    with pytest.raises(ValueError, match="16-bit"):
        build_ipv4_frame(MAC_A, MAC_B, bytes(4), bytes(4), tcp, payload=bytes(65500))
    with pytest.raises(ValueError, match="16-bit"):
        build_ipv6_frame(MAC_A, MAC_B, bytes(16), bytes(16), tcp, payload=bytes(65520))
    # The largest TSO-sized segments still fit.
    build_ipv4_frame(MAC_A, MAC_B, bytes(4), bytes(4), tcp, payload=bytes(65495))
    build_ipv6_frame(MAC_A, MAC_B, bytes(16), bytes(16), tcp, payload=bytes(65515))


def test_arp_frame() -> None:
    arp = ArpPacket(2, MAC_A, b"\x0a\0\0\x02", MAC_B, b"\x0a\0\0\x0f")
    frame = build_arp_frame(MAC_A, MAC_B, arp)
    eth, body = parse_ethernet(frame)
    assert (eth.ethertype, len(frame)) == (0x0806, 42)
    assert parse_arp(body) == arp
