"""UDP header (RFC 768), with the checksum over the pseudo-header.

Transport codecs never see IP addresses: callers pass the folded
pseudo-header sum from :mod:`trionet.wire.checksum`, computed with the
length of the buffer they hand over. ``None`` skips verification, for links
that validated the checksum already (virtio-net DATA_VALID / offload).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from trionet.wire._construct import positional_constructor
from trionet.wire._types import BytesLike, WritableBuffer
from trionet.wire.checksum import combine_sums, ones_sum
from trionet.wire.errors import ParseError

__all__ = ["UDP_HEADER_LEN", "UdpHeader", "parse_udp"]

UDP_HEADER_LEN = 8
_HEADER = struct.Struct("!HHHH")
_CHECKSUM = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class UdpHeader:
    """Source and destination port; the length comes from the payload."""

    src_port: int
    dst_port: int

    # A property, not a ClassVar: mypyc makes a dataclass's ClassVar a field (see
    # tests/test_classvar_attributes.py).
    @property
    def header_len(self) -> int:
        return UDP_HEADER_LEN

    def emit_into(
        self,
        buf: WritableBuffer,
        offset: int,
        payload: BytesLike,
        pseudo_sum: int,
        *,
        partial: bool = False,
    ) -> int:
        """Write the 8-byte header for ``payload`` (which is summed, not copied).

        ``pseudo_sum`` must cover length ``8 + len(payload)``. With
        ``partial=True`` the checksum field holds just the pseudo-header sum,
        for a link that finishes the checksum (virtio-net NEEDS_CSUM).
        Returns the offset just past the header.
        """
        length = UDP_HEADER_LEN + len(payload)
        if partial:
            _HEADER.pack_into(buf, offset, self.src_port, self.dst_port, length, pseudo_sum)
            return offset + UDP_HEADER_LEN
        # Summing the header as numbers avoids slicing the buffer back out.
        total = combine_sums(ones_sum(payload, pseudo_sum), self.src_port + self.dst_port + length)
        checksum = ~total & 0xFFFF
        # RFC 768: a computed 0 is sent as all ones, since 0 means "no checksum".
        _HEADER.pack_into(buf, offset, self.src_port, self.dst_port, length, checksum or 0xFFFF)
        return offset + UDP_HEADER_LEN

    def to_bytes(self, payload: BytesLike, pseudo_sum: int, *, partial: bool = False) -> bytes:
        """Header and payload joined (for tests and rare paths; the hot path uses writev)."""
        buf = bytearray(UDP_HEADER_LEN + len(payload))
        self.emit_into(buf, 0, payload, pseudo_sum, partial=partial)
        buf[UDP_HEADER_LEN:] = payload
        return bytes(buf)


_new_header = positional_constructor(UdpHeader)


def parse_udp(
    data: BytesLike, pseudo_sum: int | None, *, zero_checksum_ok: bool = True
) -> tuple[UdpHeader, memoryview]:
    """Parse a UDP datagram; return the header and a zero-copy view of its payload.

    ``pseudo_sum`` is computed with ``len(data)`` as the length; a UDP length
    shorter than the buffer is honoured (the rest is trimmed) and the sum
    adjusted. ``zero_checksum_ok`` allows the IPv4 "no checksum" value 0;
    pass False for IPv6, where a zero checksum is invalid (RFC 8200 8.1).
    """
    view = memoryview(data)
    if len(view) < UDP_HEADER_LEN:
        raise ParseError("udp: shorter than 8 bytes")
    src_port, dst_port, length, checksum = _HEADER.unpack_from(view)
    if length < UDP_HEADER_LEN or length > len(view):
        raise ParseError("udp: bad length field")
    if length < len(view):
        if pseudo_sum is not None:
            # Replace the buffer length in the pseudo-header sum by the UDP length.
            pseudo_sum = combine_sums(combine_sums(pseudo_sum, ~len(view) & 0xFFFF), length)
        view = view[:length]
    if checksum == 0:
        if not zero_checksum_ok:
            raise ParseError("udp: zero checksum not allowed here")
    elif pseudo_sum is not None and ones_sum(view, pseudo_sum) != 0xFFFF:
        raise ParseError("udp: bad checksum")
    return _new_header(src_port, dst_port), view[UDP_HEADER_LEN:]
