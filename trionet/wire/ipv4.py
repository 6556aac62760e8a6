"""IPv4 header (RFC 791).

Options are skipped on parse (trionet never acts on them) and never emitted,
so an emitted header is always 20 bytes. The header checksum is verified on
parse and computed on emit. Fragment fields are reported as they are;
reassembly, if any, belongs to the stack.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from trionet.wire._types import BytesLike, WritableBuffer
from trionet.wire.checksum import internet_checksum
from trionet.wire.errors import ParseError

__all__ = [
    "IPV4_HEADER_LEN",
    "PROTO_ICMP",
    "PROTO_TCP",
    "PROTO_UDP",
    "Ipv4Header",
    "parse_ipv4",
]

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17

IPV4_HEADER_LEN = 20
_HEADER = struct.Struct("!BBHHHBBH4s4s")
_CHECKSUM = struct.Struct("!H")
_DF = 0x4000
_MF = 0x2000


@dataclass(frozen=True, slots=True)
class Ipv4Header:
    """An IPv4 header as numbers; addresses are 4 packed bytes.

    ``payload_len`` is the length of what follows the header (total length
    minus header length); ``frag_offset`` is in bytes (a multiple of 8).
    """

    src: bytes
    dst: bytes
    protocol: int
    payload_len: int
    ttl: int = 64
    ident: int = 0
    dont_fragment: bool = False
    more_fragments: bool = False
    frag_offset: int = 0
    #: The former TOS byte: DSCP in the top six bits, ECN in the bottom two.
    dscp_ecn: int = 0

    header_len = IPV4_HEADER_LEN

    @property
    def is_fragment(self) -> bool:
        return self.more_fragments or self.frag_offset != 0

    def emit_into(self, buf: WritableBuffer, offset: int = 0) -> int:
        """Write the 20-byte header with its checksum at ``offset``; return the end offset."""
        flags_frag = (self.frag_offset >> 3) | (_DF if self.dont_fragment else 0)
        if self.more_fragments:
            flags_frag |= _MF
        _HEADER.pack_into(
            buf,
            offset,
            0x45,
            self.dscp_ecn,
            IPV4_HEADER_LEN + self.payload_len,
            self.ident,
            flags_frag,
            self.ttl,
            self.protocol,
            0,
            self.src,
            self.dst,
        )
        end = offset + IPV4_HEADER_LEN
        checksum = internet_checksum(memoryview(buf)[offset:end])
        _CHECKSUM.pack_into(buf, offset + 10, checksum)
        return end

    def to_bytes(self) -> bytes:
        buf = bytearray(IPV4_HEADER_LEN)
        self.emit_into(buf)
        return bytes(buf)


def parse_ipv4(data: BytesLike, *, verify_checksum: bool = True) -> tuple[Ipv4Header, memoryview]:
    """Parse an IPv4 header; return it and a zero-copy view of exactly its payload.

    Bytes past the total length (Ethernet padding) are trimmed. Pass
    ``verify_checksum=False`` only when the link has validated the header
    already.
    """
    view = memoryview(data)
    if len(view) < IPV4_HEADER_LEN:
        raise ParseError("ipv4: shorter than 20 bytes")
    (ver_ihl, tos, total_len, ident, flags_frag, ttl, proto, _, src, dst) = _HEADER.unpack_from(
        view
    )
    if ver_ihl >> 4 != 4:
        raise ParseError("ipv4: version is not 4")
    ihl = (ver_ihl & 0x0F) * 4
    if ihl < IPV4_HEADER_LEN:
        raise ParseError("ipv4: header length below 20")
    if total_len < ihl:
        raise ParseError("ipv4: total length shorter than header")
    if total_len > len(view):
        raise ParseError("ipv4: total length exceeds the frame")
    if verify_checksum and internet_checksum(view[:ihl]) != 0:
        raise ParseError("ipv4: bad header checksum")
    header = Ipv4Header(
        src,
        dst,
        proto,
        total_len - ihl,
        ttl,
        ident,
        bool(flags_frag & _DF),
        bool(flags_frag & _MF),
        (flags_frag & 0x1FFF) << 3,
        tos,
    )
    return header, view[ihl:total_len]
