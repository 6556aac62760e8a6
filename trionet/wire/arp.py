"""ARP for IPv4 over Ethernet (RFC 826): the only hardware/protocol pair trionet answers."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from trionet.wire._types import BytesLike, WritableBuffer
from trionet.wire.errors import ParseError

__all__ = ["ARP_LEN", "ArpOperation", "ArpPacket", "parse_arp"]

ARP_LEN = 28
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_HTYPE_ETHERNET = 1
_PTYPE_IPV4 = 0x0800


class ArpOperation(enum.IntEnum):
    REQUEST = 1
    REPLY = 2


@dataclass(frozen=True, slots=True)
class ArpPacket:
    """An Ethernet/IPv4 ARP packet; MACs are 6 packed bytes, addresses 4."""

    operation: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes

    # A property, not a ClassVar: mypyc makes a dataclass's ClassVar a field (see
    # tests/test_classvar_attributes.py).
    @property
    def header_len(self) -> int:
        return ARP_LEN

    def emit_into(self, buf: WritableBuffer, offset: int = 0) -> int:
        """Write the packet at ``offset``; return the offset just past it."""
        _ARP.pack_into(
            buf,
            offset,
            _HTYPE_ETHERNET,
            _PTYPE_IPV4,
            6,
            4,
            self.operation,
            self.sender_mac,
            self.sender_ip,
            self.target_mac,
            self.target_ip,
        )
        return offset + ARP_LEN

    def to_bytes(self) -> bytes:
        buf = bytearray(ARP_LEN)
        self.emit_into(buf)
        return bytes(buf)


def parse_arp(data: BytesLike) -> ArpPacket:
    """Parse an ARP packet; trailing Ethernet padding is ignored.

    Any operation code is reported (the stack answers only requests); other
    hardware or protocol types are rejected because their address lengths
    differ and nothing in trionet could use them.
    """
    view = memoryview(data)
    if len(view) < ARP_LEN:
        raise ParseError("arp: packet shorter than 28 bytes")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(view)
    if htype != _HTYPE_ETHERNET or ptype != _PTYPE_IPV4 or hlen != 6 or plen != 4:
        raise ParseError("arp: not Ethernet/IPv4")
    return ArpPacket(op, sha, spa, tha, tpa)
