"""Ethernet II frames (IEEE 802.3 section 3.2.6), with one 802.1Q tag recognised.

A tagged frame is reported with its tag control information and the *inner*
EtherType, so a VLAN-tagged IPv4 frame is never mistaken for an untagged
one with garbage at offset 14. Frames whose type field is below 0x0600 are
802.3 length-framed (LLC); they are reported with that value as
``ethertype`` and the stack ignores them like any unknown type.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from trionet.wire._construct import positional_constructor
from trionet.wire._types import BytesLike, WritableBuffer
from trionet.wire.errors import ParseError

__all__ = [
    "ETHERTYPE_ARP",
    "ETHERTYPE_IPV4",
    "ETHERTYPE_IPV6",
    "ETHERTYPE_VLAN",
    "EthernetHeader",
    "parse_ethernet",
    "split_ethernet",
]

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = 0x8100
# 802.1ad service tags and the pre-standard QinQ value are read like 802.1Q.
_TAG_TYPES = frozenset({ETHERTYPE_VLAN, 0x88A8, 0x9100})

_UNTAGGED = struct.Struct("!6s6sH")
_TAGGED = struct.Struct("!6s6sHHH")


@dataclass(frozen=True, slots=True)
class EthernetHeader:
    """Destination and source MAC (6 packed bytes each) and the payload's EtherType."""

    dst: bytes
    src: bytes
    ethertype: int
    #: The 16-bit tag control information of an 802.1Q tag, or None if untagged.
    vlan_tci: int | None = None
    #: The tag's own type (0x8100, or 0x88A8 for 802.1ad); ignored when untagged.
    vlan_tpid: int = ETHERTYPE_VLAN

    @property
    def vlan_id(self) -> int | None:
        return None if self.vlan_tci is None else self.vlan_tci & 0x0FFF

    @property
    def header_len(self) -> int:
        return 14 if self.vlan_tci is None else 18

    def emit_into(self, buf: WritableBuffer, offset: int = 0) -> int:
        """Write the header at ``offset``; return the offset just past it."""
        if self.vlan_tci is None:
            _UNTAGGED.pack_into(buf, offset, self.dst, self.src, self.ethertype)
            return offset + 14
        _TAGGED.pack_into(
            buf, offset, self.dst, self.src, self.vlan_tpid, self.vlan_tci, self.ethertype
        )
        return offset + 18

    def to_bytes(self) -> bytes:
        buf = bytearray(self.header_len)
        self.emit_into(buf, 0)
        return bytes(buf)


_new_header = positional_constructor(EthernetHeader)


def split_ethernet(frame: BytesLike) -> tuple[bytes, int, int | None, int, bytes, memoryview]:
    """:func:`parse_ethernet` without building the header object.

    Returns ``(dst, ethertype, vlan_tci, vlan_tpid, src, payload)``: the
    stack reads these for every guest frame, and an :class:`EthernetHeader`
    would cost more than the rest of the Ethernet parse. The one place the
    frame is validated; ``parse_ethernet`` is built on it.
    """
    view = memoryview(frame)
    if len(view) < 14:
        raise ParseError("ethernet: frame shorter than 14 bytes")
    dst, src, ethertype = _UNTAGGED.unpack_from(view)
    if ethertype not in _TAG_TYPES:
        return dst, ethertype, None, ETHERTYPE_VLAN, src, view[14:]
    if len(view) < 18:
        raise ParseError("ethernet: truncated 802.1Q tag")
    _, _, tpid, tci, inner = _TAGGED.unpack_from(view)
    return dst, inner, tci, tpid, src, view[18:]


def parse_ethernet(frame: BytesLike) -> tuple[EthernetHeader, memoryview]:
    """Split a frame into its header and a zero-copy view of the payload.

    The payload may carry trailing padding up to the 60-byte minimum; the IP
    parsers trim it using their own length fields.
    """
    dst, ethertype, tci, tpid, src, payload = split_ethernet(frame)
    return _new_header(dst, src, ethertype, tci, tpid), payload
