"""Differential, trionet -> scapy: what trionet emits decodes in scapy to the same fields,
with checksums scapy recomputes to the same values."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers import inet, inet6, l2

from tests.wire import strategies as s
from tests.wire.scapy_util import assert_checksum_valid, ip4, ip6, mac
from trionet.wire.arp import ArpPacket
from trionet.wire.ethernet import EthernetHeader
from trionet.wire.frames import build_arp_frame, build_ipv4_frame, build_ipv6_frame
from trionet.wire.icmpv4 import (
    Icmpv4DestUnreachable,
    Icmpv4Echo,
    Icmpv4Message,
    Icmpv4TimeExceeded,
)
from trionet.wire.icmpv6 import (
    Icmpv6DestUnreachable,
    Icmpv6Echo,
    Icmpv6Message,
    Icmpv6PacketTooBig,
    Icmpv6ParamProblem,
    Icmpv6TimeExceeded,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterAdvertisement,
    RouterSolicitation,
)
from trionet.wire.ipv6 import Ipv6Header
from trionet.wire.tcp import TcpHeader, TcpOptions
from trionet.wire.udp import UdpHeader

DIFF = settings(max_examples=40, deadline=None)


@DIFF
# Below 0x0600 the field is an 802.3 length and scapy decodes another layer.
@given(
    s.ethernet_headers.filter(lambda h: h.vlan_tci is not None or h.ethertype >= 0x0600),
    st.binary(min_size=1, max_size=40),
)
def test_ethernet(header: EthernetHeader, payload: bytes) -> None:
    packet = l2.Ether(header.to_bytes() + payload)
    assert (packet.dst, packet.src) == (mac(header.dst), mac(header.src))
    if header.vlan_tci is None:
        assert packet.type == header.ethertype
    else:
        tag = packet.payload
        assert packet.type == header.vlan_tpid
        assert (tag.prio << 13) | (tag.dei << 12) | tag.vlan == header.vlan_tci
        assert tag.type == header.ethertype


@DIFF
@given(s.macs, s.macs, s.arp_packets)
def test_arp(src: bytes, dst: bytes, arp: ArpPacket) -> None:
    packet = l2.Ether(bytes(build_arp_frame(src, dst, arp)))
    got = packet[l2.ARP]
    assert (packet.src, packet.dst, packet.type) == (mac(src), mac(dst), 0x0806)
    assert (got.hwtype, got.ptype, got.op) == (1, 0x800, arp.operation)
    assert (got.hwsrc, got.psrc) == (mac(arp.sender_mac), ip4(arp.sender_ip))
    assert (got.hwdst, got.pdst) == (mac(arp.target_mac), ip4(arp.target_ip))


def _scapy_tcp_options(options: list[tuple[Any, Any]]) -> TcpOptions:
    found = dict(options)
    sack = found.get("SAck", ())
    return TcpOptions(
        mss=found.get("MSS"),
        window_scale=found.get("WScale"),
        sack_permitted="SAckOK" in found,
        sack_blocks=tuple(zip(sack[0::2], sack[1::2], strict=True)),
        timestamp=found.get("Timestamp"),
    )


def _check_tcp(frame: bytes, tcp: TcpHeader, payload: bytes) -> None:
    packet = l2.Ether(frame + payload)
    got = packet[inet.TCP]
    assert (got.sport, got.dport, got.seq, got.ack) == (
        tcp.src_port,
        tcp.dst_port,
        tcp.seq,
        tcp.ack,
    )
    assert (int(got.flags), got.window, got.urgptr) == (int(tcp.flags), tcp.window, tcp.urgent)
    assert got.dataofs * 4 == tcp.header_len
    assert _scapy_tcp_options(got.options) == tcp.options
    assert bytes(got.payload) == payload
    assert_checksum_valid(frame + payload, inet.TCP)


@DIFF
@given(
    smac=s.macs,
    dmac=s.macs,
    src=s.ipv4_addrs,
    dst=s.ipv4_addrs,
    tcp=s.tcp_headers,
    payload=s.payloads,
    ttl=s.u8,
    ident=s.u16,
)
def test_ipv4_tcp_frame(
    *,
    smac: bytes,
    dmac: bytes,
    src: bytes,
    dst: bytes,
    tcp: TcpHeader,
    payload: bytes,
    ttl: int,
    ident: int,
) -> None:
    frame = bytes(
        build_ipv4_frame(smac, dmac, src, dst, tcp, payload=payload, ttl=ttl, ident=ident)
    )
    ip = l2.Ether(frame + payload)[inet.IP]
    assert (ip.src, ip.dst, ip.proto, ip.ttl, ip.id) == (ip4(src), ip4(dst), 6, ttl, ident)
    assert ip.len == 20 + tcp.header_len + len(payload)
    assert ip.flags == "DF"
    assert_checksum_valid(frame + payload, inet.IP)
    _check_tcp(frame, tcp, payload)


@DIFF
@given(
    src=s.ipv6_addrs,
    dst=s.ipv6_addrs,
    tcp=s.tcp_headers,
    payload=s.payloads,
    hlim=s.u8,
    flow=st.integers(0, 0xFFFFF),
)
def test_ipv6_tcp_frame(
    *, src: bytes, dst: bytes, tcp: TcpHeader, payload: bytes, hlim: int, flow: int
) -> None:
    frame = bytes(
        build_ipv6_frame(
            bytes(6), bytes(6), src, dst, tcp, payload=payload, hop_limit=hlim, flow_label=flow
        )
    )
    ip = l2.Ether(frame + payload)[inet6.IPv6]
    assert (ip.src, ip.dst, ip.nh, ip.hlim, ip.fl) == (ip6(src), ip6(dst), 6, hlim, flow)
    assert ip.plen == tcp.header_len + len(payload)
    _check_tcp(frame, tcp, payload)


@DIFF
@given(
    v4=s.ipv4_addrs,
    src=s.ipv6_addrs,
    dst=s.ipv6_addrs,
    udp=s.udp_headers,
    payload=s.payloads,
    use_v6=st.booleans(),
)
def test_udp_frames(
    *, v4: bytes, src: bytes, dst: bytes, udp: UdpHeader, payload: bytes, use_v6: bool
) -> None:
    if use_v6:
        frame = bytes(build_ipv6_frame(bytes(6), bytes(6), src, dst, udp, payload=payload))
    else:
        frame = bytes(build_ipv4_frame(bytes(6), bytes(6), v4, v4, udp, payload=payload))
    got = l2.Ether(frame + payload)[inet.UDP]
    assert (got.sport, got.dport, got.len) == (udp.src_port, udp.dst_port, 8 + len(payload))
    assert bytes(got.payload) == payload
    assert got.chksum != 0
    assert_checksum_valid(frame + payload, inet.UDP)


@DIFF
@given(s.ipv4_addrs, s.ipv4_addrs, s.icmpv4_messages, s.payloads)
def test_icmpv4_frames(src: bytes, dst: bytes, message: Icmpv4Message, payload: bytes) -> None:
    frame = bytes(build_ipv4_frame(bytes(6), bytes(6), src, dst, message, payload=payload))
    ip = l2.Ether(frame + payload)[inet.IP]
    got = ip[inet.ICMP]
    assert ip.proto == 1
    if isinstance(message, Icmpv4Echo):
        assert (got.type, got.id, got.seq) == (
            8 if message.request else 0,
            message.ident,
            message.seq,
        )
    elif isinstance(message, Icmpv4DestUnreachable):
        assert (got.type, got.code, got.nexthopmtu) == (3, message.code, message.next_hop_mtu)
    elif isinstance(message, Icmpv4TimeExceeded):
        assert (got.type, got.code) == (11, message.code)
    else:
        assert (got.type, got.code) == (message.type, message.code)
    assert bytes(ip.payload)[8:] == payload
    assert_checksum_valid(frame + payload, inet.ICMP)


@DIFF
@given(s.ipv6_addrs, s.ipv6_addrs, s.icmpv6_non_ndp | s.ndp_messages, s.payloads)
def test_icmpv6_frames(src: bytes, dst: bytes, message: Icmpv6Message, payload: bytes) -> None:
    is_ndp = isinstance(
        message,
        RouterSolicitation | RouterAdvertisement | NeighborSolicitation | NeighborAdvertisement,
    )
    if is_ndp:
        payload = b""
    frame = bytes(
        build_ipv6_frame(bytes(6), bytes(6), src, dst, message, payload=payload, hop_limit=255)
    )
    packet = l2.Ether(frame + payload)
    ip = packet[inet6.IPv6]
    assert ip.nh == 58
    assert ip.plen == message.header_len + len(payload)
    got = ip.payload
    if isinstance(message, Icmpv6Echo):
        assert (got.type, got.id, got.seq) == (
            128 if message.request else 129,
            message.ident,
            message.seq,
        )
        assert got.data == payload
    elif isinstance(message, Icmpv6DestUnreachable):
        assert (got.type, got.code) == (1, message.code)
    elif isinstance(message, Icmpv6PacketTooBig):
        assert (got.type, got.mtu) == (2, message.mtu)
    elif isinstance(message, Icmpv6TimeExceeded):
        assert (got.type, got.code) == (3, message.code)
    elif isinstance(message, Icmpv6ParamProblem):
        assert (got.type, got.code, got.ptr) == (4, message.code, message.pointer)
    elif isinstance(message, RouterSolicitation):
        assert got.type == 133
        _check_lladdr(got, inet6.ICMPv6NDOptSrcLLAddr, message.source_lladdr)
    elif isinstance(message, RouterAdvertisement):
        assert (got.type, got.chlim, got.routerlifetime) == (
            134,
            message.cur_hop_limit,
            message.router_lifetime,
        )
        assert (got.M << 7) | (got.O << 6) | (got.H << 5) | (got.prf << 3) | (got.P << 2) | (
            got.res
        ) == message.flags
        assert (got.reachabletime, got.retranstimer) == (
            message.reachable_time,
            message.retrans_timer,
        )
        _check_lladdr(got, inet6.ICMPv6NDOptSrcLLAddr, message.source_lladdr)
        if message.mtu is None:
            assert inet6.ICMPv6NDOptMTU not in got
        else:
            assert got[inet6.ICMPv6NDOptMTU].mtu == message.mtu
        if message.dns_servers:
            rdnss = got[inet6.ICMPv6NDOptRDNSS]
            assert rdnss.dns == [ip6(a) for a in message.dns_servers]
            assert rdnss.lifetime == message.dns_lifetime
        else:
            assert inet6.ICMPv6NDOptRDNSS not in got
        infos = []
        layer = got
        while inet6.ICMPv6NDOptPrefixInfo in layer:
            layer = layer[inet6.ICMPv6NDOptPrefixInfo]
            infos.append(
                (
                    layer.prefix,
                    layer.prefixlen,
                    layer.L,
                    layer.A,
                    layer.validlifetime,
                    layer.preferredlifetime,
                )
            )
            layer = layer.payload
        assert infos == [
            (
                ip6(p.prefix),
                p.prefix_len,
                int(p.on_link),
                int(p.autonomous),
                p.valid_lifetime,
                p.preferred_lifetime,
            )
            for p in message.prefixes
        ]
    elif isinstance(message, NeighborSolicitation):
        assert (got.type, got.tgt) == (135, ip6(message.target))
        _check_lladdr(got, inet6.ICMPv6NDOptSrcLLAddr, message.source_lladdr)
    elif isinstance(message, NeighborAdvertisement):
        assert (got.type, got.tgt) == (136, ip6(message.target))
        assert (message.router, message.solicited, message.override) == (got.R, got.S, got.O)
        _check_lladdr(got, inet6.ICMPv6NDOptDstLLAddr, message.target_lladdr)
    else:
        # scapy leaves types it has no class for as Raw (or misreads them as
        # the node-information messages): decode them generically.
        raw = bytes(ip.payload)
        unknown = inet6.ICMPv6Unknown(raw)
        assert (unknown.type, unknown.code) == (message.type, message.code)
        zeroed = raw[:2] + b"\0\0" + raw[4:]
        assert inet6.in6_chksum(58, ip, zeroed) == unknown.cksum
        return
    assert_checksum_valid(frame + payload, type(got), "cksum")


def _check_lladdr(layer: Any, option: Any, expected: bytes | None) -> None:
    if expected is None:
        assert option not in layer
    else:
        assert layer[option].lladdr == mac(expected)


@DIFF
@given(s.ipv6_headers)
def test_ipv6_fragment_header(header: Ipv6Header) -> None:
    wire = header.to_bytes() + bytes(header.payload_len)
    packet = inet6.IPv6(wire)
    assert (packet.src, packet.dst, packet.hlim) == (
        ip6(header.src),
        ip6(header.dst),
        header.hop_limit,
    )
    assert (packet.tc, packet.fl) == (header.traffic_class, header.flow_label)
    if header.fragment is None:
        assert packet.nh == header.next_header
        assert packet.plen == header.payload_len
    else:
        frag = packet[inet6.IPv6ExtHdrFragment]
        assert (packet.nh, frag.nh) == (44, header.next_header)
        assert (frag.id, frag.offset * 8, frag.m) == (
            header.fragment.ident,
            header.fragment.offset,
            header.fragment.more,
        )
        assert packet.plen == header.payload_len + 8
