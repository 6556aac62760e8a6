"""The stack as the guest's gateway: ARP, NDP, pings, UDP and what it drops."""

from __future__ import annotations

import pytest

from tests.stack.guest import (
    ALL_NODES,
    GATEWAY_MAC,
    GUEST4,
    GUEST6,
    GUEST6_LL,
    GUEST_MAC,
    GW4,
    GW6,
    GW6_LL,
    OTHER_MAC,
    REMOTE4,
    REMOTE6,
    UNSPECIFIED6,
    arp_request,
    ipv4_fragment,
    ipv6_packet,
    make_stack,
    multicast_mac,
    only,
    solicited_node,
    take_parsed,
    v4,
    v6,
)
from trionet.stack.flows import EchoRequested, FlowKey, UdpReceived
from trionet.wire.arp import ArpOperation
from trionet.wire.ethernet import ETHERTYPE_ARP
from trionet.wire.icmpv4 import (
    Icmpv4DestUnreachable,
    Icmpv4Echo,
    Icmpv4TimeExceeded,
)
from trionet.wire.icmpv6 import (
    Icmpv6DestUnreachable,
    Icmpv6Echo,
    Icmpv6TimeExceeded,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterSolicitation,
)
from trionet.wire.ipv4 import PROTO_UDP, Ipv4Header, parse_ipv4
from trionet.wire.ipv6 import Ipv6Fragment, Ipv6Header, parse_ipv6
from trionet.wire.tcp import TcpFlags, TcpHeader
from trionet.wire.udp import UdpHeader, parse_udp

NOW = 100.0

# -- ARP ------------------------------------------------------------------------------


def test_arp_request_for_the_gateway_is_answered() -> None:
    stack = make_stack()
    stack.receive_frame(arp_request(GW4), NOW)
    reply = only(stack)
    assert (reply.dst_mac, reply.src_mac, reply.ethertype) == (
        GUEST_MAC,
        GATEWAY_MAC,
        ETHERTYPE_ARP,
    )
    assert reply.arp is not None
    assert reply.arp.operation == ArpOperation.REPLY
    assert (reply.arp.sender_mac, reply.arp.sender_ip) == (GATEWAY_MAC, GW4)
    assert (reply.arp.target_mac, reply.arp.target_ip) == (GUEST_MAC, GUEST4)
    assert not stack.take_events()


@pytest.mark.parametrize("target", [REMOTE4, GUEST4, bytes([172, 16, 0, 3])])
def test_arp_request_for_another_address_is_not_answered(target: bytes) -> None:
    stack = make_stack()
    stack.receive_frame(arp_request(target), NOW)
    assert not stack.take_frames()
    assert stack.drops["arp_not_for_gateway"] == 1


def test_arp_without_ipv4_is_not_answered() -> None:
    stack = make_stack(gateway_ipv4=None, guest_ipv4=None)
    stack.receive_frame(arp_request(GW4), NOW)
    assert not stack.take_frames()


def test_unicast_arp_request_to_the_gateway_mac_is_answered() -> None:
    # Linux re-validates a neighbour with unicast requests (NUD probes).
    stack = make_stack()
    stack.receive_frame(arp_request(GW4, dst_mac=GATEWAY_MAC), NOW)
    assert only(stack).arp is not None


# -- NDP ------------------------------------------------------------------------------


def _ns(target: bytes, *, src: bytes = GUEST6_LL, lladdr: bytes | None = GUEST_MAC) -> bytes:
    dst = solicited_node(target)
    return v6(
        NeighborSolicitation(target, lladdr),
        src=src,
        dst=dst,
        dst_mac=multicast_mac(dst),
        hop_limit=255,
    )


@pytest.mark.parametrize("target", [GW6, GW6_LL])
@pytest.mark.parametrize("src", [GUEST6_LL, GUEST6])
def test_neighbour_solicitation_for_the_gateway_is_answered(target: bytes, src: bytes) -> None:
    stack = make_stack()
    stack.receive_frame(_ns(target, src=src), NOW)
    na = only(stack)
    assert (na.dst_mac, na.src_mac) == (GUEST_MAC, GATEWAY_MAC)
    assert isinstance(na.ip, Ipv6Header)
    assert (na.ip.src, na.ip.dst, na.ip.hop_limit) == (target, src, 255)
    assert na.icmp6 == NeighborAdvertisement(
        target, router=True, solicited=True, override=True, target_lladdr=GATEWAY_MAC
    )


