"""parse(emit(x)) == x for every codec, with payloads coming back as the same bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.wire import strategies as s
from trionet.wire.arp import ArpPacket, parse_arp
from trionet.wire.checksum import pseudo_header_v4, pseudo_header_v6
from trionet.wire.ethernet import EthernetHeader, parse_ethernet
from trionet.wire.icmpv4 import Icmpv4Message, parse_icmpv4
from trionet.wire.icmpv6 import Icmpv6Message, parse_icmpv6
from trionet.wire.ipv4 import Ipv4Header, parse_ipv4
from trionet.wire.ipv6 import Ipv6Header, parse_ipv6
from trionet.wire.tcp import TcpHeader, parse_tcp
from trionet.wire.udp import UdpHeader, parse_udp


@given(s.ethernet_headers, s.payloads)
def test_ethernet(header: EthernetHeader, payload: bytes) -> None:
    parsed, rest = parse_ethernet(header.to_bytes() + payload)
    assert parsed == header
    assert rest == payload


@given(s.ethernet_headers)
def test_ethernet_emit_into_offset(header: EthernetHeader) -> None:
    buf = bytearray(3 + header.header_len)
    assert header.emit_into(buf, 3) == 3 + header.header_len
    assert parse_ethernet(buf[3:])[0] == header


@given(s.arp_packets)
def test_arp(packet: ArpPacket) -> None:
    assert parse_arp(packet.to_bytes()) == packet


@given(s.ipv4_headers)
def test_ipv4(header: Ipv4Header) -> None:
    payload = bytes(range(256)) * 6
    parsed, rest = parse_ipv4(header.to_bytes() + payload[: header.payload_len])
    assert parsed == header
    assert rest == payload[: header.payload_len]


@given(s.ipv6_headers)
def test_ipv6(header: Ipv6Header) -> None:
    payload = bytes(range(256)) * 6
    wire = header.to_bytes() + payload[: header.payload_len]
    assert len(header.to_bytes()) == header.header_len
    parsed, rest = parse_ipv6(wire)
    assert parsed == header
    assert rest == payload[: header.payload_len]


@given(s.udp_headers, s.payloads, s.ipv4_addrs, s.ipv4_addrs, st.booleans())
def test_udp(header: UdpHeader, payload: bytes, src: bytes, dst: bytes, partial: bool) -> None:
    pseudo = pseudo_header_v4(src, dst, 17, 8 + len(payload))
    wire = header.to_bytes(payload, pseudo, partial=partial)
    # A partial checksum is not verifiable, exactly like an offloaded one.
    parsed, rest = parse_udp(wire, None if partial else pseudo, zero_checksum_ok=False)
    assert (parsed, rest) == (header, payload)


@given(s.tcp_headers, s.payloads, s.ipv6_addrs, s.ipv6_addrs)
def test_tcp(header: TcpHeader, payload: bytes, src: bytes, dst: bytes) -> None:
    pseudo = pseudo_header_v6(src, dst, 6, header.header_len + len(payload))
    wire = header.to_bytes(payload, pseudo)
    assert len(wire) == header.header_len + len(payload)
    assert parse_tcp(wire, pseudo) == (header, payload)


@given(s.icmpv4_messages, s.payloads)
def test_icmpv4(message: Icmpv4Message, payload: bytes) -> None:
    assert parse_icmpv4(message.to_bytes(payload)) == (message, payload)


@given(s.icmpv6_non_ndp, s.payloads, s.ipv6_addrs, s.ipv6_addrs)
def test_icmpv6(message: Icmpv6Message, payload: bytes, src: bytes, dst: bytes) -> None:
    pseudo = pseudo_header_v6(src, dst, 58, 8 + len(payload))
    assert parse_icmpv6(message.to_bytes(payload, pseudo), pseudo) == (message, payload)


@given(s.ndp_messages, s.ipv6_addrs, s.ipv6_addrs)
def test_ndp(message: Icmpv6Message, src: bytes, dst: bytes) -> None:
    pseudo = pseudo_header_v6(src, dst, 58, message.header_len)
    wire = message.to_bytes(b"", pseudo)
    assert len(wire) == message.header_len
    assert parse_icmpv6(wire, pseudo) == (message, b"")
