"""Whole-frame builders for the stack's transmit path.

Each builder writes Ethernet + IP + transport header into one new bytearray
with every length and checksum filled in, and leaves the payload out: the
link writes ``[header, payload]`` with ``os.writev`` so payload bytes are
never copied in Python. The payload is passed in only to be summed (and
counted).

With ``partial_checksum=True`` (TCP and UDP only) the transport checksum
field holds the pseudo-header sum and the IP header checksum is complete, as
a virtio-net NEEDS_CSUM frame requires: csum_start is the transport header's
offset (``TRANSPORT_OFFSET_V4``/``_V6``; these builders never add a VLAN
tag) and csum_offset is ``CSUM_OFFSET_TCP`` or ``CSUM_OFFSET_UDP``.

The ICMP error builders quote the offending datagram, as much as RFC 1812
(576 bytes in all, IPv4) or RFC 4443 (1280 bytes, IPv6) allow, and address
the error to the datagram's source. Whether an error may be sent at all (not
about an ICMP error, a non-first fragment, a multicast destination...) is
the stack's decision.
"""

from __future__ import annotations

import struct

from trionet.wire._types import BytesLike
from trionet.wire.arp import ARP_LEN, ArpPacket
from trionet.wire.checksum import pseudo_header_v4, pseudo_header_v6
from trionet.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6
from trionet.wire.icmpv4 import Icmpv4Message, icmpv4_quote
from trionet.wire.icmpv6 import Icmpv6Message, icmpv6_quote
from trionet.wire.ipv4 import (
    IPV4_HEADER_LEN,
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    emit_ipv4_header,
)
from trionet.wire.ipv6 import IPV6_HEADER_LEN, NEXT_HEADER_ICMPV6, Ipv6Header
from trionet.wire.tcp import NO_OPTIONS, TCP_HEADER_LEN, TcpHeader, emit_options, options_len
from trionet.wire.udp import UdpHeader

__all__ = [
    "CSUM_OFFSET_TCP",
    "CSUM_OFFSET_UDP",
    "TRANSPORT_OFFSET_V4",
    "TRANSPORT_OFFSET_V6",
    "build_arp_frame",
    "build_icmpv4_error",
    "build_icmpv6_error",
    "build_ipv4_frame",
    "build_ipv6_frame",
    "build_tcp_ipv4_frame",
]

_ETHERNET = struct.Struct("!6s6sH")
_ETHERNET_LEN = 14
_DF = 0x4000
TRANSPORT_OFFSET_V4 = _ETHERNET_LEN + IPV4_HEADER_LEN
TRANSPORT_OFFSET_V6 = _ETHERNET_LEN + IPV6_HEADER_LEN
#: Where the checksum field sits in the transport header (virtio-net csum_offset).
CSUM_OFFSET_TCP = 16
CSUM_OFFSET_UDP = 6
_MAX_IPV4_PAYLOAD = 0xFFFF - IPV4_HEADER_LEN
#: Ethernet, IPv4 and the fixed TCP header in one go (TCP segments to the guest).
_ETH_IPV4_TCP = struct.Struct("!6s6sH BBHHHBBH4s4s HHIIHHHH")
#: ... followed by the NOP, NOP, timestamps option every Linux segment carries.
_ETH_IPV4_TCP_TS = struct.Struct("!6s6sH BBHHHBBH4s4s HHIIHHHH HHII")
_TS_PREFIX = 0x0101  # NOP, NOP
_TS_KIND_LEN = 0x080A  # kind 8, length 10
#: The constant words of build_tcp_ipv4_frame's IPv4 header: version/IHL,
#: DF, TTL 64 and the protocol (ident and DSCP/ECN are zero).
_IPV4_TCP_CONSTANT = 0x4500 + _DF + (64 << 8) + PROTO_TCP