def test_unicast_neighbour_solicitation_without_lladdr_is_answered_to_the_guest() -> None:
    # A NUD probe: unicast to the gateway, no source link-layer option.
    stack = make_stack()
    frame = v6(NeighborSolicitation(GW6_LL), src=GUEST6_LL, dst=GW6_LL, hop_limit=255)
    stack.receive_frame(frame, NOW)
    na = only(stack)
    assert na.dst_mac == GUEST_MAC
    assert isinstance(na.icmp6, NeighborAdvertisement) and na.icmp6.solicited


def test_duplicate_address_detection_is_answered_to_all_nodes() -> None:
    stack = make_stack()
    stack.receive_frame(_ns(GW6, src=UNSPECIFIED6, lladdr=None), NOW)
    na = only(stack)
    assert na.dst_mac == multicast_mac(ALL_NODES)
    assert isinstance(na.ip, Ipv6Header)
    assert (na.ip.src, na.ip.dst, na.ip.hop_limit) == (GW6, ALL_NODES, 255)
    # RFC 4861 7.2.4: an advertisement to all nodes is not solicited.
    assert na.icmp6 == NeighborAdvertisement(
        GW6, router=True, solicited=False, override=True, target_lladdr=GATEWAY_MAC
    )


@pytest.mark.parametrize("target", [GUEST6, REMOTE6, solicited_node(GW6)])
def test_neighbour_solicitation_for_another_address_is_ignored(target: bytes) -> None:
    stack = make_stack()
    stack.receive_frame(_ns(target), NOW)
    assert not stack.take_frames()
    assert stack.drops["ndp_ignored"] == 1


def test_neighbour_solicitation_that_was_routed_is_ignored() -> None:
    # RFC 4861 7.1.1: a hop limit below 255 means it came from off-link.
    stack = make_stack()
    dst = solicited_node(GW6)
    frame = v6(NeighborSolicitation(GW6, GUEST_MAC), src=GUEST6_LL, dst=dst, hop_limit=254)
    stack.receive_frame(frame, NOW)
    assert not stack.take_frames()
    assert stack.drops["ndp_ignored"] == 1


def test_router_solicitation_is_counted_not_answered() -> None:
    stack = make_stack()
    frame = v6(
        RouterSolicitation(GUEST_MAC),
        src=GUEST6_LL,
        dst=bytes.fromhex("ff02" + "0" * 26 + "02"),
        hop_limit=255,
    )
    stack.receive_frame(frame, NOW)
    assert not stack.take_frames()
    assert stack.drops["icmp_ignored"] == 1


# -- ping -----------------------------------------------------------------------------


def test_ping_to_the_gateway_v4_is_answered() -> None:
    stack = make_stack()
    stack.receive_frame(v4(Icmpv4Echo(True, 0x1234, 7), b"abcdefgh" * 7, dst=GW4), NOW)
    reply = only(stack)
    assert (reply.dst_mac, reply.src_mac) == (GUEST_MAC, GATEWAY_MAC)
    assert isinstance(reply.ip, Ipv4Header)
    assert (reply.ip.src, reply.ip.dst) == (GW4, GUEST4)
    assert reply.icmp4 == Icmpv4Echo(False, 0x1234, 7)
    assert reply.payload == b"abcdefgh" * 7
    assert not stack.take_events()


@pytest.mark.parametrize(("src", "dst"), [(GUEST6, GW6), (GUEST6_LL, GW6_LL), (GUEST6, GW6_LL)])
def test_ping_to_the_gateway_v6_is_answered(src: bytes, dst: bytes) -> None:
    stack = make_stack()
    stack.receive_frame(
        v6(Icmpv6Echo(True, 0xBEEF, 65535), b"\x00\xff" * 30, src=src, dst=dst), NOW
    )
    reply = only(stack)
    assert isinstance(reply.ip, Ipv6Header)
    assert (reply.ip.src, reply.ip.dst) == (dst, src)
    assert reply.icmp6 == Icmpv6Echo(False, 0xBEEF, 65535)
    assert reply.payload == b"\x00\xff" * 30


