"""ICMPv4 (RFC 792, RFC 1191): echo, destination unreachable, time exceeded.

Each message type is its own small frozen dataclass; types trionet does not
act on (redirect, parameter problem, timestamps...) parse as
:class:`Icmpv4Other` so nothing valid is rejected. The 4-byte "rest of
header" is decoded per type; the message body (echo data, or the quoted
offending datagram of an error) is returned as a view, never copied.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TypeAlias

from trionet.wire._types import BytesLike, WritableBuffer
from trionet.wire.checksum import combine_sums, internet_checksum, ones_sum
from trionet.wire.errors import ParseError

__all__ = [
    "ICMPV4_HEADER_LEN",
    "ICMPV4_QUOTE_LIMIT",
    "Icmpv4DestUnreachable",
    "Icmpv4Echo",
    "Icmpv4Message",
    "Icmpv4Other",
    "Icmpv4TimeExceeded",
    "icmpv4_quote",
    "parse_icmpv4",
]

ICMPV4_HEADER_LEN = 8
#: RFC 1812 4.3.2.3: an error datagram should not exceed 576 bytes, so the
#: quote gets what is left after a 20-byte IPv4 header and the ICMP header.
ICMPV4_QUOTE_LIMIT = 576 - 20 - ICMPV4_HEADER_LEN

TYPE_ECHO_REPLY = 0
TYPE_DEST_UNREACHABLE = 3
TYPE_ECHO_REQUEST = 8
TYPE_TIME_EXCEEDED = 11

CODE_NET_UNREACHABLE = 0
CODE_HOST_UNREACHABLE = 1
CODE_PROTOCOL_UNREACHABLE = 2
CODE_PORT_UNREACHABLE = 3
CODE_FRAG_NEEDED = 4
CODE_ADMIN_PROHIBITED = 13

_HEADER = struct.Struct("!BBHI")
_ECHO = struct.Struct("!BBHHH")
_UNREACH = struct.Struct("!BBHHH")


def _finish(buf: WritableBuffer, offset: int, payload: BytesLike, header_words: int) -> int:
    # The checksum field was written as 0; sum the numbers we packed plus the
    # payload instead of slicing the header back out of the buffer.
    checksum = ~combine_sums(ones_sum(payload), header_words) & 0xFFFF
    struct.pack_into("!H", buf, offset + 2, checksum)
    return offset + ICMPV4_HEADER_LEN


@dataclass(frozen=True, slots=True)
class Icmpv4Echo:
    """Echo request (``request=True``) or reply; the echo data is the payload."""

    request: bool
    ident: int
    seq: int

    # A property, not a ClassVar: mypyc makes a dataclass's ClassVar a field (see
    # tests/test_classvar_attributes.py).
    @property
    def header_len(self) -> int:
        return ICMPV4_HEADER_LEN

    def reply(self) -> Icmpv4Echo:
        return Icmpv4Echo(False, self.ident, self.seq)

    def emit_into(self, buf: WritableBuffer, offset: int, payload: BytesLike) -> int:
        """Write the 8-byte header for ``payload`` (summed, not copied); return the end."""
        icmp_type = TYPE_ECHO_REQUEST if self.request else TYPE_ECHO_REPLY
        _ECHO.pack_into(buf, offset, icmp_type, 0, 0, self.ident, self.seq)
        return _finish(buf, offset, payload, (icmp_type << 8) + self.ident + self.seq)

    def to_bytes(self, payload: BytesLike = b"") -> bytes:
        return _to_bytes(self, payload)


@dataclass(frozen=True, slots=True)
class Icmpv4DestUnreachable:
    """Destination unreachable; ``next_hop_mtu`` matters for code 4 (RFC 1191)."""

    code: int
    next_hop_mtu: int = 0

    @property
    def header_len(self) -> int:
        return ICMPV4_HEADER_LEN

    @classmethod
    def frag_needed(cls, mtu: int) -> Icmpv4DestUnreachable:
        """Fragmentation needed and DF set: the path-MTU discovery signal."""
        return cls(CODE_FRAG_NEEDED, mtu)

    def emit_into(self, buf: WritableBuffer, offset: int, payload: BytesLike) -> int:
        _UNREACH.pack_into(buf, offset, TYPE_DEST_UNREACHABLE, self.code, 0, 0, self.next_hop_mtu)
        words = (TYPE_DEST_UNREACHABLE << 8) + self.code + self.next_hop_mtu
        return _finish(buf, offset, payload, words)

    def to_bytes(self, payload: BytesLike = b"") -> bytes:
        return _to_bytes(self, payload)


@dataclass(frozen=True, slots=True)
class Icmpv4TimeExceeded:
    """Time exceeded: code 0 TTL expired in transit, 1 reassembly timed out."""

    code: int = 0

    @property
    def header_len(self) -> int:
        return ICMPV4_HEADER_LEN

    def emit_into(self, buf: WritableBuffer, offset: int, payload: BytesLike) -> int:
        _HEADER.pack_into(buf, offset, TYPE_TIME_EXCEEDED, self.code, 0, 0)
        return _finish(buf, offset, payload, (TYPE_TIME_EXCEEDED << 8) + self.code)

    def to_bytes(self, payload: BytesLike = b"") -> bytes:
        return _to_bytes(self, payload)


@dataclass(frozen=True, slots=True)
class Icmpv4Other:
    """Any other type, with its 32-bit "rest of header" field undecoded."""

    type: int
    code: int
    rest: int = 0

    @property
    def header_len(self) -> int:
        return ICMPV4_HEADER_LEN

    def emit_into(self, buf: WritableBuffer, offset: int, payload: BytesLike) -> int:
        _HEADER.pack_into(buf, offset, self.type, self.code, 0, self.rest)
        words = (self.type << 8) + self.code + (self.rest >> 16) + (self.rest & 0xFFFF)
        return _finish(buf, offset, payload, words)

    def to_bytes(self, payload: BytesLike = b"") -> bytes:
        return _to_bytes(self, payload)


Icmpv4Message: TypeAlias = Icmpv4Echo | Icmpv4DestUnreachable | Icmpv4TimeExceeded | Icmpv4Other


def _to_bytes(message: Icmpv4Message, payload: BytesLike) -> bytes:
    buf = bytearray(ICMPV4_HEADER_LEN + len(payload))
    message.emit_into(buf, 0, payload)
    buf[ICMPV4_HEADER_LEN:] = payload
    return bytes(buf)


def icmpv4_quote(datagram: BytesLike) -> memoryview:
    """The part of an offending IPv4 datagram an ICMPv4 error may quote (RFC 1812).

    As much as fits in a 576-byte error, which always includes the IP header
    and the first 8 bytes of its payload that RFC 792 requires.
    """
    return memoryview(datagram)[:ICMPV4_QUOTE_LIMIT]


def parse_icmpv4(
    data: BytesLike, *, verify_checksum: bool = True
) -> tuple[Icmpv4Message, memoryview]:
    """Parse an ICMPv4 message; return it and a view of its body.

    For errors the body is the quoted datagram (its IPv4 header first),
    usually truncated: parse it with ``parse_ipv4(body, truncated_ok=True)``.
    """
    view = memoryview(data)
    if len(view) < ICMPV4_HEADER_LEN:
        raise ParseError("icmpv4: shorter than 8 bytes")
    if verify_checksum and internet_checksum(view) != 0:
        raise ParseError("icmpv4: bad checksum")
    icmp_type, code, _, rest = _HEADER.unpack_from(view)
    message: Icmpv4Message
    if icmp_type in (TYPE_ECHO_REQUEST, TYPE_ECHO_REPLY) and code == 0:
        message = Icmpv4Echo(icmp_type == TYPE_ECHO_REQUEST, rest >> 16, rest & 0xFFFF)
    elif icmp_type == TYPE_DEST_UNREACHABLE and rest >> 16 == 0:
        message = Icmpv4DestUnreachable(code, rest & 0xFFFF)
    elif icmp_type == TYPE_TIME_EXCEEDED and rest == 0:
        message = Icmpv4TimeExceeded(code)
    else:
        # Includes known types with non-zero codes or unused bits, so that
        # emitting what was parsed reproduces the same bytes.
        message = Icmpv4Other(icmp_type, code, rest)
    return message, view[ICMPV4_HEADER_LEN:]