def build_ipv4_frame(
    src_mac: bytes,
    dst_mac: bytes,
    src_ip: bytes,
    dst_ip: bytes,
    transport: TcpHeader | UdpHeader | Icmpv4Message,
    *,
    payload: BytesLike = b"",
    ttl: int = 64,
    ident: int = 0,
    dont_fragment: bool = True,
    dscp_ecn: int = 0,
    partial_checksum: bool = False,
) -> bytearray:
    """Ethernet + IPv4 + ``transport`` header for ``payload``; the payload is not included.

    The protocol number follows from the transport's type. ICMPv4 has no
    pseudo-header and is always checksummed in full.
    """
    transport_len = transport.header_len
    l4_len = transport_len + len(payload)
    if l4_len > _MAX_IPV4_PAYLOAD:
        raise ValueError(f"ipv4: {l4_len} bytes exceed the 16-bit total length")
    buf = bytearray(TRANSPORT_OFFSET_V4 + transport_len)
    _ETHERNET.pack_into(buf, 0, dst_mac, src_mac, ETHERTYPE_IPV4)
    if isinstance(transport, TcpHeader):
        protocol = PROTO_TCP
    elif isinstance(transport, UdpHeader):
        protocol = PROTO_UDP
    else:
        protocol = PROTO_ICMP
    emit_ipv4_header(
        buf,
        _ETHERNET_LEN,
        src=src_ip,
        dst=dst_ip,
        protocol=protocol,
        payload_len=l4_len,
        ttl=ttl,
        ident=ident,
        flags_frag=_DF if dont_fragment else 0,
        dscp_ecn=dscp_ecn,
    )
    if isinstance(transport, TcpHeader | UdpHeader):
        pseudo = pseudo_header_v4(src_ip, dst_ip, protocol, l4_len)
        transport.emit_into(buf, TRANSPORT_OFFSET_V4, payload, pseudo, partial=partial_checksum)
    else:
        transport.emit_into(buf, TRANSPORT_OFFSET_V4, payload)
    return buf


def build_tcp_ipv4_frame(
    src_mac: bytes,
    dst_mac: bytes,
    src_ip: bytes,
    dst_ip: bytes,
    header: TcpHeader,
    *,
    payload: BytesLike = b"",
    partial_checksum: bool = False,
) -> bytearray:
    """:func:`build_ipv4_frame` for a TCP segment with the defaults, in one pack.

    Same bytes (TTL 64, ident 0, DF), built for the stack's per-segment path:
    the Ethernet, IPv4 and TCP headers (and a timestamps-only option) are
    packed with one ``struct`` call, and both checksums are summed from the
    numbers being packed (modulo 0xFFFF, as in :func:`emit_ipv4_header`),
    so only the payload and any other options are read back as bytes.
    """
    opts = header.options
    tcp_len = TCP_HEADER_LEN if opts is NO_OPTIONS else TCP_HEADER_LEN + options_len(opts)
    l4_len = tcp_len + len(payload)
    if l4_len > _MAX_IPV4_PAYLOAD:
        raise ValueError(f"ipv4: {l4_len} bytes exceed the 16-bit total length")
    total_len = IPV4_HEADER_LEN + l4_len
    addresses = int.from_bytes(src_ip, "big") + int.from_bytes(dst_ip, "big")
    ip_checksum = ~((_IPV4_TCP_CONSTANT + total_len + addresses) % 0xFFFF or 0xFFFF) & 0xFFFF
    # The pseudo-header's sum is never 0: the protocol alone is 6.
    pseudo = (addresses + PROTO_TCP + l4_len) % 0xFFFF or 0xFFFF
    offset_flags = (tcp_len << 10) | int(header.flags)
    src_port, dst_port, seq, ack = header.src_port, header.dst_port, header.seq, header.ack
    window, urgent = header.window, header.urgent
    # The TCP header's words: 32-bit fields count as their two halves, modulo 0xFFFF.
    words = src_port + dst_port + seq + ack + offset_flags + window + urgent
    buf = bytearray(TRANSPORT_OFFSET_V4 + tcp_len)
    timestamp = opts.timestamp
    # A timestamps-only option (12 bytes with its NOPs) is packed with the rest.
    ts_only = tcp_len == TCP_HEADER_LEN + 12 and timestamp is not None
    if ts_only:
        assert timestamp is not None
        words += _TS_PREFIX + _TS_KIND_LEN + timestamp[0] + timestamp[1]
    elif tcp_len > TCP_HEADER_LEN:
        end = emit_options(opts, buf, TRANSPORT_OFFSET_V4 + TCP_HEADER_LEN)
        words += int.from_bytes(buf[TRANSPORT_OFFSET_V4 + TCP_HEADER_LEN : end], "big")
    if partial_checksum:
        checksum = pseudo
    else:
        total = pseudo + words
        if payload:
            value = int.from_bytes(payload, "big")
            # An odd payload is summed as if padded with a zero byte (RFC 1071).
            total += value << 8 if len(payload) & 1 else value
        # Never 0: the data offset alone is at least 0x5000.
        checksum = ~(total % 0xFFFF or 0xFFFF) & 0xFFFF
    if ts_only:
        assert timestamp is not None
        _ETH_IPV4_TCP_TS.pack_into(
            buf, 0, dst_mac, src_mac, ETHERTYPE_IPV4,
            0x45, 0, total_len, 0, _DF, 64, PROTO_TCP, ip_checksum, src_ip, dst_ip,
            src_port, dst_port, seq, ack, offset_flags, window, checksum, urgent,
            _TS_PREFIX, _TS_KIND_LEN, timestamp[0], timestamp[1],
        )  # fmt: skip
    else:
        _ETH_IPV4_TCP.pack_into(
            buf, 0, dst_mac, src_mac, ETHERTYPE_IPV4,
            0x45, 0, total_len, 0, _DF, 64, PROTO_TCP, ip_checksum, src_ip, dst_ip,
            src_port, dst_port, seq, ack, offset_flags, window, checksum, urgent,
        )  # fmt: skip
    return buf