def test_ping_elsewhere_becomes_an_event_and_its_reply_comes_from_the_remote() -> None:
    stack = make_stack()
    stack.receive_frame(v4(Icmpv4Echo(True, 5, 6), b"data", ttl=33), NOW)
    stack.receive_frame(v6(Icmpv6Echo(True, 7, 8), b"more", hop_limit=44), NOW)
    assert not stack.take_frames()
    request4, request6 = stack.take_events()
    assert request4 == EchoRequested(4, GUEST4, REMOTE4, 5, 6, b"data", 33)
    assert request6 == EchoRequested(6, GUEST6, REMOTE6, 7, 8, b"more", 44)
    assert isinstance(request4, EchoRequested) and isinstance(request6, EchoRequested)
    stack.echo_reply(request4, b"data", NOW)
    stack.echo_reply(request6, b"more", NOW)
    reply4, reply6 = take_parsed(stack)
    assert isinstance(reply4.ip, Ipv4Header) and isinstance(reply6.ip, Ipv6Header)
    assert (reply4.ip.src, reply4.ip.dst) == (REMOTE4, GUEST4)
    assert reply4.icmp4 == Icmpv4Echo(False, 5, 6) and reply4.payload == b"data"
    assert (reply6.ip.src, reply6.ip.dst) == (REMOTE6, GUEST6)
    assert reply6.icmp6 == Icmpv6Echo(False, 7, 8) and reply6.payload == b"more"


def test_echo_replies_and_errors_from_the_guest_are_ignored() -> None:
    stack = make_stack()
    stack.receive_frame(v4(Icmpv4Echo(False, 1, 1), dst=GW4), NOW)
    stack.receive_frame(v6(Icmpv6Echo(False, 1, 1), dst=GW6), NOW)
    stack.receive_frame(v4(Icmpv4DestUnreachable(3), bytes(28)), NOW)
    assert not stack.take_frames() and not stack.take_events()
    assert stack.drops["icmp_ignored"] == 3


# -- UDP ------------------------------------------------------------------------------


def test_udp_from_the_guest_becomes_an_event() -> None:
    stack = make_stack()
    stack.receive_frame(v4(UdpHeader(4000, 53), b"query"), NOW)
    stack.receive_frame(v6(UdpHeader(4001, 5353), b"query6", dst=GW6), NOW)
    assert stack.take_events() == [
        UdpReceived(FlowKey(4, GUEST4, 4000, REMOTE4, 53), b"query"),
        UdpReceived(FlowKey(6, GUEST6, 4001, GW6, 5353), b"query6"),
    ]
    assert not stack.take_frames()


@pytest.mark.parametrize("version", [4, 6])
def test_udp_send_small_datagram_is_one_frame(version: int) -> None:
    stack = make_stack()
    key = (
        FlowKey(4, GUEST4, 4000, REMOTE4, 53)
        if version == 4
        else FlowKey(6, GUEST6, 4000, REMOTE6, 53)
    )
    stack.udp_send(key, b"answer", NOW)
    frame = only(stack)
    assert frame.ip is not None
    assert (frame.ip.src, frame.ip.dst) == (key.remote_addr, key.guest_addr)
    assert frame.udp == UdpHeader(53, 4000) and frame.payload == b"answer"
    assert (frame.dst_mac, frame.src_mac) == (GUEST_MAC, GATEWAY_MAC)


@pytest.mark.parametrize("size", [1472, 1473, 3000, 1480 * 3 - 8, 30000, 65507])
def test_udp_send_v4_fragments_reassemble_to_the_datagram(size: int) -> None:
    stack = make_stack()
    key = FlowKey(4, GUEST4, 4000, REMOTE4, 53)
    payload = bytes(i % 251 for i in range(size))
    stack.udp_send(key, payload, NOW)
    frames = stack.take_frames()
    assert all(len(f) <= 1500 + 14 for f in frames)
    pieces: dict[int, bytes] = {}
    idents = set()
    last = None
    for raw in frames:
        assert isinstance(raw, bytes)
        assert raw[:6] == GUEST_MAC and raw[6:12] == GATEWAY_MAC
        ip, data = parse_ipv4(raw[14:])
        assert (ip.src, ip.dst, ip.protocol) == (REMOTE4, GUEST4, PROTO_UDP)
        idents.add(ip.ident)
        pieces[ip.frag_offset] = bytes(data)
        if ip.more_fragments:
            assert len(data) % 8 == 0
        else:
            last = ip.frag_offset
    assert len(idents) == 1
    assert (len(frames) == 1) == (size <= 1472)
    assert last == max(pieces)
    whole = b""
    for offset in sorted(pieces):
        assert offset == len(whole)
        whole += pieces[offset]
    udp, data = parse_udp(whole, None)
    assert udp == UdpHeader(53, 4000) and bytes(data) == payload
    # The checksum covers the whole datagram: verify it against the pseudo-header.
    from trionet.wire.checksum import pseudo_header_v4

    parse_udp(whole, pseudo_header_v4(REMOTE4, GUEST4, PROTO_UDP, len(whole)))


