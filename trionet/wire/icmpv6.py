"""ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861).

Errors (destination unreachable, packet too big, time exceeded, parameter
problem), echo, and the four NDP messages a host-facing router needs: router
solicitation/advertisement and neighbour solicitation/advertisement, with
the source/target link-layer address, prefix information and MTU options,
and the RDNSS and DNSSL options (RFC 8106) so guests can learn a DNS server
and search domains from the RA.
Unknown types parse as :class:`Icmpv6Other`; unknown NDP options are skipped
by their length, and a zero option length is rejected (RFC 4861 4.6: it
would loop forever).

The checksum covers the IPv6 pseudo-header, passed in as a folded sum
(``None`` skips verification when the link validated it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TypeAlias

from trionet.wire._types import BytesLike, WritableBuffer
from trionet.wire.checksum import ones_sum
from trionet.wire.domain_names import decode_names, encode_names
from trionet.wire.errors import ParseError

__all__ = [
    "ICMPV6_HEADER_LEN",
    "ICMPV6_QUOTE_LIMIT",
    "RA_MANAGED",
    "RA_OTHER",
    "Icmpv6DestUnreachable",
    "Icmpv6Echo",
    "Icmpv6Message",
    "Icmpv6Other",
    "Icmpv6PacketTooBig",
    "Icmpv6ParamProblem",
    "Icmpv6TimeExceeded",
    "NdpPrefixInfo",
    "NeighborAdvertisement",
    "NeighborSolicitation",
    "RouterAdvertisement",
    "RouterSolicitation",
    "icmpv6_quote",
    "parse_icmpv6",
]

ICMPV6_HEADER_LEN = 8
#: RFC 4443 2.4(c): an error must not make a packet exceed the minimum MTU,
#: so the quote gets 1280 minus the IPv6 and ICMPv6 headers.
ICMPV6_QUOTE_LIMIT = 1280 - 40 - ICMPV6_HEADER_LEN

TYPE_DEST_UNREACHABLE = 1
TYPE_PACKET_TOO_BIG = 2
TYPE_TIME_EXCEEDED = 3
TYPE_PARAM_PROBLEM = 4
TYPE_ECHO_REQUEST = 128
TYPE_ECHO_REPLY = 129
TYPE_ROUTER_SOLICITATION = 133
TYPE_ROUTER_ADVERTISEMENT = 134
TYPE_NEIGHBOR_SOLICITATION = 135
TYPE_NEIGHBOR_ADVERTISEMENT = 136

CODE_NO_ROUTE = 0
CODE_ADMIN_PROHIBITED = 1
CODE_ADDRESS_UNREACHABLE = 3
CODE_PORT_UNREACHABLE = 4

#: RouterAdvertisement.flags bits.
RA_MANAGED = 0x80
RA_OTHER = 0x40

OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2
OPT_PREFIX_INFO = 3
OPT_MTU = 5
OPT_RDNSS = 25
OPT_DNSSL = 31

_HEADER = struct.Struct("!BBHI")
_ECHO = struct.Struct("!BBHHH")
_RA = struct.Struct("!BBHBBHII")
_TARGET = struct.Struct("!BBHI16s")
_PREFIX = struct.Struct("!BBBBIII16s")
_MTU_OPT = struct.Struct("!BBHI")
_U32 = struct.Struct("!I")
_CHECKSUM = struct.Struct("!H")

_NA_ROUTER = 0x80000000
_NA_SOLICITED = 0x40000000
_NA_OVERRIDE = 0x20000000
_PI_ON_LINK = 0x80
_PI_AUTONOMOUS = 0x40


def _finish(
    buf: WritableBuffer, offset: int, end: int, payload: BytesLike, pseudo_sum: int
) -> int:
    # Every ICMPv6 header here is a multiple of 8 bytes long, so the payload
    # starts word-aligned and its sum adds to the header's directly.
    total = ones_sum(memoryview(buf)[offset:end], ones_sum(payload, pseudo_sum))
    _CHECKSUM.pack_into(buf, offset + 2, ~total & 0xFFFF)
    return end


def _lladdr_option(buf: WritableBuffer, pos: int, kind: int, lladdr: bytes | None) -> int:
    if lladdr is None:
        return pos
    struct.pack_into("!BB6s", buf, pos, kind, 1, lladdr)
    return pos + 8


@dataclass(frozen=True, slots=True)
class Icmpv6Echo:
    """Echo request (``request=True``) or reply; the echo data is the payload."""

    request: bool
    ident: int
    seq: int

    # A property, not a ClassVar: mypyc makes a dataclass's ClassVar a field (see
    # tests/test_classvar_attributes.py).
    @property
    def header_len(self) -> int:
        return ICMPV6_HEADER_LEN

    def reply(self) -> Icmpv6Echo:
        return Icmpv6Echo(False, self.ident, self.seq)

    def emit_into(
        self, buf: WritableBuffer, offset: int, payload: BytesLike, pseudo_sum: int
    ) -> int:
        """Write the header for ``payload`` (summed, not copied); return the end offset."""
        icmp_type = TYPE_ECHO_REQUEST if self.request else TYPE_ECHO_REPLY
        _ECHO.pack_into(buf, offset, icmp_type, 0, 0, self.ident, self.seq)
        return _finish(buf, offset, offset + 8, payload, pseudo_sum)

    def to_bytes(self, payload: BytesLike, pseudo_sum: int) -> bytes:
        return _to_bytes(self, payload, pseudo_sum)


@dataclass(frozen=True, slots=True)
class Icmpv6DestUnreachable:
    """Destination unreachable (code 4: port unreachable); the body quotes the packet."""

    code: int

    @property
    def header_len(self) -> int:
        return ICMPV6_HEADER_LEN

    def emit_into(
        self, buf: WritableBuffer, offset: int, payload: BytesLike, pseudo_sum: int
    ) -> int:
        _HEADER.pack_into(buf, offset, TYPE_DEST_UNREACHABLE, self.code, 0, 0)
        return _finish(buf, offset, offset + 8, payload, pseudo_sum)

    def to_bytes(self, payload: BytesLike, pseudo_sum: int) -> bytes:
        return _to_bytes(self, payload, pseudo_sum)


@dataclass(frozen=True, slots=True)
class Icmpv6PacketTooBig:
    """Packet too big with the MTU of the next hop (RFC 8201 path-MTU discovery)."""

    mtu: int

    @property
    def header_len(self) -> int:
        return ICMPV6_HEADER_LEN

    def emit_into(
        self, buf: WritableBuffer, offset: int, payload: BytesLike, pseudo_sum: int
    ) -> int:
        _HEADER.pack_into(buf, offset, TYPE_PACKET_TOO_BIG, 0, 0, self.mtu)
        return _finish(buf, offset, offset + 8, payload, pseudo_sum)

    def to_bytes(self, payload: BytesLike, pseudo_sum: int) -> bytes:
        return _to_bytes(self, payload, pseudo_sum)


@dataclass(frozen=True, slots=True)
class Icmpv6TimeExceeded:
    """Time exceeded: code 0 hop limit exceeded, 1 reassembly timed out."""

    code: int = 0

    @property
    def header_len(self) -> int:
        return ICMPV6_HEADER_LEN

    def emit_into(
        self, buf: WritableBuffer, offset: int, payload: BytesLike, pseudo_sum: int
    ) -> int:
        _HEADER.pack_into(buf, offset, TYPE_TIME_EXCEEDED, self.code, 0, 0)
        return _finish(buf, offset, offset + 8, payload, pseudo_sum)

    def to_bytes(self, payload: BytesLike, pseudo_sum: int) -> bytes:
        return _to_bytes(self, payload, pseudo_sum)


@dataclass(frozen=True, slots=True)
class Icmpv6ParamProblem:
    """Parameter problem; ``pointer`` is the offset of the bad byte in the quoted packet."""

    code: int
    pointer: int

    @property
    def header_len(self) -> int:
        return ICMPV6_HEADER_LEN

    def emit_into(
        self, buf: WritableBuffer, offset: int, payload: BytesLike, pseudo_sum: int
    ) -> int:
        _HEADER.pack_into(buf, offset, TYPE_PARAM_PROBLEM, self.code, 0, self.pointer)
        return _finish(buf, offset, offset + 8, payload, pseudo_sum)

    def to_bytes(self, payload: BytesLike, pseudo_sum: int) -> bytes:
        return _to_bytes(self, payload, pseudo_sum)


@dataclass(frozen=True, slots=True)
class Icmpv6Other:
    """Any other type (redirect, MLD, ...), with its 32-bit rest-of-header undecoded."""

    type: int
    code: int
    rest: int = 0

    @property
    def header_len(self) -> int:
        return ICMPV6_HEADER_LEN

    def emit_into(
        self, buf: WritableBuffer, offset: int, payload: BytesLike, pseudo_sum: int
    ) -> int:
        _HEADER.pack_into(buf, offset, self.type, self.code, 0, self.rest)
        return _finish(buf, offset, offset + 8, payload, pseudo_sum)

    def to_bytes(self, payload: BytesLike, pseudo_sum: int) -> bytes:
        return _to_bytes(self, payload, pseudo_sum)


@dataclass(frozen=True, slots=True)
class NdpPrefixInfo:
    """The prefix information option (RFC 4861 4.6.2); lifetimes in seconds."""

    prefix: bytes
    prefix_len: int = 64
    on_link: bool = True
    autonomous: bool = True
    valid_lifetime: int = 0xFFFFFFFF
    preferred_lifetime: int = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class RouterSolicitation:
    source_lladdr: bytes | None = None

    @property
    def header_len(self) -> int:
        return 8 if self.source_lladdr is None else 16

    def emit_into(
        self, buf: WritableBuffer, offset: int, payload: BytesLike, pseudo_sum: int
    ) -> int:
        _HEADER.pack_into(buf, offset, TYPE_ROUTER_SOLICITATION, 0, 0, 0)
        end = _lladdr_option(buf, offset + 8, OPT_SOURCE_LLADDR, self.source_lladdr)
        return _finish(buf, offset, end, payload, pseudo_sum)

    def to_bytes(self, payload: BytesLike, pseudo_sum: int) -> bytes:
        return _to_bytes(self, payload, pseudo_sum)


@dataclass(frozen=True, slots=True)
class RouterAdvertisement:
    """A router advertisement; ``flags`` is the raw M/O/H/Prf byte (see RA_MANAGED).

    ``dns_servers`` (16-byte addresses) travel in one RDNSS option with
    ``dns_lifetime`` seconds; the lifetime means nothing without servers.
    ``search_domains`` travel in one DNSSL option with ``dnssl_lifetime``.
    """

    cur_hop_limit: int = 64
    flags: int = 0
    router_lifetime: int = 1800
    reachable_time: int = 0
    retrans_timer: int = 0
    source_lladdr: bytes | None = None
    mtu: int | None = None
    prefixes: tuple[NdpPrefixInfo, ...] = ()
    dns_servers: tuple[bytes, ...] = ()
    dns_lifetime: int = 0
    search_domains: tuple[str, ...] = ()
    dnssl_lifetime: int = 0

    def _dnssl_names(self) -> bytes:
        names = encode_names(self.search_domains)
        return names + bytes(-(8 + len(names)) % 8)  # padded to whole 8-byte units

    @property
    def header_len(self) -> int:
        length = 16 + 32 * len(self.prefixes)
        if self.dns_servers:
            length += 8 + 16 * len(self.dns_servers)
        if self.search_domains:
            length += 8 + len(self._dnssl_names())
        if self.source_lladdr is not None:
            length += 8
        if self.mtu is not None:
            length += 8
        return length

    def emit_into(
        self, buf: WritableBuffer, offset: int, payload: BytesLike, pseudo_sum: int
    ) -> int:
        _RA.pack_into(
            buf,
            offset,
            TYPE_ROUTER_ADVERTISEMENT,
            0,
            0,
            self.cur_hop_limit,
            self.flags,
            self.router_lifetime,
            self.reachable_time,
            self.retrans_timer,
        )
        pos = _lladdr_option(buf, offset + 16, OPT_SOURCE_LLADDR, self.source_lladdr)
        if self.mtu is not None:
            _MTU_OPT.pack_into(buf, pos, OPT_MTU, 1, 0, self.mtu)
            pos += 8
        for info in self.prefixes:
            flags = (_PI_ON_LINK if info.on_link else 0) | (
                _PI_AUTONOMOUS if info.autonomous else 0
            )
            _PREFIX.pack_into(
                buf,
                pos,
                OPT_PREFIX_INFO,
                4,
                info.prefix_len,
                flags,
                info.valid_lifetime,
                info.preferred_lifetime,
                0,
                info.prefix,
            )
            pos += 32
        if self.dns_servers:
            count = len(self.dns_servers)
            _MTU_OPT.pack_into(buf, pos, OPT_RDNSS, 1 + 2 * count, 0, self.dns_lifetime)
            pos += 8
            for server in self.dns_servers:
                buf[pos : pos + 16] = server
                pos += 16
        if self.search_domains:
            names = self._dnssl_names()
            _MTU_OPT.pack_into(buf, pos, OPT_DNSSL, 1 + len(names) // 8, 0, self.dnssl_lifetime)
            buf[pos + 8 : pos + 8 + len(names)] = names
            pos += 8 + len(names)
        return _finish(buf, offset, pos, payload, pseudo_sum)

    def to_bytes(self, payload: BytesLike, pseudo_sum: int) -> bytes:
        return _to_bytes(self, payload, pseudo_sum)


@dataclass(frozen=True, slots=True)
class NeighborSolicitation:
    target: bytes
    source_lladdr: bytes | None = None

    @property
    def header_len(self) -> int:
        return 24 if self.source_lladdr is None else 32

    def emit_into(
        self, buf: WritableBuffer, offset: int, payload: BytesLike, pseudo_sum: int
    ) -> int:
        _TARGET.pack_into(buf, offset, TYPE_NEIGHBOR_SOLICITATION, 0, 0, 0, self.target)
        end = _lladdr_option(buf, offset + 24, OPT_SOURCE_LLADDR, self.source_lladdr)
        return _finish(buf, offset, end, payload, pseudo_sum)

    def to_bytes(self, payload: BytesLike, pseudo_sum: int) -> bytes:
        return _to_bytes(self, payload, pseudo_sum)


@dataclass(frozen=True, slots=True)
class NeighborAdvertisement:
    target: bytes
    router: bool = False
    solicited: bool = False
    override: bool = False
    target_lladdr: bytes | None = None

    @property
    def header_len(self) -> int:
        return 24 if self.target_lladdr is None else 32

    def emit_into(
        self, buf: WritableBuffer, offset: int, payload: BytesLike, pseudo_sum: int
    ) -> int:
        flags = (
            (_NA_ROUTER if self.router else 0)
            | (_NA_SOLICITED if self.solicited else 0)
            | (_NA_OVERRIDE if self.override else 0)
        )
        _TARGET.pack_into(buf, offset, TYPE_NEIGHBOR_ADVERTISEMENT, 0, 0, flags, self.target)
        end = _lladdr_option(buf, offset + 24, OPT_TARGET_LLADDR, self.target_lladdr)
        return _finish(buf, offset, end, payload, pseudo_sum)

    def to_bytes(self, payload: BytesLike, pseudo_sum: int) -> bytes:
        return _to_bytes(self, payload, pseudo_sum)


Icmpv6Message: TypeAlias = (
    Icmpv6Echo
    | Icmpv6DestUnreachable
    | Icmpv6PacketTooBig
    | Icmpv6TimeExceeded
    | Icmpv6ParamProblem
    | Icmpv6Other
    | RouterSolicitation
    | RouterAdvertisement
    | NeighborSolicitation
    | NeighborAdvertisement
)


def _to_bytes(message: Icmpv6Message, payload: BytesLike, pseudo_sum: int) -> bytes:
    header_len = message.header_len
    buf = bytearray(header_len + len(payload))
    message.emit_into(buf, 0, payload, pseudo_sum)
    buf[header_len:] = payload
    return bytes(buf)


def icmpv6_quote(packet: BytesLike) -> memoryview:
    """The part of an offending IPv6 packet an ICMPv6 error may quote (RFC 4443 2.4)."""
    return memoryview(packet)[:ICMPV6_QUOTE_LIMIT]


class _NdpOptions:
    """The NDP options found in one message (a scratch object, not a representation)."""

    __slots__ = (
        "dns_lifetime",
        "dns_servers",
        "dnssl_lifetime",
        "mtu",
        "prefixes",
        "search_domains",
        "source_lladdr",
        "target_lladdr",
    )

    def __init__(self) -> None:
        self.source_lladdr: bytes | None = None
        self.target_lladdr: bytes | None = None
        self.mtu: int | None = None
        self.prefixes: list[NdpPrefixInfo] = []
        self.dns_servers: list[bytes] = []
        self.dns_lifetime = 0
        self.search_domains: list[str] = []
        self.dnssl_lifetime = 0


def _parse_ndp_options(view: memoryview) -> _NdpOptions:
    found = _NdpOptions()
    pos = 0
    end = len(view)
    while pos < end:
        if pos + 2 > end:
            raise ParseError("ndp: truncated option")
        kind = view[pos]
        length = view[pos + 1] * 8
        if length == 0:
            raise ParseError("ndp: zero-length option")
        if pos + length > end:
            raise ParseError("ndp: option exceeds the message")
        if kind in (OPT_SOURCE_LLADDR, OPT_TARGET_LLADDR):
            # Ethernet addresses take one 8-byte unit; longer ones are other links'.
            if length != 8:
                raise ParseError("ndp: link-layer address option is not Ethernet")
            lladdr = bytes(view[pos + 2 : pos + 8])
            if kind == OPT_SOURCE_LLADDR:
                found.source_lladdr = lladdr
            else:
                found.target_lladdr = lladdr
        elif kind == OPT_MTU:
            if length != 8:
                raise ParseError("ndp: bad MTU option length")
            found.mtu = _U32.unpack_from(view, pos + 4)[0]
        elif kind == OPT_RDNSS:
            # 8 bytes of header, then whole 16-byte addresses (at least one).
            if length < 24 or (length - 8) % 16:
                raise ParseError("ndp: bad RDNSS option length")
            found.dns_lifetime = _U32.unpack_from(view, pos + 4)[0]
            found.dns_servers.extend(
                bytes(view[start : start + 16]) for start in range(pos + 8, pos + length, 16)
            )
        elif kind == OPT_DNSSL:
            if length < 16:
                raise ParseError("ndp: bad DNSSL option length")
            found.dnssl_lifetime = _U32.unpack_from(view, pos + 4)[0]
            # The names end in zero padding, which reads as empty names.
            names = decode_names(view[pos + 8 : pos + length])
            found.search_domains.extend(name for name in names if name)
        elif kind == OPT_PREFIX_INFO:
            if length != 32:
                raise ParseError("ndp: bad prefix information option length")
            _, _, prefix_len, flags, valid, preferred, _, prefix = _PREFIX.unpack_from(view, pos)
            found.prefixes.append(
                NdpPrefixInfo(
                    prefix,
                    prefix_len,
                    bool(flags & _PI_ON_LINK),
                    bool(flags & _PI_AUTONOMOUS),
                    valid,
                    preferred,
                )
            )
        pos += length
    return found


def _parse_ndp(icmp_type: int, view: memoryview) -> Icmpv6Message:
    if icmp_type == TYPE_ROUTER_SOLICITATION:
        opts = _parse_ndp_options(view[8:])
        return RouterSolicitation(opts.source_lladdr)
    if icmp_type == TYPE_ROUTER_ADVERTISEMENT:
        if len(view) < 16:
            raise ParseError("ndp: router advertisement shorter than 16 bytes")
        _, _, _, hop_limit, flags, lifetime, reachable, retrans = _RA.unpack_from(view)
        opts = _parse_ndp_options(view[16:])
        return RouterAdvertisement(
            hop_limit,
            flags,
            lifetime,
            reachable,
            retrans,
            opts.source_lladdr,
            opts.mtu,
            tuple(opts.prefixes),
            tuple(opts.dns_servers),
            opts.dns_lifetime,
            tuple(opts.search_domains),
            opts.dnssl_lifetime,
        )
    if len(view) < 24:
        raise ParseError("ndp: neighbour message shorter than 24 bytes")
    _, _, _, word, target = _TARGET.unpack_from(view)
    opts = _parse_ndp_options(view[24:])
    if icmp_type == TYPE_NEIGHBOR_SOLICITATION:
        return NeighborSolicitation(target, opts.source_lladdr)
    return NeighborAdvertisement(
        target,
        bool(word & _NA_ROUTER),
        bool(word & _NA_SOLICITED),
        bool(word & _NA_OVERRIDE),
        opts.target_lladdr,
    )


_NDP_TYPES = frozenset(
    {
        TYPE_ROUTER_SOLICITATION,
        TYPE_ROUTER_ADVERTISEMENT,
        TYPE_NEIGHBOR_SOLICITATION,
        TYPE_NEIGHBOR_ADVERTISEMENT,
    }
)


def parse_icmpv6(data: BytesLike, pseudo_sum: int | None) -> tuple[Icmpv6Message, memoryview]:
    """Parse an ICMPv6 message; return it and a view of its body.

    ``pseudo_sum`` is :func:`~trionet.wire.checksum.pseudo_header_v6` with
    next header 58 and ``len(data)``. The body is the echo data or the quoted
    packet of an error (parse it with ``parse_ipv6(body, truncated_ok=True)``);
    NDP messages consume their options, so their body is empty. NDP messages
    with a non-zero code are rejected (RFC 4861 6.1).
    """
    view = memoryview(data)
    if len(view) < ICMPV6_HEADER_LEN:
        raise ParseError("icmpv6: shorter than 8 bytes")
    if pseudo_sum is not None and ones_sum(view, pseudo_sum) != 0xFFFF:
        raise ParseError("icmpv6: bad checksum")
    icmp_type, code, _, rest = _HEADER.unpack_from(view)
    body = view[ICMPV6_HEADER_LEN:]
    message: Icmpv6Message
    if icmp_type in _NDP_TYPES:
        if code != 0:
            raise ParseError("ndp: non-zero code")
        return _parse_ndp(icmp_type, view), view[len(view) :]
    if icmp_type in (TYPE_ECHO_REQUEST, TYPE_ECHO_REPLY) and code == 0:
        message = Icmpv6Echo(icmp_type == TYPE_ECHO_REQUEST, rest >> 16, rest & 0xFFFF)
    elif icmp_type == TYPE_DEST_UNREACHABLE and rest == 0:
        message = Icmpv6DestUnreachable(code)
    elif icmp_type == TYPE_PACKET_TOO_BIG and code == 0:
        message = Icmpv6PacketTooBig(rest)
    elif icmp_type == TYPE_TIME_EXCEEDED and rest == 0:
        message = Icmpv6TimeExceeded(code)
    elif icmp_type == TYPE_PARAM_PROBLEM:
        message = Icmpv6ParamProblem(code, rest)
    else:
        # Includes known types with unused bits set, so re-emitting is exact.
        message = Icmpv6Other(icmp_type, code, rest)
    return message, body