def build_ipv6_frame(
    src_mac: bytes,
    dst_mac: bytes,
    src_ip: bytes,
    dst_ip: bytes,
    transport: TcpHeader | UdpHeader | Icmpv6Message,
    *,
    payload: BytesLike = b"",
    hop_limit: int = 64,
    traffic_class: int = 0,
    flow_label: int = 0,
    partial_checksum: bool = False,
) -> bytearray:
    """Ethernet + IPv6 + ``transport`` header for ``payload``; the payload is not included.

    NDP messages need ``hop_limit=255`` (RFC 4861 receivers drop anything
    else). ICMPv6 is always checksummed in full.
    """
    transport_len = transport.header_len
    l4_len = transport_len + len(payload)
    if l4_len > 0xFFFF:
        raise ValueError(f"ipv6: {l4_len} bytes exceed the 16-bit payload length")
    buf = bytearray(TRANSPORT_OFFSET_V6 + transport_len)
    _ETHERNET.pack_into(buf, 0, dst_mac, src_mac, ETHERTYPE_IPV6)
    if isinstance(transport, TcpHeader):
        next_header = PROTO_TCP
    elif isinstance(transport, UdpHeader):
        next_header = PROTO_UDP
    else:
        next_header = NEXT_HEADER_ICMPV6
    Ipv6Header(
        src_ip, dst_ip, next_header, l4_len, hop_limit, traffic_class, flow_label
    ).emit_into(buf, _ETHERNET_LEN)
    pseudo = pseudo_header_v6(src_ip, dst_ip, next_header, l4_len)
    if isinstance(transport, TcpHeader | UdpHeader):
        transport.emit_into(buf, TRANSPORT_OFFSET_V6, payload, pseudo, partial=partial_checksum)
    else:
        transport.emit_into(buf, TRANSPORT_OFFSET_V6, payload, pseudo)
    return buf


def build_arp_frame(src_mac: bytes, dst_mac: bytes, packet: ArpPacket) -> bytearray:
    """A complete Ethernet frame carrying ``packet`` (42 bytes, unpadded: TAPs need no pad)."""
    buf = bytearray(_ETHERNET_LEN + ARP_LEN)
    _ETHERNET.pack_into(buf, 0, dst_mac, src_mac, ETHERTYPE_ARP)
    packet.emit_into(buf, _ETHERNET_LEN)
    return buf


def build_icmpv4_error(
    src_mac: bytes,
    dst_mac: bytes,
    src_ip: bytes,
    message: Icmpv4Message,
    offending: BytesLike,
    *,
    ttl: int = 64,
) -> tuple[bytearray, memoryview]:
    """An ICMPv4 error about ``offending`` (an IPv4 datagram, header first), sent to its source.

    Returns the frame header and the quote, to be written one after the
    other. ``offending`` must be a datagram :func:`~trionet.wire.ipv4.parse_ipv4`
    accepted (the destination is read from it).
    """
    quote = icmpv4_quote(offending)
    dst_ip = bytes(quote[12:16])
    header = build_ipv4_frame(
        src_mac, dst_mac, src_ip, dst_ip, message, payload=quote, ttl=ttl, dont_fragment=False
    )
    return header, quote


def build_icmpv6_error(
    src_mac: bytes,
    dst_mac: bytes,
    src_ip: bytes,
    message: Icmpv6Message,
    offending: BytesLike,
    *,
    hop_limit: int = 64,
) -> tuple[bytearray, memoryview]:
    """An ICMPv6 error about ``offending`` (an IPv6 packet, header first), sent to its source.

    Returns the frame header and the quote, to be written one after the
    other. ``offending`` must be a packet :func:`~trionet.wire.ipv6.parse_ipv6`
    accepted (the destination is read from it).
    """
    quote = icmpv6_quote(offending)
    dst_ip = bytes(quote[8:24])
    header = build_ipv6_frame(
        src_mac, dst_mac, src_ip, dst_ip, message, payload=quote, hop_limit=hop_limit
    )
    return header, quote