@pytest.mark.parametrize("size", [1452, 1453, 3000, 30000, 65527])
def test_udp_send_v6_fragments_reassemble_to_the_datagram(size: int) -> None:
    from trionet.wire.checksum import pseudo_header_v6

    stack = make_stack()
    key = FlowKey(6, GUEST6, 4000, REMOTE6, 53)
    payload = bytes(i % 253 for i in range(size))
    stack.udp_send(key, payload, NOW)
    frames = stack.take_frames()
    assert all(len(f) <= 1500 + 14 for f in frames)
    pieces: dict[int, bytes] = {}
    idents = set()
    for raw in frames:
        assert isinstance(raw, bytes)
        ip, data = parse_ipv6(raw[14:])
        assert (ip.src, ip.dst, ip.next_header) == (REMOTE6, GUEST6, PROTO_UDP)
        if len(frames) == 1:
            assert ip.fragment is None
            pieces[0] = bytes(data)
            continue
        assert ip.fragment is not None
        idents.add(ip.fragment.ident)
        if ip.fragment.more:
            assert len(data) % 8 == 0
        pieces[ip.fragment.offset] = bytes(data)
    assert len(idents) <= 1
    assert (len(frames) == 1) == (size <= 1452)
    whole = b"".join(pieces[o] for o in sorted(pieces))
    assert sum(len(p) for p in pieces.values()) == len(whole) == size + 8
    parse_udp(
        whole, pseudo_header_v6(REMOTE6, GUEST6, PROTO_UDP, len(whole)), zero_checksum_ok=False
    )
    udp, data = parse_udp(whole, None)
    assert udp == UdpHeader(53, 4000) and bytes(data) == payload


def test_udp_send_fragments_reassemble_in_scapy() -> None:
    # scapy is in the test extras: missing, it is a broken set-up (an error), not a skip.
    import scapy.all as scapy_all

    stack = make_stack()
    payload = bytes(range(256)) * 20
    stack.udp_send(FlowKey(4, GUEST4, 4000, REMOTE4, 53), payload, NOW)
    packets = [scapy_all.Ether(bytes(f)) for f in stack.take_frames()]
    whole = scapy_all.defragment(packets)
    datagrams = [p for p in whole if p.haslayer(scapy_all.UDP)]
    assert len(datagrams) == 1
    rebuilt = scapy_all.Ether(bytes(datagrams[0]))
    assert bytes(rebuilt[scapy_all.UDP].payload) == payload
    assert rebuilt[scapy_all.UDP].dport == 4000


@pytest.mark.parametrize("port", [True, False])
def test_udp_unreachable_v4_quotes_the_datagram(port: bool) -> None:
    stack = make_stack()
    key = FlowKey(4, GUEST4, 4000, REMOTE4, 53)
    stack.udp_unreachable(key, b"query", NOW, port=port)
    error = only(stack)
    assert isinstance(error.ip, Ipv4Header)
    # Port unreachable comes from the host that has no such port; host
    # unreachable from the router that gave up on it (RFC 1812 4.3.2.4).
    assert (error.ip.src, error.ip.dst) == (REMOTE4 if port else GW4, GUEST4)
    assert error.icmp4 == Icmpv4DestUnreachable(3 if port else 1)
    quoted, body = parse_ipv4(error.payload, truncated_ok=True)
    assert (quoted.src, quoted.dst, quoted.protocol) == (GUEST4, REMOTE4, PROTO_UDP)
    udp, data = parse_udp(body, None)
    assert udp == UdpHeader(4000, 53) and bytes(data) == b"query"


@pytest.mark.parametrize("port", [True, False])
def test_udp_unreachable_v6_quotes_the_datagram(port: bool) -> None:
    stack = make_stack()
    key = FlowKey(6, GUEST6, 4000, REMOTE6, 53)
    stack.udp_unreachable(key, b"query", NOW, port=port)
    error = only(stack)
    assert isinstance(error.ip, Ipv6Header)
    assert (error.ip.src, error.ip.dst) == (REMOTE6 if port else GW6, GUEST6)
    assert error.icmp6 == Icmpv6DestUnreachable(4 if port else 3)
    quoted, body = parse_ipv6(error.payload, truncated_ok=True)
    assert (quoted.src, quoted.dst, quoted.next_header) == (GUEST6, REMOTE6, PROTO_UDP)
    udp, data = parse_udp(body, None)
    assert udp == UdpHeader(4000, 53) and bytes(data) == b"query"


