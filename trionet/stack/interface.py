"""The gateway's network interface, as a sans-IO object.

:class:`Stack` plays the gateway a guest sees on its one link: it answers ARP
and NDP for the gateway's addresses, answers pings to the gateway, and
demultiplexes everything else into TCP connections (terminated here, see
:mod:`trionet.stack.tcp_table`), UDP datagrams and pings for the engine to
relay. It is fed frames and the current time, and produces frames for the
guest and :mod:`events <trionet.stack.flows>` for the engine. It never
blocks, never reads a clock and never raises on guest input: every frame it
cannot use is dropped and counted in :attr:`Stack.drops` under a reason.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass

from trionet.dhcp.config import DhcpConfig
from trionet.dhcp.router_adverts import RouterAdvertiser
from trionet.dhcp.v4 import Dhcpv4Server
from trionet.dhcp.v6 import Dhcpv6Server
from trionet.stack.flows import EchoRequested, FlowKey, OutFrame, StackEvent, UdpReceived
from trionet.stack.output import GuestOutput
from trionet.stack.reassembly import Reassembler
from trionet.stack.tcp_table import RefuseReason, TcpStatus, TcpTable
from trionet.wire import ParseError
from trionet.wire.arp import ArpOperation, ArpPacket, parse_arp
from trionet.wire.checksum import pseudo_header_v4, pseudo_header_v6
from trionet.wire.dhcpv4 import DHCP_CLIENT_PORT, DHCP_SERVER_PORT, parse_dhcpv4
from trionet.wire.dhcpv6 import (
    ALL_DHCP_SERVERS,
    DHCPV6_CLIENT_PORT,
    DHCPV6_SERVER_PORT,
    parse_dhcpv6,
)
from trionet.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, split_ethernet
from trionet.wire.frames import build_arp_frame
from trionet.wire.icmpv4 import (
    CODE_HOST_UNREACHABLE,
    CODE_PORT_UNREACHABLE,
    Icmpv4DestUnreachable,
    Icmpv4Echo,
    Icmpv4Message,
    Icmpv4TimeExceeded,
    parse_icmpv4,
)
from trionet.wire.icmpv6 import (
    Icmpv6DestUnreachable,
    Icmpv6Echo,
    Icmpv6Message,
    Icmpv6TimeExceeded,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterSolicitation,
    parse_icmpv6,
)
from trionet.wire.ipv4 import (
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    Ipv4Header,
    unpack_ipv4,
)
from trionet.wire.ipv6 import NEXT_HEADER_ICMPV6, Ipv6Header, parse_ipv6
from trionet.wire.tcp import parse_tcp
from trionet.wire.udp import UdpHeader, parse_udp

__all__ = ["RefuseReason", "Stack", "StackParams", "TcpStatus"]

_ALL_NODES_V6 = bytes.fromhex("ff020000000000000000000000000001")
_ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
_BROADCAST_V4 = b"\xff\xff\xff\xff"
_BROADCAST_MAC = b"\xff" * 6
_UNSPECIFIED_V6 = bytes(16)
_ZERO_IID = bytes(8)
_ICMPV6_PORT_UNREACHABLE = 4
_ICMPV6_ADDRESS_UNREACHABLE = 3
#: UDP's 16-bit length, less its header (and IPv4's, whose total length is 16-bit too).
_MAX_UDP_PAYLOAD_V4 = 65535 - 20 - 8
_MAX_UDP_PAYLOAD_V6 = 65535 - 8
#: ICMPv4 types that are not errors: echo, timestamp, information, address mask.
_ICMPV4_INFORMATIONAL = frozenset((0, 8, 13, 14, 15, 16, 17, 18))
_LOOPBACK_V6 = bytes(15) + b"\x01"
_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
#: FlowKey's generated __new__ is a Python function; this is the C one under it.
_new_key = tuple.__new__


@dataclass(frozen=True, slots=True)
class StackParams:
    """The gateway's identity and limits (addresses as packed bytes)."""

    guest_mac: bytes
    gateway_mac: bytes
    mtu: int
    gateway_ipv4: bytes | None
    guest_ipv4: bytes | None
    gateway_ipv6: bytes | None
    gateway_ipv6_link_local: bytes | None
    guest_ipv6: bytes | None
    max_connections: int
    isn_secret: bytes
    #: pings to the gateway become EchoRequested events too, so the engine's
    #: policy decides (and records) them; False answers them right here
    gateway_echo_events: bool = False
    #: DHCPv4, router advertisements and DHCPv6 for guests without an agent (None: off)
    dhcp: DhcpConfig | None = None
    #: the guest's IPv4 prefix length, as DHCP hands it out
    ipv4_prefix_len: int = 30


