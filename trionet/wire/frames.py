"""Whole-frame builders for the stack's transmit path.

Each builder writes Ethernet + IP + transport header into one new bytearray
with every length and checksum filled in, and leaves the payload out: the
link writes ``[header, payload]`` with ``os.writev`` so payload bytes are
never copied in Python. The payload is passed in only to be summed (and
counted).

With ``partial_checksum=True`` (TCP and UDP only) the transport checksum
field holds the pseudo-header sum and the IP header checksum is complete, as
a virtio-net NEEDS_CSUM frame requires: csum_start is the transport header's
offset (``TRANSPORT_OFFSET_V4``/``_V6``, +4 with a VLAN tag, which these
builders never add) and csum_offset is 16 for TCP, 6 for UDP.
"""

from __future__ import annotations

import struct

from trionet.wire._types import BytesLike
from trionet.wire.arp import ARP_LEN, ArpPacket
from trionet.wire.checksum import pseudo_header_v4, pseudo_header_v6
from trionet.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6
from trionet.wire.icmpv4 import Icmpv4Message
from trionet.wire.icmpv6 import Icmpv6Message
from trionet.wire.ipv4 import (
    IPV4_HEADER_LEN,
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    emit_ipv4_header,
)
from trionet.wire.ipv6 import IPV6_HEADER_LEN, NEXT_HEADER_ICMPV6, Ipv6Header
from trionet.wire.tcp import TcpHeader
from trionet.wire.udp import UdpHeader

__all__ = [
    "TRANSPORT_OFFSET_V4",
    "TRANSPORT_OFFSET_V6",
    "build_arp_frame",
    "build_ipv4_frame",
    "build_ipv6_frame",
]

_ETHERNET = struct.Struct("!6s6sH")
_ETHERNET_LEN = 14
_DF = 0x4000
TRANSPORT_OFFSET_V4 = _ETHERNET_LEN + IPV4_HEADER_LEN
TRANSPORT_OFFSET_V6 = _ETHERNET_LEN + IPV6_HEADER_LEN


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