# -- what is dropped ------------------------------------------------------------------

_SYN = TcpHeader(40000, 80, 1000, 0, TcpFlags.SYN, 64240)


def _tcp_syn_v4(**kw: object) -> bytes:
    return v4(_SYN, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (v4(_SYN, dst_mac=OTHER_MAC), "not_for_gateway"),
        (v6(_SYN, dst_mac=OTHER_MAC), "not_for_gateway"),
        (v4(_SYN, src=REMOTE4), "bad_source"),
        (v4(_SYN, src=GW4), "bad_source"),
        (v6(_SYN, src=REMOTE6), "bad_source"),
        (v6(_SYN, src=GW6), "bad_source"),
        (v4(_SYN, dst=bytes([224, 0, 0, 1])), "unsupported_destination"),
        (v4(_SYN, dst=b"\xff\xff\xff\xff"), "unsupported_destination"),
        (v4(_SYN, dst=bytes(4)), "unsupported_destination"),
        (v6(_SYN, dst=ALL_NODES), "unsupported_destination"),
        (v6(_SYN, dst=UNSPECIFIED6), "unsupported_destination"),
        (v4(UdpHeader(1, 2), b"x", dst=bytes([239, 1, 2, 3])), "unsupported_destination"),
        (v6(Icmpv6Echo(True, 1, 1), dst=ALL_NODES), "unsupported_destination"),
        (v6(Icmpv6Echo(True, 1, 1), src=REMOTE6, dst=GW6), "bad_source"),
        (b"\x00" * 10, "malformed"),
        (GATEWAY_MAC + GUEST_MAC + b"\x88\xcc" + bytes(40), "unsupported_ethertype"),
        (GATEWAY_MAC + GUEST_MAC + b"\x81\x00\x00\x05\x08\x00" + bytes(40), "unsupported_vlan"),
    ],
)
def test_dropped_and_counted(frame: bytes, reason: str) -> None:
    stack = make_stack()
    stack.receive_frame(frame, NOW)
    assert not stack.take_frames()
    assert not stack.take_events()
    assert stack.drops == {reason: 1}


def _corrupt(frame: bytes, offset: int) -> bytes:
    data = bytearray(frame)
    data[offset] ^= 0x40
    return bytes(data)


@pytest.mark.parametrize(
    "frame",
    [
        _corrupt(v4(_SYN), 14 + 10),  # IPv4 header checksum
        _corrupt(v4(_SYN), 14 + 20 + 16),  # TCP checksum
        _corrupt(v4(UdpHeader(1, 2), b"payload"), 14 + 28),  # UDP payload
        _corrupt(v6(UdpHeader(1, 2), b"payload"), 14 + 48),
        _corrupt(v6(_SYN), 14 + 40 + 4),  # TCP sequence number
        _corrupt(v4(Icmpv4Echo(True, 1, 1), b"data", dst=GW4), 14 + 28),
        _corrupt(v6(Icmpv6Echo(True, 1, 1), b"data", dst=GW6), 14 + 48),
    ],
)
def test_bad_checksums_are_dropped_as_malformed(frame: bytes) -> None:
    stack = make_stack()
    stack.receive_frame(frame, NOW)
    assert not stack.take_frames() and not stack.take_events()
    assert stack.drops == {"malformed": 1}


def test_checksum_valid_skips_transport_verification_only() -> None:
    # With virtio-net offload the guest leaves a partial checksum: the link
    # vouches for it, so the stack must accept the segment as it is.
    stack = make_stack()
    bad_udp = _corrupt(v4(UdpHeader(1, 2), b"payload"), 14 + 20 + 6)
    stack.receive_frame(bad_udp, NOW, checksum_valid=True)
    assert stack.take_events() == [UdpReceived(FlowKey(4, GUEST4, 1, REMOTE4, 2), b"payload")]
    # ... but never the IPv4 header checksum, which no offload leaves partial.
    stack.receive_frame(
        _corrupt(v4(UdpHeader(1, 2), b"payload"), 14 + 10), NOW, checksum_valid=True
    )
    assert stack.drops == {"malformed": 1}


def test_ipv4_frames_with_the_family_inactive_are_dropped() -> None:
    stack = make_stack(gateway_ipv4=None, guest_ipv4=None)
    stack.receive_frame(_tcp_syn_v4(), NOW)
    stack6 = make_stack(gateway_ipv6=None, gateway_ipv6_link_local=None, guest_ipv6=None)
    stack6.receive_frame(v6(_SYN), NOW)
    assert stack.drops == {"ipv4_inactive": 1} and stack6.drops == {"ipv6_inactive": 1}