class _Version(enum.IntEnum):
    V4 = 4
    V6 = 6


class Stack:
    """One guest link's gateway. See the module docstring."""

    def __init__(self, params: StackParams) -> None:
        self.params = params
        #: frames dropped, by reason
        self.drops: Counter[str] = Counter()
        self._frames: list[OutFrame] = []
        self._events: list[StackEvent] = []
        self._reassembly = Reassembler(self.drops)
        self._last_receive = 0.0
        self._gateways_v6 = {
            a for a in (params.gateway_ipv6, params.gateway_ipv6_link_local) if a is not None
        }
        self._out = GuestOutput(params, self._frames)
        self.tcp = TcpTable(params, self._frames, self._events, self.drops)
        # Returned, not set by the method: after ``self.x = None`` mypy takes
        # ``self.x`` to stay None across a method call, and mypyc compiles in
        # that belief (a TypeError when the method had set it).
        self.dhcpv4, self.dhcpv6, self.router_advertiser = self._autoconf(params)
        #: the guest has not spoken IPv6 yet (router advertisements wait until it does)
        self._ipv6_quiet = self.router_advertiser is not None

    def _autoconf(
        self, params: StackParams
    ) -> tuple[Dhcpv4Server | None, Dhcpv6Server | None, RouterAdvertiser | None]:
        """The DHCPv4 and DHCPv6 servers and the router advertiser ``params`` ask for."""
        dhcpv4: Dhcpv4Server | None = None
        dhcpv6: Dhcpv6Server | None = None
        advertiser: RouterAdvertiser | None = None
        dhcp = params.dhcp
        if dhcp is None or not dhcp.enabled:
            return dhcpv4, dhcpv6, advertiser
        if params.gateway_ipv4 is not None and params.guest_ipv4 is not None:
            dhcpv4 = Dhcpv4Server(
                dhcp,
                server=params.gateway_ipv4,
                client=params.guest_ipv4,
                prefix_len=params.ipv4_prefix_len,
                client_mac=params.guest_mac,
                mtu=params.mtu,
                drops=self.drops,
            )
        if params.guest_ipv6 is None or params.gateway_ipv6 is None:
            return dhcpv4, dhcpv6, advertiser
        if dhcp.dhcpv6:
            dhcpv6 = Dhcpv6Server(
                dhcp,
                address=params.guest_ipv6,
                dns_server=params.gateway_ipv6,
                server_mac=params.gateway_mac,
                drops=self.drops,
            )
        if dhcp.router_advertisements and params.gateway_ipv6_link_local is not None:
            advertiser = RouterAdvertiser(
                dhcp,
                prefix=params.guest_ipv6,
                gateway=params.gateway_ipv6,
                gateway_mac=params.gateway_mac,
                mtu=params.mtu,
                drops=self.drops,
            )
        return dhcpv4, dhcpv6, advertiser

    # -- output ---------------------------------------------------------------

    def enable_tso(self, *, ipv4: bool, ipv6: bool) -> None:
        """The link accepts TCP super-segments with partial checksums (virtio-net TSO)."""
        self.tcp.enable_tso(ipv4=ipv4, ipv6=ipv6)

    def take_frames(self) -> list[OutFrame]:
        """Frames for the guest produced since the last call, in order.

        Taking output ends a batch: connections that received segments since
        the last call are serviced first, once each (at the time of the last
        frame received), so a burst costs one pass and typically one ACK.
        """
        self.tcp.flush_batch(self._last_receive)
        frames = self._frames[:]
        self._frames.clear()
        return frames

    def take_events(self) -> list[StackEvent]:
        self.tcp.flush_batch(self._last_receive)
        events = self._events[:]
        self._events.clear()
        return events

    # -- time -------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        advertiser = self.router_advertiser
        deadlines = [
            d
            for d in (
                self.tcp.next_deadline(),
                self._reassembly.next_deadline(),
                None if advertiser is None else advertiser.next_deadline(),
            )
            if d is not None
        ]
        return min(deadlines) if deadlines else None

    def poll(self, now: float) -> None:
        """Run every timer due at ``now``."""
        self.tcp.poll(now)
        self._reassembly.expire(now)
        if self.router_advertiser is not None and self.router_advertiser.due(now):
            self._send_router_advertisement()

    # -- input ------------------------------------------------------------------

    def receive_frame(
        self, frame: bytes | memoryview, now: float, checksum_valid: bool = False
    ) -> None:
        """Process one Ethernet frame from the guest.

        ``checksum_valid`` means the link vouches for the transport checksum
        (virtio-net NEEDS_CSUM / DATA_VALID), so it is not verified.
        """
        self._last_receive = now
        try:
            # Fields, not header objects: this runs for every guest frame.
            dst, ethertype, vlan_tci, _, _, payload = split_ethernet(frame)
            if vlan_tci is not None:
                self.drops["unsupported_vlan"] += 1
                return
            if dst != self.params.gateway_mac and not dst[0] & 1:
                self.drops["not_for_gateway"] += 1
                return
            if ethertype == ETHERTYPE_IPV4:
                if dst[0] & 1:
                    # Nothing we relay may come as a link broadcast (RFC 1122
                    # 3.3.6); the subnet's broadcast address, which we cannot
                    # tell from a remote one, arrives exactly like that.
                    # DHCP is the exception: a client without an address broadcasts.
                    if self.dhcpv4 is None or not self._dhcpv4_broadcast(
                        payload, now, checksum_valid
                    ):
                        self.drops["link_broadcast"] += 1
                    return
                self._ipv4(payload, now, checksum_valid)
            elif ethertype == ETHERTYPE_IPV6:
                if self._ipv6_quiet:
                    self._ipv6_quiet = False
                    assert self.router_advertiser is not None
                    self.router_advertiser.link_up(now)
                self._ipv6(payload, now, checksum_valid)
            elif ethertype == ETHERTYPE_ARP:
                self._arp(payload)
            else:
                self.drops["unsupported_ethertype"] += 1
        except ParseError:
            self.drops["malformed"] += 1

    def _arp(self, payload: memoryview) -> None:
        packet = parse_arp(payload)
        gateway = self.params.gateway_ipv4
        if packet.operation != ArpOperation.REQUEST:
            return  # replies and gratuitous announcements need no answer
        if gateway is None or packet.target_ip != gateway:
            self.drops["arp_not_for_gateway"] += 1
            return
        reply = ArpPacket(
            ArpOperation.REPLY,
            self.params.gateway_mac,
            gateway,
            packet.sender_mac,
            packet.sender_ip,
        )
        self._frames.append(
            bytes(build_arp_frame(self.params.gateway_mac, packet.sender_mac, reply))
        )

    # -- IPv4 -------------------------------------------------------------------

    def _ipv4(self, payload: memoryview, now: float, checksum_valid: bool) -> None:
        params = self.params
        if params.guest_ipv4 is None:
            self.drops["ipv4_inactive"] += 1
            return
        fields, body = unpack_ipv4(payload)
        src, dst, protocol, _, ttl, ident, _, more_fragments, frag_offset, _ = fields
        if src != params.guest_ipv4:
            self.drops["bad_source"] += 1
            return
        first = dst[0]
        if first >= 224 or dst == b"\x00\x00\x00\x00":
            self.drops["unsupported_destination"] += 1  # multicast, broadcast, this-host
            return
        if first in {127, 0}:
            # Loopback (127/8) or "this network" (0/8): never forwarded (RFC
            # 1812 5.3.7). Relaying these would dial the host's own loopback
            # for a flow not described as host-bound, slipping past any
            # policy on host access.
            self.drops["martian_destination"] += 1
            return
        if ttl <= 1 and dst != params.gateway_ipv4:
            self.drops["ttl_expired"] += 1
            # Never an error about an error (two routers could ping-pong them)
            # or about a later fragment (RFC 1812 4.3.2.7).
            is_error = protocol == PROTO_ICMP and (
                not body or body[0] not in _ICMPV4_INFORMATIONAL
            )
            if not is_error and not frag_offset:
                self._icmpv4_error(Icmpv4TimeExceeded(0), Ipv4Header(*fields), body)
            return
        if more_fragments or frag_offset:
            if protocol != PROTO_UDP:
                self.drops["unsupported_fragment"] += 1
                return
            whole = self._reassembly.add(
                (4, src, dst, ident, protocol), frag_offset, more_fragments, body, now
            )
            if whole is None:
                return
            body, checksum_valid = memoryview(whole), False  # the link vouched for one frame
        if protocol in (PROTO_TCP, PROTO_UDP):
            self._transport(4, src, dst, protocol, body, now=now, checksum_valid=checksum_valid)
        elif protocol == PROTO_ICMP:
            message, data = parse_icmpv4(body)
            if not isinstance(message, Icmpv4Echo) or not message.request:
                self.drops["icmp_ignored"] += 1
                return
            if dst == params.gateway_ipv4 and not params.gateway_echo_events:
                self._out.ipv4(dst, message.reply(), data)
            else:
                self._events.append(
                    EchoRequested(4, src, dst, message.ident, message.seq, bytes(data), ttl)
                )
        else:
            self.drops["unsupported_protocol"] += 1

    def _icmpv4_error(self, message: Icmpv4Message, ip: Ipv4Header, body: memoryview) -> None:
        """An error from the gateway about the guest's datagram ``ip`` + ``body``."""
        if self.params.gateway_ipv4 is not None:
            self._out.icmpv4_error(self.params.gateway_ipv4, message, ip.to_bytes() + bytes(body))

    # -- IPv6 -------------------------------------------------------------------

    def _ipv6(self, payload: memoryview, now: float, checksum_valid: bool) -> None:
        params = self.params
        if params.guest_ipv6 is None:
            self.drops["ipv6_inactive"] += 1
            return
        ip, body = parse_ipv6(payload)
        src, dst = ip.src, ip.dst
        next_header = ip.next_header
        if next_header == NEXT_HEADER_ICMPV6:
            if ip.fragment is not None:
                self.drops["unsupported_fragment"] += 1
                return
            self._icmpv6(ip, body, now)
            return
        if dst == ALL_DHCP_SERVERS and next_header == PROTO_UDP and self.dhcpv6 is not None:
            self._dhcpv6_in(ip, body, now, checksum_valid)
            return
        if not self._valid_source_v6(src, dst):
            self.drops["bad_source"] += 1
            return
        if dst[0] == 0xFF or dst == _UNSPECIFIED_V6:
            self.drops["unsupported_destination"] += 1
            return
        if self._martian_v6(dst):
            self.drops["martian_destination"] += 1
            return
        if ip.hop_limit <= 1 and dst not in self._gateways_v6:
            self.drops["ttl_expired"] += 1
            # A later fragment holds no transport header: quoted as if it did,
            # the guest could match the error to an unrelated socket.
            if ip.fragment is None or ip.fragment.offset == 0:
                self._icmpv6_error(Icmpv6TimeExceeded(0), ip, body)
            return
        if ip.fragment is not None:
            if next_header != PROTO_UDP:
                self.drops["unsupported_fragment"] += 1
                return
            fragment = ip.fragment
            whole = self._reassembly.add(
                (6, src, dst, fragment.ident, next_header),
                fragment.offset,
                fragment.more,
                body,
                now,
            )
            if whole is None:
                return
            body, checksum_valid = memoryview(whole), False  # the link vouched for one frame
        if next_header in (PROTO_TCP, PROTO_UDP):
            self._transport(6, src, dst, next_header, body, now=now, checksum_valid=checksum_valid)
        else:
            self.drops["unsupported_protocol"] += 1

    def _transport(
        self,
        version: int,
        src: bytes,
        dst: bytes,
        protocol: int,
        body: memoryview,
        *,
        now: float,
        checksum_valid: bool,
    ) -> None:
        """TCP to the connection table, UDP to the engine; the same for both families."""
        pseudo = None
        if not checksum_valid:
            pseudo_header = pseudo_header_v4 if version == 4 else pseudo_header_v6
            pseudo = pseudo_header(src, dst, protocol, len(body))
        if protocol == PROTO_TCP:
            header, data = parse_tcp(body, pseudo)
            key = _new_key(FlowKey, (version, src, header.src_port, dst, header.dst_port))
            self.tcp.segment_in(key, header, data, now)
        else:
            # A zero UDP checksum means "none" in IPv4 only (RFC 8200 8.1).
            udp, data = parse_udp(body, pseudo, zero_checksum_ok=version == 4)
            if (
                udp.dst_port == DHCP_SERVER_PORT
                and version == 4
                and self.dhcpv4 is not None
                and dst == self.params.gateway_ipv4
            ):
                self._dhcpv4_in(data, now)  # a renewal, unicast to the server
                return
            key = FlowKey(version, src, udp.src_port, dst, udp.dst_port)
            self._events.append(UdpReceived(key, bytes(data)))

    def _valid_source_v6(self, src: bytes, dst: bytes) -> bool:
        """An address in the guest's /64, or a link-local one for the gateway itself.

        Besides the slot's ::2, a guest may form addresses of its own in
        the advertised /64 (SLAAC, privacy addresses; RFC 4862, 8981): all
        are its own, as no one else is on the link. Not the gateway's ::1
        nor the subnet-router anycast ::0, and nothing outside the /64.
        A link-local source never leaves its link (RFC 4291 2.5.6): relaying
        it to a remote destination would be forwarding it.
        """
        guest = self.params.guest_ipv6
        if src == guest:
            return True
        assert guest is not None
        if src[:8] == guest[:8]:
            return src[8:] != _ZERO_IID and src not in self._gateways_v6
        return src[:2] == b"\xfe\x80" and dst in self._gateways_v6

    def _martian_v6(self, dst: bytes) -> bool:
        """Loopback, IPv4-mapped, or link-local other than the gateway's (RFC 4291).

        An IPv4-mapped destination would reach IPv4 (its loopback included)
        through the engine's AF_INET6 socket; a link-local one names a
        neighbour on the guest's link, where there is only the gateway.
        """
        if dst == _LOOPBACK_V6 or dst[:12] == _V4_MAPPED_PREFIX:
            return True
        return dst[0] == 0xFE and dst[1] & 0xC0 == 0x80 and dst not in self._gateways_v6

    def _icmpv6(self, ip: Ipv6Header, body: memoryview, now: float) -> None:
        params = self.params
        message, data = parse_icmpv6(
            body, pseudo_header_v6(ip.src, ip.dst, NEXT_HEADER_ICMPV6, len(body))
        )
        if isinstance(message, NeighborSolicitation):
            if ip.hop_limit != 255 or message.target not in self._gateways_v6:
                self.drops["ndp_ignored"] += 1
                return
            # From "::" (duplicate address detection) the answer goes to all nodes.
            unspecified = ip.src == _UNSPECIFIED_V6
            advert = NeighborAdvertisement(
                message.target,
                router=True,
                solicited=not unspecified,
                override=True,
                target_lladdr=params.gateway_mac,
            )
            dst = _ALL_NODES_V6 if unspecified else ip.src
            dst_mac = (
                b"\x33\x33\x00\x00\x00\x01"
                if unspecified
                else (message.source_lladdr or params.guest_mac)
            )
            self._out.ipv6(message.target, dst, advert, b"", hop_limit=255, dst_mac=dst_mac)
            return
        if isinstance(message, RouterSolicitation):
            advertiser = self.router_advertiser
            # RFC 4861 6.1.1: hop limit 255 proves it came from the link; a
            # host without an address ("::") has no link-layer address to give.
            if advertiser is None:
                self.drops["icmp_ignored"] += 1  # no advertisements configured
            elif ip.hop_limit != 255 or (
                ip.src == _UNSPECIFIED_V6 and message.source_lladdr is not None
            ):
                self.drops["ndp_ignored"] += 1
            elif advertiser.solicited(now):
                self._send_router_advertisement()
            return
        if isinstance(message, Icmpv6Echo) and message.request:
            if not self._valid_source_v6(ip.src, ip.dst):
                self.drops["bad_source"] += 1
                return
            if ip.dst in self._gateways_v6:
                if self.params.gateway_echo_events:
                    self._events.append(
                        EchoRequested(
                            6,
                            ip.src,
                            ip.dst,
                            message.ident,
                            message.seq,
                            bytes(data),
                            ip.hop_limit,
                        )
                    )
                else:
                    self._out.ipv6(ip.dst, ip.src, message.reply(), data)
            elif ip.dst[0] == 0xFF or ip.dst == _UNSPECIFIED_V6:
                # As for TCP and UDP: "::" is no one's address, and a host
                # socket sent to it reaches the host's own loopback.
                self.drops["unsupported_destination"] += 1
            elif self._martian_v6(ip.dst):
                self.drops["martian_destination"] += 1
            elif ip.hop_limit <= 1:
                self.drops["ttl_expired"] += 1
                self._icmpv6_error(Icmpv6TimeExceeded(0), ip, body)
            else:
                self._events.append(
                    EchoRequested(
                        6, ip.src, ip.dst, message.ident, message.seq, bytes(data), ip.hop_limit
                    )
                )
            return
        self.drops["icmp_ignored"] += 1

    def _icmpv6_error(self, message: Icmpv6Message, ip: Ipv6Header, body: memoryview) -> None:
        """An error from the gateway about the guest's packet ``ip`` + ``body``."""
        src = self.params.gateway_ipv6
        if src is None:
            return
        # Quoted as sent: with its fragment header, if any, so the guest can
        # parse the quote (other extension headers are not kept by the parser).
        original = Ipv6Header(
            ip.src, ip.dst, ip.next_header, len(body), ip.hop_limit, fragment=ip.fragment
        ).to_bytes()
        self._out.icmpv6_error(src, message, original + bytes(body))

    # -- address autoconfiguration -----------------------------------------------

    def _dhcpv4_broadcast(self, payload: memoryview, now: float, checksum_valid: bool) -> bool:
        """Serve a broadcast DHCP request; False if the datagram is something else."""
        fields, body = unpack_ipv4(payload)
        src, dst, protocol, _, _, _, _, more_fragments, frag_offset, _ = fields
        if protocol != PROTO_UDP or more_fragments or frag_offset:
            return False
        if dst not in (_BROADCAST_V4, self.params.gateway_ipv4):
            return False
        pseudo = None if checksum_valid else pseudo_header_v4(src, dst, PROTO_UDP, len(body))
        udp, data = parse_udp(body, pseudo, zero_checksum_ok=True)
        if udp.dst_port != DHCP_SERVER_PORT:
            return False
        self._dhcpv4_in(data, now)
        return True

    def _dhcpv4_in(self, data: memoryview, now: float) -> None:
        server = self.dhcpv4
        assert server is not None and self.params.gateway_ipv4 is not None
        try:
            message = parse_dhcpv4(data)
        except ParseError:
            self.drops["dhcp_malformed"] += 1
            return
        reply = server.answer(message, now)
        if reply is None:
            return
        self._out.ipv4(
            self.params.gateway_ipv4,
            UdpHeader(DHCP_SERVER_PORT, DHCP_CLIENT_PORT),
            reply.message.to_bytes(),
            dst=reply.dst_ip,
            dst_mac=_BROADCAST_MAC if reply.broadcast else None,
        )

    def _dhcpv6_in(
        self, ip: Ipv6Header, body: memoryview, now: float, checksum_valid: bool
    ) -> None:
        server = self.dhcpv6
        assert server is not None
        if ip.fragment is not None:
            self.drops["unsupported_fragment"] += 1
            return
        # RFC 8415 13.1: clients send from their link-local address.
        if ip.src[:2] != b"\xfe\x80" and not self._valid_source_v6(ip.src, ip.dst):
            self.drops["bad_source"] += 1
            return
        pseudo = None
        if not checksum_valid:
            pseudo = pseudo_header_v6(ip.src, ip.dst, PROTO_UDP, len(body))
        udp, data = parse_udp(body, pseudo, zero_checksum_ok=False)
        if udp.dst_port != DHCPV6_SERVER_PORT:
            self.drops["unsupported_destination"] += 1
            return
        try:
            message = parse_dhcpv6(data)
        except ParseError:
            self.drops["dhcpv6_malformed"] += 1
            return
        reply = server.answer(message, now)
        if reply is None:
            return
        source = self.params.gateway_ipv6_link_local or self.params.gateway_ipv6
        assert source is not None
        self._out.ipv6(
            source, ip.src, UdpHeader(DHCPV6_SERVER_PORT, DHCPV6_CLIENT_PORT), reply.to_bytes()
        )

    def _send_router_advertisement(self) -> None:
        advertiser = self.router_advertiser
        source = self.params.gateway_ipv6_link_local
        assert advertiser is not None and source is not None
        # To all nodes, solicited or not: every address the guest holds learns at once.
        self._out.ipv6(
            source,
            _ALL_NODES_V6,
            advertiser.advertisement,
            b"",
            hop_limit=255,
            dst_mac=_ALL_NODES_MAC,
        )

    # -- UDP and ICMP from the engine ---------------------------------------------------

    def udp_send(self, key: FlowKey, payload: bytes, now: float) -> None:
        """A datagram from ``key``'s remote end to the guest, fragmented to the MTU.

        A payload UDP cannot carry (over 65507 bytes on IPv4, 65527 on IPv6)
        is dropped and counted as ``udp_too_big``.
        """
        if len(payload) > (_MAX_UDP_PAYLOAD_V4 if key.version == 4 else _MAX_UDP_PAYLOAD_V6):
            self.drops["udp_too_big"] += 1
            return
        udp = UdpHeader(key.remote_port, key.guest_port)
        out = self._out
        if len(payload) + (28 if key.version == 4 else 48) <= self.params.mtu:
            if key.version == 4:
                out.ipv4(key.remote_addr, udp, payload)
            else:
                out.ipv6(key.remote_addr, key.guest_addr, udp, payload)
            return
        # Too big for the link: build the whole datagram, then fragment it.
        pseudo_header = pseudo_header_v4 if key.version == 4 else pseudo_header_v6
        pseudo = pseudo_header(key.remote_addr, key.guest_addr, PROTO_UDP, len(payload) + 8)
        out.fragments(key, PROTO_UDP, udp.to_bytes(payload, pseudo))

    def udp_unreachable(self, key: FlowKey, payload: bytes, now: float, *, port: bool) -> None:
        """Tell the guest its datagram for ``key`` could not be delivered."""
        # Only the start is quoted; a guest's reassembled IPv4 datagram can be
        # longer than an IPv4 header may claim, so rebuild it at a size that fits.
        payload = payload[: _MAX_UDP_PAYLOAD_V4 if key.version == 4 else _MAX_UDP_PAYLOAD_V6]
        offending = GuestOutput.guest_datagram(
            key, PROTO_UDP, UdpHeader(key.guest_port, key.remote_port), payload
        )
        # Port unreachable is the remote host's word; host unreachable is
        # the router's, i.e. ours (RFC 1812 4.3.2.4).
        if key.version == 4:
            code = CODE_PORT_UNREACHABLE if port else CODE_HOST_UNREACHABLE
            src = key.remote_addr if port else (self.params.gateway_ipv4 or key.remote_addr)
            self._out.icmpv4_error(src, Icmpv4DestUnreachable(code), offending)
        else:
            code = _ICMPV6_PORT_UNREACHABLE if port else _ICMPV6_ADDRESS_UNREACHABLE
            src = key.remote_addr if port else (self.params.gateway_ipv6 or key.remote_addr)
            self._out.icmpv6_error(src, Icmpv6DestUnreachable(code), offending)

    def echo_reply(self, request: EchoRequested, payload: bytes, now: float) -> None:
        """The remote answered the guest's ping: forward the reply with its id restored."""
        if request.version == 4:
            echo4 = Icmpv4Echo(False, request.ident, request.sequence)
            self._out.ipv4(request.remote_addr, echo4, payload)
        else:
            echo6 = Icmpv6Echo(False, request.ident, request.sequence)
            self._out.ipv6(request.remote_addr, request.guest_addr, echo6, payload)

    # -- TCP, delegated ------------------------------------------------------------------

    def tcp_accept(self, key: FlowKey, now: float) -> bool:
        return self.tcp.accept(key, now)

    def tcp_connect(self, key: FlowKey, now: float) -> bool:
        return self.tcp.connect(key, now)

    def tcp_in_use(self, key: FlowKey) -> bool:
        return self.tcp.in_use(key)

    def tcp_established(self, key: FlowKey) -> bool:
        return self.tcp.established(key)

    def tcp_refuse(self, key: FlowKey, now: float, reason: RefuseReason) -> None:
        self.tcp.refuse(key, now, reason)

    def tcp_status(self, key: FlowKey) -> TcpStatus:
        return self.tcp.status(key)

    def tcp_read(self, key: FlowKey, max_bytes: int, now: float) -> bytes:
        return self.tcp.read(key, max_bytes, now)

    def tcp_peek(self, key: FlowKey, max_bytes: int) -> memoryview:
        return self.tcp.peek(key, max_bytes)

    def tcp_consume(self, key: FlowKey, n: int, now: float) -> None:
        self.tcp.consume(key, n, now)

    def tcp_send(self, key: FlowKey, data: memoryview, now: float) -> int:
        return self.tcp.send(key, data, now)

    def tcp_send_room(self, key: FlowKey, max_bytes: int) -> memoryview | None:
        return self.tcp.send_room(key, max_bytes)

    def tcp_send_commit(self, key: FlowKey, n: int, now: float) -> None:
        self.tcp.send_commit(key, n, now)

    def tcp_shutdown(self, key: FlowKey, now: float) -> None:
        self.tcp.shutdown(key, now)

    def tcp_abort(self, key: FlowKey, now: float) -> bool:
        return self.tcp.abort(key, now)

    def tcp_release(self, key: FlowKey, now: float) -> None:
        self.tcp.release(key, now)

    def abort_all(self, now: float) -> None:
        self.tcp.abort_all(now)
