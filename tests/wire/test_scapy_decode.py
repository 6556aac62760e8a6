"""Differential, scapy -> trionet: scapy packets built from random fields parse to them."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers import inet, inet6, l2
from scapy.packet import Raw

from tests.wire import strategies as s
from tests.wire.scapy_util import ip4, ip6, mac
from trionet.wire.arp import parse_arp
from trionet.wire.checksum import pseudo_header_v4, pseudo_header_v6
from trionet.wire.ethernet import parse_ethernet
from trionet.wire.icmpv4 import (
    Icmpv4DestUnreachable,
    Icmpv4Echo,
    Icmpv4Other,
    Icmpv4TimeExceeded,
    parse_icmpv4,
)
from trionet.wire.icmpv6 import (
    Icmpv6DestUnreachable,
    Icmpv6Echo,
    Icmpv6PacketTooBig,
    Icmpv6ParamProblem,
    Icmpv6TimeExceeded,
    NdpPrefixInfo,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterAdvertisement,
    RouterSolicitation,
    parse_icmpv6,
)
from trionet.wire.ipv4 import parse_ipv4
from trionet.wire.ipv6 import Ipv6Fragment, parse_ipv6
from trionet.wire.tcp import TcpFlags, TcpOptions, parse_tcp
from trionet.wire.udp import parse_udp

DIFF = settings(max_examples=40, deadline=None)


@DIFF
@given(s.macs, s.macs, s.u16.filter(lambda t: t not in s.TAG_TYPES), s.payloads)
def test_ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> None:
    frame = bytes(l2.Ether(dst=mac(dst), src=mac(src), type=ethertype) / Raw(payload))
    header, rest = parse_ethernet(frame)
    assert (header.dst, header.src, header.ethertype, header.vlan_tci) == (
        dst,
        src,
        ethertype,
        None,
    )
    assert rest == payload


@DIFF
@given(
    dst=s.macs,
    src=s.macs,
    prio=st.integers(0, 7),
    dei=st.integers(0, 1),
    vlan=st.integers(0, 4095),
    inner=s.u16,
)
def test_vlan_tagged_ethernet(
    *, dst: bytes, src: bytes, prio: int, dei: int, vlan: int, inner: int
) -> None:
    frame = bytes(
        l2.Ether(dst=mac(dst), src=mac(src))
        / l2.Dot1Q(prio=prio, dei=dei, vlan=vlan, type=inner)
        / Raw(b"x")
    )
    header, rest = parse_ethernet(frame)
    assert header.ethertype == inner
    assert header.vlan_id == vlan
    assert header.vlan_tci == (prio << 13) | (dei << 12) | vlan
    assert rest == b"x"


@DIFF
@given(st.sampled_from((1, 2)), s.macs, s.ipv4_addrs, s.macs, s.ipv4_addrs)
def test_arp(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> None:
    frame = bytes(
        l2.Ether() / l2.ARP(op=op, hwsrc=mac(sha), psrc=ip4(spa), hwdst=mac(tha), pdst=ip4(tpa))
    )
    packet = parse_arp(parse_ethernet(frame)[1])
    assert (packet.operation, packet.sender_mac, packet.sender_ip) == (op, sha, spa)
    assert (packet.target_mac, packet.target_ip) == (tha, tpa)


@DIFF
@given(
    src=s.ipv4_addrs,
    dst=s.ipv4_addrs,
    ttl=s.u8,
    ident=s.u16,
    flags=st.integers(0, 7),
    frag=st.integers(0, 0x1FFF),
    tos=s.u8,
    proto=s.u8,
    nops=st.integers(0, 10),
    payload=s.payloads,
    padding=st.binary(max_size=20),
)
def test_ipv4_with_options_and_padding(
    *,
    src: bytes,
    dst: bytes,
    ttl: int,
    ident: int,
    flags: int,
    frag: int,
    tos: int,
    proto: int,
    nops: int,
    payload: bytes,
    padding: bytes,
) -> None:
    packet = inet.IP(
        src=ip4(src),
        dst=ip4(dst),
        ttl=ttl,
        id=ident,
        flags=flags,
        frag=frag,
        tos=tos,
        proto=proto,
        options=[inet.IPOption_NOP()] * nops,
    ) / Raw(payload)
    header, rest = parse_ipv4(bytes(packet) + padding)
    assert (header.src, header.dst, header.ttl, header.ident) == (src, dst, ttl, ident)
    assert header.dont_fragment == bool(flags & 2)
    assert header.more_fragments == bool(flags & 1)
    assert header.frag_offset == frag * 8
    assert (header.dscp_ecn, header.protocol) == (tos, proto)
    assert rest == payload


def _extension(kind: str, draw: st.DrawFn) -> Any:
    if kind == "hbh":
        return inet6.IPv6ExtHdrHopByHop(
            options=[inet6.PadN(optdata=b"\0" * draw(s.u8.map(lambda n: n % 12)))]
        )
    if kind == "routing":
        return inet6.IPv6ExtHdrRouting(addresses=[], segleft=0)
    if kind == "dest":
        return inet6.IPv6ExtHdrDestOpt(
            options=[inet6.PadN(optdata=b"\0" * draw(st.integers(0, 20)))]
        )
    return inet6.IPv6ExtHdrFragment(
        id=draw(s.u32), offset=draw(st.integers(0, 0x1FFF)), m=draw(st.integers(0, 1))
    )


@st.composite
def extension_chains(draw: st.DrawFn) -> list[str]:
    chain = ["hbh"] if draw(st.booleans()) else []
    chain += draw(st.lists(st.sampled_from(["routing", "dest"]), max_size=3))
    if draw(st.booleans()):
        chain.insert(draw(st.integers(int(chain[:1] == ["hbh"]), len(chain))), "fragment")
    return chain


@DIFF
@given(
    src=s.ipv6_addrs,
    dst=s.ipv6_addrs,
    hlim=s.u8,
    tc=s.u8,
    fl=st.integers(0, 0xFFFFF),
    chain=extension_chains(),
    sport=s.u16,
    dport=s.u16,
    payload=s.payloads,
    data=st.data(),
)
def test_ipv6_extension_chain_then_udp(
    *,
    src: bytes,
    dst: bytes,
    hlim: int,
    tc: int,
    fl: int,
    chain: list[str],
    sport: int,
    dport: int,
    payload: bytes,
    data: st.DataObject,
) -> None:
    packet = inet6.IPv6(src=ip6(src), dst=ip6(dst), hlim=hlim, tc=tc, fl=fl)
    fragment = None
    for kind in chain:
        ext = _extension(kind, data.draw)
        if kind == "fragment":
            fragment = Ipv6Fragment(ext.id, ext.offset * 8, bool(ext.m))
        packet = packet / ext
    packet = packet / inet.UDP(sport=sport, dport=dport) / Raw(payload)
    wire = bytes(packet)
    header, l4 = parse_ipv6(wire)
    assert (header.src, header.dst, header.hop_limit) == (src, dst, hlim)
    assert (header.traffic_class, header.flow_label) == (tc, fl)
    assert header.fragment == fragment
    if fragment is not None and fragment.offset:
        # Past a later fragment's header everything is data, not headers.
        frag_layer = inet6.IPv6(wire)[inet6.IPv6ExtHdrFragment]
        assert header.next_header == frag_layer.nh
        assert l4 == bytes(frag_layer.payload)
        return
    assert header.next_header == 17
    assert l4 == bytes(packet[inet.UDP])
    pseudo = pseudo_header_v6(src, dst, 17, len(l4))
    udp, body = parse_udp(l4, pseudo, zero_checksum_ok=False)
    assert (udp.src_port, udp.dst_port, body) == (sport, dport, payload)


@DIFF
@given(
    src=s.ipv4_addrs,
    dst=s.ipv4_addrs,
    sport=s.u16,
    dport=s.u16,
    payload=s.payloads,
    no_checksum=st.booleans(),
)
def test_udp_v4(
    *, src: bytes, dst: bytes, sport: int, dport: int, payload: bytes, no_checksum: bool
) -> None:
    udp = inet.UDP(sport=sport, dport=dport)
    if no_checksum:
        udp.chksum = 0
    l4 = bytes(inet.IP(src=ip4(src), dst=ip4(dst)) / udp / Raw(payload))[20:]
    header, body = parse_udp(l4, pseudo_header_v4(src, dst, 17, len(l4)))
    assert (header.src_port, header.dst_port, body) == (sport, dport, payload)


# (scapy option name, value strategy, wire length)
_TCP_OPTIONS: list[tuple[Any, Any, int]] = [
    ("MSS", s.u16, 4),
    ("WScale", s.u8, 3),
    ("SAckOK", st.just(b""), 2),
    ("Timestamp", st.tuples(s.u32, s.u32), 10),
    ("SAck", st.lists(s.u32, min_size=2, max_size=8).map(lambda v: tuple(v[: len(v) & ~1])), 0),
    ("NOP", st.none(), 1),
    (30, st.binary(max_size=6), 0),  # an unknown kind (MPTCP), skipped by length
    (254, st.binary(min_size=2, max_size=4), 0),  # experimental
]


@st.composite
def scapy_tcp_options(draw: st.DrawFn) -> list[tuple[Any, Any]]:
    """A random list of TCP options in random order that fits in 40 bytes."""
    options: list[tuple[Any, Any]] = []
    used = 0
    for _ in range(draw(st.integers(0, 8))):
        name, values, size = draw(st.sampled_from(_TCP_OPTIONS))
        value = draw(values)
        if name == "SAck":
            size = 2 + 4 * len(value)
        elif isinstance(name, int):
            size = 2 + len(value)
        if used + size > 40:
            break
        used += size
        options.append((name, value))
    if used < 40 and draw(st.booleans()):
        options.append(("EOL", None))
    return options


def _expected_options(options: list[tuple[Any, Any]]) -> TcpOptions:
    found: dict[str, Any] = {}
    for name, value in options:
        if name == "EOL":
            break
        found[name] = value
    sack = found.get("SAck", ())
    return TcpOptions(
        mss=found.get("MSS"),
        window_scale=found.get("WScale"),
        sack_permitted="SAckOK" in found,
        sack_blocks=tuple(zip(sack[0::2], sack[1::2], strict=True)),
        timestamp=found.get("Timestamp"),
    )


@settings(max_examples=80, deadline=None)
@given(
    src=s.ipv6_addrs,
    dst=s.ipv6_addrs,
    sport=s.u16,
    dport=s.u16,
    seq=s.u32,
    ack=s.u32,
    flags=s.u8,
    window=s.u16,
    urgent=s.u16,
    options=scapy_tcp_options(),
    payload=s.payloads,
)
def test_tcp_every_option(
    *,
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    urgent: int,
    options: list[tuple[Any, Any]],
    payload: bytes,
) -> None:
    tcp = inet.TCP(
        sport=sport,
        dport=dport,
        seq=seq,
        ack=ack,
        flags=flags,
        window=window,
        urgptr=urgent,
        options=options,
    )
    l4 = bytes(inet6.IPv6(src=ip6(src), dst=ip6(dst)) / tcp / Raw(payload))[40:]
    header, body = parse_tcp(l4, pseudo_header_v6(src, dst, 6, len(l4)))
    assert (header.src_port, header.dst_port, header.seq, header.ack) == (sport, dport, seq, ack)
    assert (header.flags, header.window, header.urgent) == (TcpFlags(flags), window, urgent)
    assert header.options == _expected_options(options)
    assert body == payload


@DIFF
@given(st.data(), s.payloads)
def test_icmpv4(data: st.DataObject, payload: bytes) -> None:
    kind = data.draw(st.sampled_from(["echo", "unreach", "exceeded", "other"]))
    if kind == "echo":
        request, ident, seq = data.draw(st.booleans()), data.draw(s.u16), data.draw(s.u16)
        icmp = inet.ICMP(type=8 if request else 0, id=ident, seq=seq)
        expected: object = Icmpv4Echo(request, ident, seq)
    elif kind == "unreach":
        code, mtu = data.draw(s.u8), data.draw(s.u16)
        icmp = inet.ICMP(type=3, code=code, nexthopmtu=mtu)
        expected = Icmpv4DestUnreachable(code, mtu)
    elif kind == "exceeded":
        code = data.draw(s.u8)
        icmp = inet.ICMP(type=11, code=code)
        expected = Icmpv4TimeExceeded(code)
    else:
        code = data.draw(s.u8)
        icmp = inet.ICMP(type=5, code=code, gw="10.1.2.3")  # redirect
        expected = Icmpv4Other(5, code, 0x0A010203)
    l4 = bytes(inet.IP() / icmp / Raw(payload))[20:]
    assert parse_icmpv4(l4) == (expected, payload)


@DIFF
@given(st.data(), s.ipv6_addrs, s.ipv6_addrs, s.payloads)
def test_icmpv6_messages(data: st.DataObject, src: bytes, dst: bytes, payload: bytes) -> None:
    kind = data.draw(st.sampled_from(["echo", "unreach", "ptb", "exceeded", "param"]))
    code = data.draw(s.u8)
    if kind == "echo":
        request, ident, seq = data.draw(st.booleans()), data.draw(s.u16), data.draw(s.u16)
        cls = inet6.ICMPv6EchoRequest if request else inet6.ICMPv6EchoReply
        icmp: Any = cls(id=ident, seq=seq, data=payload)
        expected: object = Icmpv6Echo(request, ident, seq)
    elif kind == "unreach":
        icmp = inet6.ICMPv6DestUnreach(code=code) / Raw(payload)
        expected = Icmpv6DestUnreachable(code)
    elif kind == "ptb":
        mtu = data.draw(s.u32)
        icmp = inet6.ICMPv6PacketTooBig(mtu=mtu) / Raw(payload)
        expected = Icmpv6PacketTooBig(mtu)
    elif kind == "exceeded":
        icmp = inet6.ICMPv6TimeExceeded(code=code) / Raw(payload)
        expected = Icmpv6TimeExceeded(code)
    else:
        pointer = data.draw(s.u32)
        icmp = inet6.ICMPv6ParamProblem(code=code, ptr=pointer) / Raw(payload)
        expected = Icmpv6ParamProblem(code, pointer)
    l4 = bytes(inet6.IPv6(src=ip6(src), dst=ip6(dst)) / icmp)[40:]
    assert parse_icmpv6(l4, pseudo_header_v6(src, dst, 58, len(l4))) == (expected, payload)


@DIFF
@given(
    data=st.data(),
    src=s.ipv6_addrs,
    dst=s.ipv6_addrs,
    target=s.ipv6_addrs,
    lladdr=st.none() | s.macs,
    r=st.booleans(),
    sol=st.booleans(),
    o=st.booleans(),
)
def test_ndp(
    *,
    data: st.DataObject,
    src: bytes,
    dst: bytes,
    target: bytes,
    lladdr: bytes | None,
    r: bool,
    sol: bool,
    o: bool,
) -> None:
    kind = data.draw(st.sampled_from(["rs", "ra", "ns", "na"]))
    ll_opt = inet6.ICMPv6NDOptSrcLLAddr(lladdr=mac(lladdr)) if lladdr is not None else None
    if kind == "rs":
        icmp: Any = inet6.ICMPv6ND_RS()
        expected: object = RouterSolicitation(lladdr)
    elif kind == "ns":
        icmp = inet6.ICMPv6ND_NS(tgt=ip6(target))
        expected = NeighborSolicitation(target, lladdr)
    elif kind == "na":
        icmp = inet6.ICMPv6ND_NA(tgt=ip6(target), R=int(r), S=int(sol), O=int(o))
        ll_opt = inet6.ICMPv6NDOptDstLLAddr(lladdr=mac(lladdr)) if lladdr is not None else None
        expected = NeighborAdvertisement(target, r, sol, o, lladdr)
    else:
        chlim, lifetime = data.draw(s.u8), data.draw(s.u16)
        reachable, retrans = data.draw(s.u32), data.draw(s.u32)
        mtu = data.draw(st.none() | s.u32)
        prefixes = data.draw(
            st.lists(
                st.tuples(
                    s.ipv6_addrs, st.integers(0, 128), st.booleans(), st.booleans(), s.u32, s.u32
                ),
                max_size=2,
            )
        )
        prf = data.draw(st.integers(0, 3))
        icmp = inet6.ICMPv6ND_RA(
            chlim=chlim,
            M=int(r),
            O=int(o),
            prf=prf,
            routerlifetime=lifetime,
            reachabletime=reachable,
            retranstimer=retrans,
        )
        if ll_opt is not None:
            icmp = icmp / ll_opt
            ll_opt = None
        if mtu is not None:
            icmp = icmp / inet6.ICMPv6NDOptMTU(mtu=mtu)
        infos = []
        for prefix, plen, on_link, auto, valid, preferred in prefixes:
            icmp = icmp / inet6.ICMPv6NDOptPrefixInfo(
                prefix=ip6(prefix),
                prefixlen=plen,
                L=int(on_link),
                A=int(auto),
                validlifetime=valid,
                preferredlifetime=preferred,
            )
            infos.append(NdpPrefixInfo(prefix, plen, on_link, auto, valid, preferred))
        dns = data.draw(st.lists(s.ipv6_addrs, max_size=3))
        dns_lifetime = data.draw(s.u32) if dns else 0
        if dns:
            icmp = icmp / inet6.ICMPv6NDOptRDNSS(dns=[ip6(a) for a in dns], lifetime=dns_lifetime)
        flags = (0x80 if r else 0) | (0x40 if o else 0) | (prf << 3)
        expected = RouterAdvertisement(
            chlim,
            flags,
            lifetime,
            reachable,
            retrans,
            lladdr,
            mtu,
            tuple(infos),
            tuple(dns),
            dns_lifetime,
        )
    if ll_opt is not None:
        icmp = icmp / ll_opt
    l4 = bytes(inet6.IPv6(src=ip6(src), dst=ip6(dst)) / icmp)[40:]
    assert parse_icmpv6(l4, pseudo_header_v6(src, dst, 58, len(l4))) == (expected, b"")


@DIFF
@given(
    src=s.ipv4_addrs,
    dst=s.ipv4_addrs,
    mtu=s.u16,
    sport=s.u16,
    dport=s.u16,
    size=st.integers(0, 1400),
)
def test_icmpv4_error_quote(
    *, src: bytes, dst: bytes, mtu: int, sport: int, dport: int, size: int
) -> None:
    # What a router sends: the offending datagram's header and as much of it
    # as fits, its length fields still describing the whole original.
    original = bytes(
        inet.IP(src=ip4(src), dst=ip4(dst)) / inet.UDP(sport=sport, dport=dport) / Raw(bytes(size))
    )
    quote = original[:548]
    l4 = bytes(inet.IP() / inet.ICMP(type=3, code=4, nexthopmtu=mtu) / Raw(quote))[20:]
    message, body = parse_icmpv4(l4)
    assert message == Icmpv4DestUnreachable(4, mtu)
    quoted, rest = parse_ipv4(body, truncated_ok=True)
    assert (quoted.src, quoted.dst, quoted.protocol) == (src, dst, 17)
    assert quoted.payload_len == 8 + size
    assert rest == original[20:548]


@DIFF
@given(src=s.ipv6_addrs, dst=s.ipv6_addrs, mtu=s.u32, size=st.integers(0, 3000))
def test_icmpv6_packet_too_big_quote(*, src: bytes, dst: bytes, mtu: int, size: int) -> None:
    original = bytes(
        inet6.IPv6(src=ip6(src), dst=ip6(dst))
        / inet6.IPv6ExtHdrDestOpt()
        / inet.TCP()
        / Raw(bytes(size))
    )
    packet = (
        inet6.IPv6(src=ip6(dst), dst=ip6(src))
        / inet6.ICMPv6PacketTooBig(mtu=mtu)
        / Raw(original[:1232])
    )
    l4 = bytes(packet)[40:]
    message, body = parse_icmpv6(l4, pseudo_header_v6(dst, src, 58, len(l4)))
    assert message == Icmpv6PacketTooBig(mtu)
    quoted, rest = parse_ipv6(body, truncated_ok=True)
    assert (quoted.src, quoted.dst, quoted.next_header) == (src, dst, 6)
    assert quoted.payload_len == 20 + size
    assert rest == original[48:1232]
