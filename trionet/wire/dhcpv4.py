"""DHCPv4 messages (RFC 2131) and the options a server hands out (RFC 2132).

A :class:`DhcpMessage` is the fixed BOOTP part plus its options, kept as
``(code, value)`` pairs in order, one pair per code: options a client split
into several pieces, or continued in the ``file``/``sname`` fields (option
overload), are joined on parsing (RFC 3396), and values longer than 255
bytes are split again on emitting. The option *contents* are checked by
whoever uses them (:mod:`trionet.dhcp.v4`); here only the framing is, so a
message parses exactly as sent and emits exactly as built.

Helpers encode and decode the two structured options a server sends:
classless static routes (RFC 3442) and the domain search list (RFC 3397,
with compression pointers).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from trionet.wire._options import first_option
from trionet.wire._types import BytesLike
from trionet.wire.domain_names import decode_names, encode_names
from trionet.wire.errors import ParseError

__all__ = [
    "BOOTREPLY",
    "BOOTREQUEST",
    "DHCP_CLIENT_PORT",
    "DHCP_MIN_MESSAGE",
    "DHCP_SERVER_PORT",
    "FLAG_BROADCAST",
    "ClasslessRoute",
    "DhcpMessage",
    "MessageType",
    "Option",
    "decode_classless_routes",
    "decode_domain_search",
    "encode_classless_routes",
    "encode_domain_search",
    "parse_dhcpv4",
]

DHCP_SERVER_PORT = 67
DHCP_CLIENT_PORT = 68
BOOTREQUEST = 1
BOOTREPLY = 2
FLAG_BROADCAST = 0x8000
MAGIC_COOKIE = b"\x63\x82\x53\x63"
#: BOOTP's fixed part and the cookie: where options start.
FIXED_LEN = 236
OPTIONS_OFFSET = FIXED_LEN + 4
#: RFC 1542 2.1: relays and old clients expect BOOTP messages of 300 bytes or more.
DHCP_MIN_MESSAGE = 300
#: RFC 2131 2: the smallest message every client must accept (IP and UDP headers included).
DHCP_MIN_DATAGRAM = 576

_FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
_PAD = 0
_END = 255
_OVERLOAD_FILE = 1
_OVERLOAD_SNAME = 2
_ZERO4 = bytes(4)


class MessageType(enum.IntEnum):
    """Option 53's values."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Option(enum.IntEnum):
    """The option codes trionet reads or writes."""

    SUBNET_MASK = 1
    ROUTER = 3
    DNS_SERVERS = 6
    HOST_NAME = 12
    DOMAIN_NAME = 15
    INTERFACE_MTU = 26
    BROADCAST_ADDRESS = 28
    REQUESTED_ADDRESS = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_LIST = 55
    MESSAGE = 56
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    CLIENT_ID = 61
    DOMAIN_SEARCH = 119
    CLASSLESS_ROUTES = 121
    #: Windows asks for this one, with option 121's format (before RFC 3442 had a number).
    MS_CLASSLESS_ROUTES = 249


@dataclass(frozen=True, slots=True)
class DhcpMessage:
    """One DHCP message; addresses are 4 packed bytes, ``chaddr`` all 16 bytes of its field."""

    op: int
    xid: int
    chaddr: bytes
    htype: int = 1
    hlen: int = 6
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: bytes = _ZERO4
    yiaddr: bytes = _ZERO4
    siaddr: bytes = _ZERO4
    giaddr: bytes = _ZERO4
    sname: bytes = bytes(64)
    file: bytes = bytes(128)
    options: tuple[tuple[int, bytes], ...] = ()

    def option(self, code: int) -> bytes | None:
        """The option's value (pieces already joined), or None."""
        return first_option(self.options, code)

    @property
    def message_type(self) -> int | None:
        """Option 53's value, or None when absent or not one byte."""
        value = self.option(Option.MESSAGE_TYPE)
        return value[0] if value is not None and len(value) == 1 else None

    @property
    def hardware_address(self) -> bytes:
        """The client's hardware address (``chaddr`` cut to ``hlen``)."""
        return self.chaddr[: min(self.hlen, 16)]

    def to_bytes(self) -> bytes:
        """The message, options ended by END and padded to 300 bytes.

        Raises ValueError for a field that does not fit or an option code
        that is PAD or END.
        """
        fixed = _FIXED.pack(
            self.op,
            self.htype,
            self.hlen,
            self.hops,
            self.xid,
            self.secs,
            self.flags,
            self.ciaddr,
            self.yiaddr,
            self.siaddr,
            self.giaddr,
            _exact(self.chaddr, 16, "chaddr"),
            _exact(self.sname, 64, "sname"),
            _exact(self.file, 128, "file"),
        )
        out = bytearray(fixed)
        out += MAGIC_COOKIE
        for code, value in self.options:
            if code in (_PAD, _END) or not 0 <= code <= 255:
                raise ValueError(f"dhcp: {code} is not an option code")
            # RFC 3396: a value over 255 bytes travels as consecutive pieces.
            if not value:
                out += bytes((code, 0))
            for start in range(0, len(value), 255):
                piece = value[start : start + 255]
                out += bytes((code, len(piece)))
                out += piece
        out.append(_END)
        if len(out) < DHCP_MIN_MESSAGE:
            out += bytes(DHCP_MIN_MESSAGE - len(out))
        return bytes(out)