def test_ttl_expiry_v4_answers_time_exceeded_from_the_gateway() -> None:
    stack = make_stack()
    frame = v4(UdpHeader(33434, 33435), b"trace", ttl=1)
    stack.receive_frame(frame, NOW)
    assert not stack.take_events()
    error = only(stack)
    assert isinstance(error.ip, Ipv4Header)
    assert (error.ip.src, error.ip.dst) == (GW4, GUEST4)
    assert error.icmp4 == Icmpv4TimeExceeded(0)
    assert error.payload == frame[14:]


def test_ttl_one_to_the_gateway_itself_is_delivered() -> None:
    stack = make_stack()
    stack.receive_frame(v4(Icmpv4Echo(True, 1, 1), dst=GW4, ttl=1), NOW)
    assert only(stack).icmp4 == Icmpv4Echo(False, 1, 1)


def test_hop_limit_expiry_v6_answers_time_exceeded() -> None:
    stack = make_stack()
    frame = v6(UdpHeader(33434, 33435), b"trace", hop_limit=1)
    stack.receive_frame(frame, NOW)
    assert not stack.take_events()
    error = only(stack)
    assert isinstance(error.ip, Ipv6Header)
    assert (error.ip.src, error.ip.dst) == (GW6, GUEST6)
    assert error.icmp6 == Icmpv6TimeExceeded(0)
    assert error.payload == frame[14:]


_LOOPBACK4 = bytes([127, 0, 0, 1])
_LOOPBACK6 = bytes(15) + b"\x01"
_MAPPED_LOOPBACK6 = bytes(10) + b"\xff\xff" + _LOOPBACK4


@pytest.mark.parametrize(
    "frame",
    [
        v4(_SYN, dst=_LOOPBACK4),
        v4(_SYN, dst=bytes([127, 1, 2, 3])),
        v4(UdpHeader(1, 53), b"q", dst=_LOOPBACK4),
        v4(Icmpv4Echo(True, 1, 1), dst=_LOOPBACK4),
        v4(_SYN, dst=bytes([0, 1, 2, 3])),
        v6(_SYN, dst=_LOOPBACK6),
        v6(UdpHeader(1, 53), b"q", dst=_LOOPBACK6),
        v6(Icmpv6Echo(True, 1, 1), dst=_LOOPBACK6),
        v6(_SYN, dst=_MAPPED_LOOPBACK6),
        v6(UdpHeader(1, 53), b"q", dst=_MAPPED_LOOPBACK6),
        v6(_SYN, dst=bytes.fromhex("fe800000000000000000000000000099")),
    ],
    ids=[
        "tcp-127.0.0.1",
        "tcp-127.1.2.3",
        "udp-127.0.0.1",
        "ping-127.0.0.1",
        "tcp-0.1.2.3",
        "tcp-::1",
        "udp-::1",
        "ping-::1",
        "tcp-::ffff:127.0.0.1",
        "udp-::ffff:127.0.0.1",
        "tcp-fe80::99",
    ],
)
def test_martian_destinations_are_not_relayed(frame: bytes) -> None:
    # RFC 1812 5.3.7 / RFC 4291 2.5.3, 2.5.6: a router never forwards to
    # loopback, "this network" or another link's link-local address. Relaying
    # them would dial the host's own loopback while the flow's description
    # says it is not for the host, slipping past a policy on host access;
    # an IPv4-mapped IPv6 destination would reach IPv4 through an AF_INET6 socket.
    stack = make_stack()
    stack.receive_frame(frame, NOW)
    assert not stack.take_events() and not stack.take_frames()
    assert stack.drops == {"martian_destination": 1}


@pytest.mark.parametrize(
    "dst_mac", [b"\xff" * 6, bytes.fromhex("01005e000001")], ids=["broadcast", "multicast"]
)
def test_ipv4_unicast_in_a_link_broadcast_is_dropped(dst_mac: bytes) -> None:
    # A guest sends its subnet's broadcast address (172.16.0.3 in a /30) to
    # ff:ff:ff:ff:ff:ff. The stack does not know the prefix, so it took the
    # address for a remote one and relayed it to the host's network. RFC
    # 1122 3.3.6: a datagram in a link-layer broadcast whose IP destination
    # is not a broadcast or multicast address is silently discarded.
    stack = make_stack()
    subnet_broadcast = bytes([172, 16, 0, 3])
    stack.receive_frame(v4(UdpHeader(1, 9), b"x", dst=subnet_broadcast, dst_mac=dst_mac), NOW)
    stack.receive_frame(v4(_SYN, dst=REMOTE4, dst_mac=dst_mac), NOW)
    assert not stack.take_events() and not stack.take_frames()
    assert stack.drops == {"link_broadcast": 2}


