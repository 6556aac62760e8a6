"""IPv6 fixed header and extension-header chain (RFC 8200).

The parser walks hop-by-hop, routing, fragment and destination-options
headers, at most :data:`MAX_EXTENSION_HEADERS` of them (a guest could chain
hundreds of empty headers to make every frame expensive), and reports the
upper-layer protocol with a view of its bytes (for a fragment other than the
first: the protocol the fragment header names, and the fragment's data). Only the fragment header's
fields are kept: the stack needs them to drop or reassemble fragments, and
nothing else in the chain changes how trionet handles a packet.

Emit writes the fixed header, plus a fragment header when the
representation has one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from trionet.wire._construct import positional_constructor
from trionet.wire._types import BytesLike, WritableBuffer
from trionet.wire.errors import ParseError

__all__ = [
    "IPV6_HEADER_LEN",
    "MAX_EXTENSION_HEADERS",
    "NEXT_HEADER_DEST_OPTS",
    "NEXT_HEADER_FRAGMENT",
    "NEXT_HEADER_HOP_BY_HOP",
    "NEXT_HEADER_ICMPV6",
    "NEXT_HEADER_NONE",
    "NEXT_HEADER_ROUTING",
    "NEXT_HEADER_TCP",
    "NEXT_HEADER_UDP",
    "Ipv6Fragment",
    "Ipv6Header",
    "parse_ipv6",
]

IPV6_HEADER_LEN = 40
MAX_EXTENSION_HEADERS = 8

NEXT_HEADER_HOP_BY_HOP = 0
NEXT_HEADER_TCP = 6
NEXT_HEADER_UDP = 17
NEXT_HEADER_ROUTING = 43
NEXT_HEADER_FRAGMENT = 44
NEXT_HEADER_ICMPV6 = 58
NEXT_HEADER_NONE = 59
NEXT_HEADER_DEST_OPTS = 60

_FIXED = struct.Struct("!IHBB16s16s")
_FRAGMENT = struct.Struct("!BBHI")
_FRAGMENT_LEN = 8
# Headers whose length byte counts 8-octet units beyond the first 8.
_OPTION_LIKE = frozenset({NEXT_HEADER_HOP_BY_HOP, NEXT_HEADER_ROUTING, NEXT_HEADER_DEST_OPTS})


@dataclass(frozen=True, slots=True)
class Ipv6Fragment:
    """The fragment header's fields; ``offset`` is in bytes (a multiple of 8)."""

    ident: int
    offset: int = 0
    more: bool = False


@dataclass(frozen=True, slots=True)
class Ipv6Header:
    """An IPv6 header as numbers; addresses are 16 packed bytes.

    ``next_header`` is the upper-layer protocol *after* the extension chain
    and ``payload_len`` the length of the upper-layer bytes, so callers never
    see the chain unless they ask for ``fragment``.
    """

    src: bytes
    dst: bytes
    next_header: int
    payload_len: int
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0
    fragment: Ipv6Fragment | None = None

    @property
    def header_len(self) -> int:
        """Bytes ``emit_into`` writes: fixed header, plus 8 with a fragment header."""
        return IPV6_HEADER_LEN if self.fragment is None else IPV6_HEADER_LEN + _FRAGMENT_LEN

    def emit_into(self, buf: WritableBuffer, offset: int = 0) -> int:
        """Write the header (and fragment header) at ``offset``; return the end offset."""
        first_word = 0x60000000 | (self.traffic_class << 20) | self.flow_label
        frag = self.fragment
        if frag is None:
            _FIXED.pack_into(
                buf,
                offset,
                first_word,
                self.payload_len,
                self.next_header,
                self.hop_limit,
                self.src,
                self.dst,
            )
            return offset + IPV6_HEADER_LEN
        _FIXED.pack_into(
            buf,
            offset,
            first_word,
            self.payload_len + _FRAGMENT_LEN,
            NEXT_HEADER_FRAGMENT,
            self.hop_limit,
            self.src,
            self.dst,
        )
        _FRAGMENT.pack_into(
            buf,
            offset + IPV6_HEADER_LEN,
            self.next_header,
            0,
            frag.offset | (1 if frag.more else 0),
            frag.ident,
        )
        return offset + IPV6_HEADER_LEN + _FRAGMENT_LEN

    def to_bytes(self) -> bytes:
        buf = bytearray(self.header_len)
        self.emit_into(buf)
        return bytes(buf)


_new_header = positional_constructor(Ipv6Header)


def parse_ipv6(data: BytesLike, *, truncated_ok: bool = False) -> tuple[Ipv6Header, memoryview]:
    """Parse the fixed header and extension chain; return it and the upper-layer bytes.

    Bytes past the payload length (Ethernet padding) are trimmed. Jumbograms
    (payload length 0 with a hop-by-hop jumbo option) are rejected: no link
    trionet serves carries them. ``truncated_ok=True`` is for the packet
    quoted in an ICMPv6 error: the view then ends where the quote does (the
    extension headers must still be whole), while ``payload_len`` still says
    what the original carried.
    """
    view = memoryview(data)
    if len(view) < IPV6_HEADER_LEN:
        raise ParseError("ipv6: shorter than 40 bytes")
    first_word, payload_len, next_header, hop_limit, src, dst = _FIXED.unpack_from(view)
    if first_word >> 28 != 6:
        raise ParseError("ipv6: version is not 6")
    declared_end = end = IPV6_HEADER_LEN + payload_len
    if end > len(view):
        if not truncated_ok:
            raise ParseError("ipv6: payload length exceeds the frame")
        end = len(view)
    pos = IPV6_HEADER_LEN
    fragment: Ipv6Fragment | None = None
    count = 0
    while next_header in _OPTION_LIKE or next_header == NEXT_HEADER_FRAGMENT:
        count += 1
        if count > MAX_EXTENSION_HEADERS:
            raise ParseError("ipv6: extension header chain too long")
        if next_header == NEXT_HEADER_HOP_BY_HOP and pos != IPV6_HEADER_LEN:
            raise ParseError("ipv6: hop-by-hop header not first")
        if pos + 8 > end:
            raise ParseError("ipv6: truncated extension header")
        if next_header == NEXT_HEADER_FRAGMENT:
            if fragment is not None:
                raise ParseError("ipv6: two fragment headers")
            next_header, _, offset_flags, ident = _FRAGMENT.unpack_from(view, pos)
            fragment = Ipv6Fragment(ident, offset_flags & 0xFFF8, bool(offset_flags & 1))
            pos += _FRAGMENT_LEN
            if fragment.offset:
                # A later fragment holds data from the middle of the packet:
                # what follows is not a header even if next_header names one.
                break
        else:
            ext_len = (view[pos + 1] + 1) * 8
            if pos + ext_len > end:
                raise ParseError("ipv6: extension header exceeds the payload")
            next_header = view[pos]
            pos += ext_len
    header = _new_header(
        src,
        dst,
        next_header,
        declared_end - pos,
        hop_limit,
        (first_word >> 20) & 0xFF,
        first_word & 0xFFFFF,
        fragment,
    )
    return header, view[pos:end]
