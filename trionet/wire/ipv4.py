"""IPv4 header (RFC 791).

Options are skipped on parse (trionet never acts on them) and never emitted,
so an emitted header is always 20 bytes. The header checksum is verified on
parse and computed on emit. Fragment fields are reported as they are;
reassembly, if any, belongs to the stack.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from trionet.wire._construct import positional_constructor
from trionet.wire._types import BytesLike, WritableBuffer
from trionet.wire.checksum import internet_checksum
from trionet.wire.errors import ParseError

__all__ = [
    "IPV4_HEADER_LEN",
    "PROTO_ICMP",
    "PROTO_TCP",
    "PROTO_UDP",
    "Ipv4Fields",
    "Ipv4Header",
    "emit_ipv4_header",
    "parse_ipv4",
    "unpack_ipv4",
]

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17

IPV4_HEADER_LEN = 20
_HEADER = struct.Struct("!BBHHHBBH4s4s")
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

    # A property, not a ClassVar: mypyc makes a dataclass's ClassVar a field (see
    # tests/test_classvar_attributes.py).
    @property
    def header_len(self) -> int:
        return IPV4_HEADER_LEN

    @property
    def is_fragment(self) -> bool:
        return self.more_fragments or self.frag_offset != 0

    def emit_into(self, buf: WritableBuffer, offset: int = 0) -> int:
        """Write the 20-byte header with its checksum at ``offset``; return the end offset."""
        flags_frag = (self.frag_offset >> 3) | (_DF if self.dont_fragment else 0)
        if self.more_fragments:
            flags_frag |= _MF
        return emit_ipv4_header(
            buf,
            offset,
            src=self.src,
            dst=self.dst,
            protocol=self.protocol,
            payload_len=self.payload_len,
            ttl=self.ttl,
            ident=self.ident,
            flags_frag=flags_frag,
            dscp_ecn=self.dscp_ecn,
        )

    def to_bytes(self) -> bytes:
        buf = bytearray(IPV4_HEADER_LEN)
        self.emit_into(buf)
        return bytes(buf)


_new_header = positional_constructor(Ipv4Header)


def emit_ipv4_header(
    buf: WritableBuffer,
    offset: int,
    *,
    src: bytes,
    dst: bytes,
    protocol: int,
    payload_len: int,
    ttl: int = 64,
    ident: int = 0,
    flags_frag: int = _DF,
    dscp_ecn: int = 0,
) -> int:
    """Write a 20-byte header from raw field values; return the end offset.

    For builders that have no use for an :class:`Ipv4Header` object.
    ``flags_frag`` is the raw 16-bit flags and fragment-offset word. The
    checksum is summed from the numbers being packed, never read back from
    the buffer.
    """
    total_len = IPV4_HEADER_LEN + payload_len
    # The 32-bit addresses count as two 16-bit words each, modulo 0xFFFF.
    total = (
        0x4500
        + dscp_ecn
        + total_len
        + ident
        + flags_frag
        + (ttl << 8)
        + protocol
        + int.from_bytes(src, "big")
        + int.from_bytes(dst, "big")
    )
    folded = total % 0xFFFF or 0xFFFF
    _HEADER.pack_into(
        buf,
        offset,
        0x45,
        dscp_ecn,
        total_len,
        ident,
        flags_frag,
        ttl,
        protocol,
        ~folded & 0xFFFF,
        src,
        dst,
    )
    return offset + IPV4_HEADER_LEN


#: An :class:`Ipv4Header`'s fields in declaration order, as :func:`unpack_ipv4` gives them.
Ipv4Fields = tuple[bytes, bytes, int, int, int, int, bool, bool, int, int]


def unpack_ipv4(
    data: BytesLike, *, verify_checksum: bool = True, truncated_ok: bool = False
) -> tuple[Ipv4Fields, memoryview]:
    """:func:`parse_ipv4` without building the header object.

    The fields come as a tuple in :class:`Ipv4Header`'s order (``Ipv4Header(*fields)``
    builds it): the stack reads them for every guest datagram, and building the
    header object would cost as much as the parse. This is the one place a
    header is validated; ``parse_ipv4`` is built on it.
    """
    view = memoryview(data)
    if len(view) < IPV4_HEADER_LEN:
        raise ParseError("ipv4: shorter than 20 bytes")
    (ver_ihl, tos, total_len, ident, flags_frag, ttl, proto, checksum, src, dst) = (
        _HEADER.unpack_from(view)
    )
    if ver_ihl >> 4 != 4:
        raise ParseError("ipv4: version is not 4")
    ihl = (ver_ihl & 0x0F) * 4
    if ihl < IPV4_HEADER_LEN:
        raise ParseError("ipv4: header length below 20")
    if total_len < ihl:
        raise ParseError("ipv4: total length shorter than header")
    if total_len > len(view) and (not truncated_ok or ihl > len(view)):
        raise ParseError("ipv4: total length exceeds the frame")
    if verify_checksum:
        if ihl == IPV4_HEADER_LEN:
            # Sum the unpacked words instead of re-reading the bytes; the sum
            # includes the version nibble, so it is never 0 and "valid" is
            # exactly "divisible by 0xFFFF".
            total = (
                (ver_ihl << 8)
                + tos
                + total_len
                + ident
                + flags_frag
                + (ttl << 8)
                + proto
                + checksum
                + int.from_bytes(src, "big")
                + int.from_bytes(dst, "big")
            )
            if total % 0xFFFF:
                raise ParseError("ipv4: bad header checksum")
        elif internet_checksum(view[:ihl]) != 0:
            raise ParseError("ipv4: bad header checksum")
    fields = (
        src,
        dst,
        proto,
        total_len - ihl,
        ttl,
        ident,
        flags_frag & _DF != 0,
        flags_frag & _MF != 0,
        (flags_frag & 0x1FFF) << 3,
        tos,
    )
    return fields, view[ihl:total_len]  # a slice past the end stops at the end


def parse_ipv4(
    data: BytesLike, *, verify_checksum: bool = True, truncated_ok: bool = False
) -> tuple[Ipv4Header, memoryview]:
    """Parse an IPv4 header; return it and a zero-copy view of exactly its payload.

    Bytes past the total length (Ethernet padding) are trimmed. Pass
    ``verify_checksum=False`` only when the link has validated the header
    already. ``truncated_ok=True`` is for the datagram quoted in an ICMP
    error: the view then ends where the quote does, while ``payload_len``
    still says what the original carried.
    """
    fields, payload = unpack_ipv4(data, verify_checksum=verify_checksum, truncated_ok=truncated_ok)
    return _new_header(*fields), payload