def test_ttl_expiry_is_counted() -> None:
    stack = make_stack()
    stack.receive_frame(v4(UdpHeader(1, 2), b"x", ttl=1), NOW)
    stack.receive_frame(v6(UdpHeader(1, 2), b"x", hop_limit=1), NOW)
    stack.receive_frame(v4(_SYN, ttl=0), NOW)
    assert len(stack.take_frames()) == 3
    assert stack.drops == {"ttl_expired": 3}


def test_no_time_exceeded_about_an_icmp_error_or_a_later_fragment() -> None:
    # RFC 1122 3.2.2 / RFC 1812 4.3.2.7: never an ICMP error about an ICMP
    # error (two gateways could ping-pong errors) or about a non-initial
    # fragment (its quote would hold no transport header).
    stack = make_stack()
    quoted = bytes(28)
    stack.receive_frame(v4(Icmpv4DestUnreachable(3), quoted, ttl=1), NOW)
    stack.receive_frame(v4(Icmpv4TimeExceeded(0), quoted, ttl=1), NOW)
    later = Ipv4Header(GUEST4, REMOTE4, PROTO_UDP, 16, 1, 9, False, False, 1480)
    stack.receive_frame(ipv4_fragment(later, bytes(16)), NOW)
    assert not stack.take_frames() and not stack.take_events()
    assert stack.drops == {"ttl_expired": 3}
    # An echo request is not an error: traceroute -I gets its answer.
    stack.receive_frame(v4(Icmpv4Echo(True, 1, 1), ttl=1), NOW)
    assert only(stack).icmp4 == Icmpv4TimeExceeded(0)


def test_hop_limit_expiry_of_an_icmpv6_echo_answers_time_exceeded() -> None:
    # traceroute6 -I: the ICMPv6 path bypassed the hop-limit check, so the
    # probe was relayed to the destination instead of expiring here.
    stack = make_stack()
    frame = v6(Icmpv6Echo(True, 3, 4), b"probe", hop_limit=1)
    stack.receive_frame(frame, NOW)
    assert not stack.take_events()
    error = only(stack)
    assert isinstance(error.ip, Ipv6Header)
    assert (error.ip.src, error.ip.dst) == (GW6, GUEST6)
    assert error.icmp6 == Icmpv6TimeExceeded(0)
    assert error.payload == frame[14:]
    # To the gateway itself it is answered as usual.
    stack.receive_frame(v6(Icmpv6Echo(True, 3, 5), hop_limit=1, dst=GW6), NOW)
    assert only(stack).icmp6 == Icmpv6Echo(False, 3, 5)


@pytest.mark.parametrize(("version", "size"), [(4, 65508), (6, 65528), (4, 100_000)])
def test_udp_send_of_an_impossible_datagram_is_dropped_not_raised(version: int, size: int) -> None:
    # UDP's 16-bit length caps a payload at 65507 bytes over IPv4 and 65527
    # over IPv6. Larger ones raised struct.error out of udp_send, which the
    # engine calls from a relay task: a crash, not a documented error.
    stack = make_stack()
    key = FlowKey(4, GUEST4, 1, REMOTE4, 2) if version == 4 else FlowKey(6, GUEST6, 1, REMOTE6, 2)
    stack.udp_send(key, bytes(size), NOW)
    assert not stack.take_frames()
    assert stack.drops == {"udp_too_big": 1}
    stack.udp_send(key, bytes(65507 if version == 4 else 65527), NOW)
    assert stack.take_frames()


@pytest.mark.parametrize("version", [4, 6])
def test_udp_unreachable_for_the_largest_guest_datagram(version: int) -> None:
    # A guest can reassemble a 65527-byte UDP payload even over IPv4 (65535
    # bytes after the IPv4 header); quoting it rebuilt an IPv4 header whose
    # total length overflowed, raising struct.error.
    stack = make_stack()
    key = FlowKey(4, GUEST4, 1, REMOTE4, 2) if version == 4 else FlowKey(6, GUEST6, 1, REMOTE6, 2)
    stack.udp_unreachable(key, bytes(65527), NOW, port=True)
    error = only(stack)
    assert error.icmp4 == Icmpv4DestUnreachable(3) or error.icmp6 == Icmpv6DestUnreachable(4)
    quoted_ip = parse_ipv4(error.payload, truncated_ok=True)[0] if version == 4 else None
    assert quoted_ip is None or quoted_ip.dst == REMOTE4


