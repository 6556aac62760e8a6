"""One walk down a whole frame, shared by the fuzz targets and the stack checks."""

from __future__ import annotations

from trionet.wire.arp import parse_arp
from trionet.wire.checksum import pseudo_header_v4, pseudo_header_v6
from trionet.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, parse_ethernet
from trionet.wire.icmpv4 import parse_icmpv4
from trionet.wire.icmpv6 import parse_icmpv6
from trionet.wire.ipv4 import PROTO_ICMP, PROTO_TCP, PROTO_UDP, parse_ipv4
from trionet.wire.ipv6 import NEXT_HEADER_ICMPV6, parse_ipv6
from trionet.wire.tcp import parse_tcp
from trionet.wire.udp import parse_udp

__all__ = ["walk_frame"]


def walk_frame(data: bytes | bytearray | memoryview) -> str:
    """Parse Ethernet, IP and the transport with checksums verified; say what was found.

    Returns "arp", "tcp", "udp", "icmp", "fragment" (not parsed further) or
    "other" (an EtherType or protocol the stack does not speak); raises
    ParseError for anything malformed.
    """
    eth, l3 = parse_ethernet(data)
    if eth.ethertype == ETHERTYPE_ARP:
        parse_arp(l3)
        return "arp"
    if eth.ethertype == ETHERTYPE_IPV4:
        ip4, l4 = parse_ipv4(l3)
        if ip4.is_fragment:
            return "fragment"
        protocol = ip4.protocol
        pseudo = pseudo_header_v4(ip4.src, ip4.dst, protocol, len(l4))
        if protocol == PROTO_ICMP:
            parse_icmpv4(l4)
            return "icmp"
    elif eth.ethertype == ETHERTYPE_IPV6:
        ip6, l4 = parse_ipv6(l3)
        if ip6.fragment is not None:
            return "fragment"
        protocol = ip6.next_header
        pseudo = pseudo_header_v6(ip6.src, ip6.dst, protocol, len(l4))
        if protocol == NEXT_HEADER_ICMPV6:
            parse_icmpv6(l4, pseudo)
            return "icmp"
    else:
        return "other"
    if protocol == PROTO_TCP:
        parse_tcp(l4, pseudo)
        return "tcp"
    if protocol == PROTO_UDP:
        parse_udp(l4, pseudo, zero_checksum_ok=eth.ethertype == ETHERTYPE_IPV4)
        return "udp"
    return "other"