def _exact(value: bytes, size: int, name: str) -> bytes:
    if len(value) != size:
        raise ValueError(f"dhcp: {name} must be {size} bytes, not {len(value)}")
    return value


def _walk_options(view: memoryview, found: dict[int, bytearray]) -> None:
    """Collect ``view``'s options into ``found`` up to END, joining repeats."""
    pos = 0
    end = len(view)
    while pos < end:
        code = view[pos]
        if code == _PAD:
            pos += 1
            continue
        if code == _END:
            return
        if pos + 2 > end:
            raise ParseError("dhcp: truncated option")
        length = view[pos + 1]
        if pos + 2 + length > end:
            raise ParseError("dhcp: option exceeds the message")
        value = found.get(code)
        if value is None:
            found[code] = bytearray(view[pos + 2 : pos + 2 + length])
        else:
            value += view[pos + 2 : pos + 2 + length]  # RFC 3396 concatenation
        pos += 2 + length


def parse_dhcpv4(data: BytesLike) -> DhcpMessage:
    """Parse a DHCP message (a UDP payload); ParseError when malformed.

    A message without the END option is accepted (some clients omit it);
    everything after END is padding.
    """
    view = memoryview(data)
    if len(view) < OPTIONS_OFFSET:
        raise ParseError("dhcp: shorter than 240 bytes")
    if view[FIXED_LEN:OPTIONS_OFFSET] != MAGIC_COOKIE:
        raise ParseError("dhcp: no magic cookie")
    (
        op,
        htype,
        hlen,
        hops,
        xid,
        secs,
        flags,
        ciaddr,
        yiaddr,
        siaddr,
        giaddr,
        chaddr,
        sname,
        file,
    ) = _FIXED.unpack_from(view)
    found: dict[int, bytearray] = {}
    _walk_options(view[OPTIONS_OFFSET:], found)
    overload = found.get(Option.OVERLOAD)
    if overload is not None and len(overload) == 1 and overload[0] in (1, 2, 3):
        # RFC 2132 9.3: the options continue in file, then sname. The
        # overload option itself is consumed, so re-emitting the parsed
        # message (options in the options field, file and sname as raw
        # bytes) parses back to the same message.
        del found[Option.OVERLOAD]
        if overload[0] & _OVERLOAD_FILE:
            _walk_options(view[108:236], found)
        if overload[0] & _OVERLOAD_SNAME:
            _walk_options(view[44:108], found)
        # The overload option has done its work once file and sname are
        # joined in (one found inside them means nothing: only the options
        # field may overload, RFC 2131 4.1); kept, a re-emitted message
        # would overload again.
        found.pop(Option.OVERLOAD, None)
    return DhcpMessage(
        op,
        xid,
        chaddr,
        htype,
        hlen,
        hops,
        secs,
        flags,
        ciaddr,
        yiaddr,
        siaddr,
        giaddr,
        sname,
        file,
        tuple((code, bytes(value)) for code, value in found.items()),
    )


# -- structured options ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClasslessRoute:
    """One RFC 3442 route; a router of 0.0.0.0 means "on the link"."""

    destination: bytes
    prefix_len: int
    router: bytes


def encode_classless_routes(routes: Sequence[ClasslessRoute]) -> bytes:
    """Option 121's value: each route as width, significant destination octets, router."""
    out = bytearray()
    for route in routes:
        if not 0 <= route.prefix_len <= 32:
            raise ValueError(f"dhcp: prefix length {route.prefix_len} is outside 0..32")
        significant = (route.prefix_len + 7) // 8
        out.append(route.prefix_len)
        out += route.destination[:significant]
        out += route.router
    return bytes(out)


def decode_classless_routes(data: BytesLike) -> tuple[ClasslessRoute, ...]:
    """Option 121's routes (destinations zero-filled to 4 bytes); ParseError when malformed."""
    view = memoryview(data)
    routes: list[ClasslessRoute] = []
    pos = 0
    while pos < len(view):
        width = view[pos]
        if width > 32:
            raise ParseError("dhcp: classless route wider than 32 bits")
        significant = (width + 7) // 8
        if pos + 1 + significant + 4 > len(view):
            raise ParseError("dhcp: truncated classless route")
        destination = bytes(view[pos + 1 : pos + 1 + significant]).ljust(4, b"\0")
        router = bytes(view[pos + 1 + significant : pos + 5 + significant])
        routes.append(ClasslessRoute(destination, width, router))
        pos += 5 + significant
    return tuple(routes)


def encode_domain_search(names: Sequence[str]) -> bytes:
    """Option 119's value (RFC 3397), compressed."""
    return encode_names(names, compress=True)


def decode_domain_search(data: BytesLike) -> tuple[str, ...]:
    return decode_names(data, pointers=True)