@pytest.mark.parametrize(
    "frame",
    [
        v6(_SYN, src=GUEST6_LL, dst=REMOTE6),
        v6(UdpHeader(1, 53), b"q", src=GUEST6_LL, dst=REMOTE6),
        v6(Icmpv6Echo(True, 1, 1), src=GUEST6_LL, dst=REMOTE6),
    ],
    ids=["tcp", "udp", "ping"],
)
def test_link_local_source_is_not_relayed_off_link(frame: bytes) -> None:
    # RFC 4291 2.5.6: a router must not forward a packet with a link-local
    # source to another link; relaying it is forwarding.
    stack = make_stack()
    stack.receive_frame(frame, NOW)
    assert not stack.take_events() and not stack.take_frames()
    assert stack.drops == {"bad_source": 1}


def test_link_local_source_to_the_gateway_is_served() -> None:
    stack = make_stack()
    stack.receive_frame(v6(_SYN, src=GUEST6_LL, dst=GW6_LL), NOW)
    stack.receive_frame(v6(UdpHeader(1, 53), b"q", src=GUEST6_LL, dst=GW6), NOW)
    assert len(stack.take_events()) == 2
    assert not stack.drops


def test_frames_in_writable_buffers_are_handled_like_bytes() -> None:
    # A VMM link may hand over views into a writable ring buffer; nothing on
    # the receive path may hash or keep such a view.
    stack = make_stack()
    frames = [
        v4(Icmpv4DestUnreachable(3), bytes(28), ttl=1),
        v4(Icmpv4Echo(True, 1, 1), b"x", ttl=1),
        v4(UdpHeader(1, 2), b"payload"),
        v6(Icmpv6Echo(True, 1, 1), dst=GW6),
        arp_request(GW4),
    ]
    for frame in frames:
        stack.receive_frame(memoryview(bytearray(frame)), NOW)
    assert len(stack.take_frames()) == 3
    assert stack.take_events() == [UdpReceived(FlowKey(4, GUEST4, 1, REMOTE4, 2), b"payload")]


def test_hop_limit_expiry_of_ipv6_fragments() -> None:
    # The first fragment's error quotes it as sent, fragment header included,
    # so the guest matches it; a later fragment's data holds no transport
    # header, and quoting it as UDP could match an unrelated socket.
    stack = make_stack()
    first = Ipv6Header(GUEST6, REMOTE6, PROTO_UDP, 16, 1, fragment=Ipv6Fragment(5, 0, True))
    later = Ipv6Header(GUEST6, REMOTE6, PROTO_UDP, 16, 1, fragment=Ipv6Fragment(5, 1448, False))
    udp_start = UdpHeader(4000, 33434).to_bytes(bytes(8), 0)[:8] + bytes(8)
    stack.receive_frame(ipv6_packet(first, udp_start), NOW)
    stack.receive_frame(ipv6_packet(later, bytes(16)), NOW)
    error = only(stack)
    assert error.icmp6 == Icmpv6TimeExceeded(0)
    assert error.payload == first.to_bytes() + udp_start
    quoted, body = parse_ipv6(error.payload, truncated_ok=True)
    assert quoted.fragment == Ipv6Fragment(5, 0, True)
    assert bytes(body[:4]) == udp_start[:4]
    assert stack.drops == {"ttl_expired": 2}
    assert len(stack._reassembly) == 0


@pytest.mark.parametrize(
    "frame",
    [
        v6(_SYN, dst=bytes(16)),
        v6(UdpHeader(1, 53), b"q", dst=bytes(16)),
        v6(Icmpv6Echo(True, 1, 1), dst=bytes(16)),
        v4(Icmpv4Echo(True, 1, 1), dst=bytes(4)),
    ],
    ids=["tcp-::", "udp-::", "ping-::", "ping-0.0.0.0"],
)
def test_the_unspecified_destination_is_not_relayed(frame: bytes) -> None:
    # Linux takes a send to "::" or 0.0.0.0 as one to its own loopback: a
    # ping relayed there would answer from the host whatever the flow was
    # described as. Pings used to slip through on IPv6.
    stack = make_stack()
    stack.receive_frame(frame, NOW)
    assert not stack.take_events() and not stack.take_frames()
    assert sum(stack.drops.values()) == 1
    assert set(stack.drops) <= {"unsupported_destination", "martian_destination"}
