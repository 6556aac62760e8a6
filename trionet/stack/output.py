"""Frames from the gateway to the guest: the one place the stack builds them.

Both the interface (ARP aside, which :mod:`trionet.wire.frames` builds whole)
and the TCP table append their output here, so addressing, ICMP errors and
fragmentation are written once, on top of the wire builders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trionet.stack.flows import FlowKey, OutFrame
from trionet.wire.checksum import pseudo_header_v4, pseudo_header_v6
from trionet.wire.ethernet import ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetHeader
from trionet.wire.frames import (
    build_icmpv4_error,
    build_icmpv6_error,
    build_ipv4_frame,
    build_ipv6_frame,
    build_tcp_ipv4_frame,
)
from trionet.wire.icmpv4 import Icmpv4Message
from trionet.wire.icmpv6 import Icmpv6Message
from trionet.wire.ipv4 import Ipv4Header
from trionet.wire.ipv6 import Ipv6Fragment, Ipv6Header
from trionet.wire.tcp import TcpHeader
from trionet.wire.udp import UdpHeader

if TYPE_CHECKING:
    from trionet.stack.interface import StackParams

__all__ = ["GuestOutput"]

_ETHERNET_LEN = 14
_IPV4_HEADER_LEN = 20
_IPV6_FRAGMENTED_HEADER_LEN = 48


class GuestOutput:
    """Appends frames for the guest, in order, to the stack's output list."""

    def __init__(self, params: StackParams, frames: list[OutFrame]) -> None:
        self._params = params
        self._frames = frames
        self._ident = 0

    def ipv4(
        self,
        src: bytes,
        transport: TcpHeader | UdpHeader | Icmpv4Message,
        payload: bytes | memoryview,
        *,
        dst: bytes | None = None,
        dst_mac: bytes | None = None,
    ) -> None:
        """An IPv4 packet from ``src`` to the guest (or ``dst``, for DHCP's broadcasts)."""
        params = self._params
        dst = dst or params.guest_ipv4
        assert dst is not None
        head = build_ipv4_frame(
            params.gateway_mac,
            dst_mac or params.guest_mac,
            src,
            dst,
            transport,
            payload=payload,
        )
        self._frames.append(b"".join((head, payload)))

    def tcp_ipv4(self, src: bytes, header: TcpHeader, payload: bytes | memoryview) -> None:
        """:meth:`ipv4` for a TCP segment: the per-segment path, in one pack."""
        params = self._params
        assert params.guest_ipv4 is not None
        head = build_tcp_ipv4_frame(
            params.gateway_mac, params.guest_mac, src, params.guest_ipv4, header, payload=payload
        )
        self._frames.append(b"".join((head, payload)))

    def ipv6(
        self,
        src: bytes,
        dst: bytes,
        transport: TcpHeader | UdpHeader | Icmpv6Message,
        payload: bytes | memoryview,
        *,
        hop_limit: int = 64,
        dst_mac: bytes | None = None,
    ) -> None:
        """An IPv6 packet from ``src`` to ``dst`` (the guest's global or link-local address)."""
        params = self._params
        head = build_ipv6_frame(
            params.gateway_mac,
            dst_mac or params.guest_mac,
            src,
            dst,
            transport,
            payload=payload,
            hop_limit=hop_limit,
        )
        self._frames.append(b"".join((head, payload)))

    def icmpv4_error(self, src: bytes, message: Icmpv4Message, offending: bytes) -> None:
        """An ICMPv4 error quoting the guest's ``offending`` datagram, back to its sender."""
        params = self._params
        head, quote = build_icmpv4_error(
            params.gateway_mac, params.guest_mac, src, message, offending
        )
        self._frames.append(b"".join((head, quote)))

    def icmpv6_error(self, src: bytes, message: Icmpv6Message, offending: bytes) -> None:
        """An ICMPv6 error quoting the guest's ``offending`` packet, back to its sender."""
        params = self._params
        head, quote = build_icmpv6_error(
            params.gateway_mac, params.guest_mac, src, message, offending
        )
        self._frames.append(b"".join((head, quote)))

    @staticmethod
    def guest_datagram(
        key: FlowKey, protocol: int, transport: TcpHeader | UdpHeader, payload: bytes
    ) -> bytes:
        """The datagram the guest sent on ``key``, rebuilt for an ICMP error to quote."""
        length = transport.header_len + len(payload)
        if key.version == 4:
            pseudo = pseudo_header_v4(key.guest_addr, key.remote_addr, protocol, length)
            ip = Ipv4Header(key.guest_addr, key.remote_addr, protocol, length).to_bytes()
        else:
            pseudo = pseudo_header_v6(key.guest_addr, key.remote_addr, protocol, length)
            ip = Ipv6Header(key.guest_addr, key.remote_addr, protocol, length).to_bytes()
        return ip + transport.to_bytes(payload, pseudo)

    def fragments(self, key: FlowKey, protocol: int, datagram: bytes) -> None:
        """``datagram`` from ``key``'s remote end, cut into fragments that fit the MTU.

        Fragment payloads are multiples of 8 bytes (RFC 791, RFC 8200).
        """
        params = self._params
        ipv4 = key.version == 4
        step = (params.mtu - (_IPV4_HEADER_LEN if ipv4 else _IPV6_FRAGMENTED_HEADER_LEN)) & ~7
        self._ident = ident = (self._ident + 1) & 0xFFFF
        ethernet = EthernetHeader(
            params.guest_mac, params.gateway_mac, ETHERTYPE_IPV4 if ipv4 else ETHERTYPE_IPV6
        ).to_bytes()
        view = memoryview(datagram)
        for offset in range(0, len(datagram), step):
            piece = view[offset : offset + step]
            more = offset + step < len(datagram)
            ip: Ipv4Header | Ipv6Header
            if ipv4:
                ip = Ipv4Header(
                    key.remote_addr,
                    key.guest_addr,
                    protocol,
                    len(piece),
                    64,
                    ident,
                    False,
                    more,
                    offset,
                )
            else:
                ip = Ipv6Header(
                    key.remote_addr,
                    key.guest_addr,
                    protocol,
                    len(piece),
                    64,
                    fragment=Ipv6Fragment(ident, offset, more),
                )
            self._frames.append(b"".join((ethernet, ip.to_bytes(), piece)))
