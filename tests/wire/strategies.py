"""Hypothesis strategies for every wire representation, within what the codecs can emit."""

from __future__ import annotations

from hypothesis import strategies as st

from trionet.wire.arp import ArpPacket
from trionet.wire.ethernet import EthernetHeader
from trionet.wire.icmpv4 import (
    Icmpv4DestUnreachable,
    Icmpv4Echo,
    Icmpv4Message,
    Icmpv4Other,
    Icmpv4TimeExceeded,
)
from trionet.wire.icmpv6 import (
    Icmpv6DestUnreachable,
    Icmpv6Echo,
    Icmpv6Message,
    Icmpv6Other,
    Icmpv6PacketTooBig,
    Icmpv6ParamProblem,
    Icmpv6TimeExceeded,
    NdpPrefixInfo,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterAdvertisement,
    RouterSolicitation,
)
from trionet.wire.ipv4 import Ipv4Header
from trionet.wire.ipv6 import Ipv6Fragment, Ipv6Header
from trionet.wire.tcp import MAX_OPTIONS_LEN, TcpFlags, TcpHeader, TcpOptions, options_len
from trionet.wire.udp import UdpHeader

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
macs = st.binary(min_size=6, max_size=6)
ipv4_addrs = st.binary(min_size=4, max_size=4)
ipv6_addrs = st.binary(min_size=16, max_size=16)
payloads = st.binary(max_size=300)
#: Names as the codecs hand them back: lowercase labels without dots, 1..63 bytes each.
dns_labels = st.from_regex(r"[a-z0-9_-]{1,63}", fullmatch=True)
domain_names = (
    st.lists(dns_labels, min_size=1, max_size=6)
    .map(".".join)
    .filter(lambda name: len(name) + 2 <= 255)
)

TAG_TYPES = (0x8100, 0x88A8, 0x9100)
EXTENSION_HEADERS = (0, 43, 44, 60)

untagged_ethernet = st.builds(EthernetHeader, macs, macs, u16.filter(lambda t: t not in TAG_TYPES))
tagged_ethernet = st.builds(
    EthernetHeader,
    macs,
    macs,
    u16,
    vlan_tci=u16,
    vlan_tpid=st.sampled_from((0x8100, 0x88A8)),
)
ethernet_headers = st.one_of(untagged_ethernet, tagged_ethernet)

arp_packets = st.builds(
    ArpPacket, st.sampled_from((1, 2)) | u16, macs, ipv4_addrs, macs, ipv4_addrs
)

ipv4_headers = st.builds(
    Ipv4Header,
    ipv4_addrs,
    ipv4_addrs,
    u8,
    st.integers(0, 1500),
    ttl=u8,
    ident=u16,
    dont_fragment=st.booleans(),
    more_fragments=st.booleans(),
    frag_offset=st.integers(0, 0x1FFF).map(lambda units: units * 8),
    dscp_ecn=u8,
)

ipv6_fragments = st.builds(
    Ipv6Fragment, u32, st.integers(0, 0x1FFF).map(lambda units: units * 8), st.booleans()
)
ipv6_headers = st.builds(
    Ipv6Header,
    ipv6_addrs,
    ipv6_addrs,
    u8.filter(lambda n: n not in EXTENSION_HEADERS),
    st.integers(0, 1500),
    hop_limit=u8,
    traffic_class=u8,
    flow_label=st.integers(0, 0xFFFFF),
    fragment=st.none() | ipv6_fragments,
)

udp_headers = st.builds(UdpHeader, u16, u16)


@st.composite
def tcp_options(draw: st.DrawFn) -> TcpOptions:
    """Any option set whose NOP-aligned layout fits in 40 bytes."""
    options = TcpOptions(
        mss=draw(st.none() | u16),
        window_scale=draw(st.none() | u8),
        sack_permitted=draw(st.booleans()),
        timestamp=draw(st.none() | st.tuples(u32, u32)),
    )
    room = (MAX_OPTIONS_LEN - options_len(options) - 4) // 8
    blocks = draw(st.lists(st.tuples(u32, u32), max_size=max(0, min(4, room))))
    return TcpOptions(
        options.mss, options.window_scale, options.sack_permitted, tuple(blocks), options.timestamp
    )


tcp_headers = st.builds(
    TcpHeader,
    u16,
    u16,
    u32,
    u32,
    u8.map(TcpFlags),
    u16,
    urgent=u16,
    options=tcp_options(),
)

_DECODED_ICMPV4_TYPES = frozenset({0, 3, 8, 11, 13, 14, 15, 16, 17, 18})
icmpv4_messages: st.SearchStrategy[Icmpv4Message] = st.one_of(
    st.builds(Icmpv4Echo, st.booleans(), u16, u16),
    st.builds(Icmpv4DestUnreachable, u8, u16),
    st.builds(Icmpv4TimeExceeded, u8),
    # Types with their own decoders here, and the timestamp/information/mask
    # types (13-18), whose fixed fields scapy insists on decoding.
    st.builds(Icmpv4Other, u8.filter(lambda t: t not in _DECODED_ICMPV4_TYPES), u8, u32),
)

prefix_infos = st.builds(
    NdpPrefixInfo,
    ipv6_addrs,
    st.integers(0, 128),
    st.booleans(),
    st.booleans(),
    u32,
    u32,
)


@st.composite
def router_advertisements(draw: st.DrawFn) -> RouterAdvertisement:
    dns_servers = tuple(draw(st.lists(ipv6_addrs, max_size=3)))
    search_domains = tuple(draw(st.lists(domain_names, max_size=3)))
    return RouterAdvertisement(
        cur_hop_limit=draw(u8),
        flags=draw(u8),
        router_lifetime=draw(u16),
        reachable_time=draw(u32),
        retrans_timer=draw(u32),
        source_lladdr=draw(st.none() | macs),
        mtu=draw(st.none() | u32),
        prefixes=tuple(draw(st.lists(prefix_infos, max_size=3))),
        dns_servers=dns_servers,
        # The lifetime travels in the RDNSS option, so only with servers.
        dns_lifetime=draw(u32) if dns_servers else 0,
        search_domains=search_domains,
        dnssl_lifetime=draw(u32) if search_domains else 0,
    )


ndp_messages: st.SearchStrategy[Icmpv6Message] = st.one_of(
    st.builds(RouterSolicitation, st.none() | macs),
    router_advertisements(),
    st.builds(NeighborSolicitation, ipv6_addrs, st.none() | macs),
    st.builds(
        NeighborAdvertisement,
        ipv6_addrs,
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.none() | macs,
    ),
)
icmpv6_non_ndp: st.SearchStrategy[Icmpv6Message] = st.one_of(
    st.builds(Icmpv6Echo, st.booleans(), u16, u16),
    st.builds(Icmpv6DestUnreachable, u8),
    st.builds(Icmpv6PacketTooBig, u32),
    st.builds(Icmpv6TimeExceeded, u8),
    st.builds(Icmpv6ParamProblem, u8, u32),
    st.builds(
        Icmpv6Other,
        u8.filter(lambda t: t not in (1, 2, 3, 4, 128, 129, 133, 134, 135, 136)),
        u8,
        u32,
    ),
)
