"""The virtio-net header (virtio 1.x section 5.1.6) that prefixes frames on a TAP.

With ``IFF_VNET_HDR`` every read from and write to a TAP starts with this
header. It is how large frames cross the boundary in one piece: the kernel
hands over TCP/UDP super-frames of up to ~64 KB (``gso_type`` and
``gso_size`` say how to cut them into MTU-sized segments) with the transport
checksum left partial (``NEEDS_CSUM`` plus ``csum_start``/``csum_offset``),
and accepts the same from us. Neither side then spends time on payload
checksums, which is what caps a pure-Python sender.

Byte order: the fields are little-endian. Modern (virtio 1.0) headers are
defined as little-endian; a Linux TAP uses the host's native order unless
``TUNSETVNETLE``/``TUNSETVNETBE`` says otherwise, and every host trionet
targets (x86-64, little-endian arm64) is little-endian. The TAP link also
asks for ``TUNSETVNETLE`` explicitly so the order never depends on the host.

The header is 10 bytes, or 12 with ``num_buffers`` (mergeable receive
buffers and every virtio 1.0 device). A TAP uses whichever size was set with
``TUNSETVNETHDRSZ``; the caller says which one it has.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from trionet.wire.errors import ParseError

__all__ = [
    "HEADER_SIZE",
    "HEADER_SIZE_MRG",
    "NO_OFFLOAD",
    "VIRTIO_NET_HDR_F_DATA_VALID",
    "VIRTIO_NET_HDR_F_NEEDS_CSUM",
    "VIRTIO_NET_HDR_GSO_ECN",
    "VIRTIO_NET_HDR_GSO_NONE",
    "VIRTIO_NET_HDR_GSO_TCPV4",
    "VIRTIO_NET_HDR_GSO_TCPV6",
    "VIRTIO_NET_HDR_GSO_UDP",
    "VIRTIO_NET_HDR_GSO_UDP_L4",
    "GsoType",
    "VirtioNetHeader",
    "emit",
    "parse",
    "split",
]

VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_F_DATA_VALID = 2

VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_UDP = 3
VIRTIO_NET_HDR_GSO_TCPV6 = 4
VIRTIO_NET_HDR_GSO_UDP_L4 = 5
VIRTIO_NET_HDR_GSO_ECN = 0x80

HEADER_SIZE = 10
HEADER_SIZE_MRG = 12

_HDR = struct.Struct("<BBHHHH")
_HDR_MRG = struct.Struct("<BBHHHHH")


class GsoType(enum.IntEnum):
    """The segmentation kind, without the ECN bit."""

    NONE = VIRTIO_NET_HDR_GSO_NONE
    TCPV4 = VIRTIO_NET_HDR_GSO_TCPV4
    #: UFO: one UDP datagram to be sent as IP fragments (legacy, still accepted).
    UDP = VIRTIO_NET_HDR_GSO_UDP
    TCPV6 = VIRTIO_NET_HDR_GSO_TCPV6
    #: USO: many UDP datagrams of gso_size each (USO4/USO6 offloads).
    UDP_L4 = VIRTIO_NET_HDR_GSO_UDP_L4


_KNOWN_GSO = frozenset(int(t) for t in GsoType)


@dataclass(frozen=True, slots=True)
class VirtioNetHeader:
    """One header, field by field; ``gso_type`` is the raw byte, ECN bit included.

    ``num_buffers`` is None for the 10-byte form and a number for the 12-byte
    form, so a header always knows its own size.
    """

    flags: int = 0
    gso_type: int = VIRTIO_NET_HDR_GSO_NONE
    #: Length of the headers (Ethernet + IP + transport) of a GSO frame.
    hdr_len: int = 0
    #: Payload bytes per segment (the MSS for TCP) of a GSO frame.
    gso_size: int = 0
    #: Where checksumming starts (the transport header) when NEEDS_CSUM is set.
    csum_start: int = 0
    #: Where, counted from csum_start, the checksum is stored (16 TCP, 6 UDP).
    csum_offset: int = 0
    num_buffers: int | None = None

    @property
    def size(self) -> int:
        return HEADER_SIZE if self.num_buffers is None else HEADER_SIZE_MRG

    @property
    def gso(self) -> GsoType:
        return GsoType(self.gso_type & ~VIRTIO_NET_HDR_GSO_ECN)

    @property
    def ecn(self) -> bool:
        return bool(self.gso_type & VIRTIO_NET_HDR_GSO_ECN)

    @property
    def needs_csum(self) -> bool:
        return bool(self.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)

    @property
    def data_valid(self) -> bool:
        return bool(self.flags & VIRTIO_NET_HDR_F_DATA_VALID)

    @classmethod
    def partial_csum(cls, csum_start: int, csum_offset: int) -> VirtioNetHeader:
        """A single frame whose transport checksum the receiver completes.

        ``csum_start`` is the transport header's offset in the frame,
        ``csum_offset`` 16 for TCP and 6 for UDP; the checksum field must hold
        the folded, not inverted, pseudo-header sum.
        """
        return cls(
            VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, 0, 0, csum_start, csum_offset
        )

    @classmethod
    def tcp_gso(cls, *, ipv6: bool, l4_offset: int, headers_len: int, mss: int) -> VirtioNetHeader:
        """A TCP super-frame the receiver cuts into ``mss``-byte segments.

        ``l4_offset`` is where the TCP header starts (Ethernet + IP),
        ``headers_len`` where the payload starts (Ethernet + IP + TCP with
        options). The IP header checksum must be complete and the TCP one
        hold the pseudo-header sum, as for :meth:`partial_csum`.
        """
        if mss <= 0:
            raise ValueError(f"mss must be positive, not {mss}")
        kind = VIRTIO_NET_HDR_GSO_TCPV6 if ipv6 else VIRTIO_NET_HDR_GSO_TCPV4
        return cls(VIRTIO_NET_HDR_F_NEEDS_CSUM, kind, headers_len, mss, l4_offset, 16)

    def check_frame(self, frame_len: int) -> None:
        """Raise ParseError unless this header can describe a frame of ``frame_len`` bytes.

        Separate from :func:`parse` because the header alone does not know the
        frame; a hostile guest can send a header whose checksum position lies
        beyond the frame, and nothing downstream should index with it.
        """
        if self.needs_csum and self.csum_start + self.csum_offset + 2 > frame_len:
            raise ParseError(
                f"checksum at {self.csum_start}+{self.csum_offset} lies beyond "
                f"a {frame_len}-byte frame"
            )
        if self.gso_type != VIRTIO_NET_HDR_GSO_NONE and self.hdr_len > frame_len:
            raise ParseError(f"hdr_len {self.hdr_len} exceeds a {frame_len}-byte frame")

    def to_bytes(self) -> bytes:
        buf = bytearray(self.size)
        emit(self, buf)
        return bytes(buf)


#: The header of a plain frame: no checksum work, no segmentation.
NO_OFFLOAD = VirtioNetHeader()


def parse(buf: bytes | bytearray | memoryview, size: int = HEADER_SIZE) -> VirtioNetHeader:
    """Parse the ``size``-byte header at the start of ``buf``.

    Rejects what the Linux kernel rejects on a TAP write: unknown GSO kinds,
    the ECN bit without segmentation, and segmentation without a segment size.
    Flag bits beyond NEEDS_CSUM and DATA_VALID are kept as they are (newer
    virtio revisions define more; none changes how the frame is read).
    """
    if size == HEADER_SIZE:
        if len(buf) < HEADER_SIZE:
            raise ParseError(f"virtio-net header needs {HEADER_SIZE} bytes, got {len(buf)}")
        flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = _HDR.unpack_from(buf)
        num_buffers: int | None = None
    elif size == HEADER_SIZE_MRG:
        if len(buf) < HEADER_SIZE_MRG:
            raise ParseError(f"virtio-net header needs {HEADER_SIZE_MRG} bytes, got {len(buf)}")
        flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers = (
            _HDR_MRG.unpack_from(buf)
        )
    else:
        raise ValueError(f"a virtio-net header is {HEADER_SIZE} or {HEADER_SIZE_MRG} bytes")
    kind = gso_type & ~VIRTIO_NET_HDR_GSO_ECN
    if kind not in _KNOWN_GSO:
        raise ParseError(f"unknown gso_type {gso_type:#x}")
    if kind != VIRTIO_NET_HDR_GSO_NONE and gso_size == 0:
        raise ParseError("segmentation requested with gso_size 0")
    if kind == VIRTIO_NET_HDR_GSO_NONE and gso_type & VIRTIO_NET_HDR_GSO_ECN:
        raise ParseError("ECN bit set without segmentation")
    return VirtioNetHeader(
        flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers
    )


def split(
    buf: bytes | bytearray | memoryview, size: int = HEADER_SIZE
) -> tuple[VirtioNetHeader, memoryview]:
    """Parse the header and return it with the frame behind it, without copying."""
    header = parse(buf, size)
    return header, memoryview(buf)[size:]


def emit(header: VirtioNetHeader, buf: bytearray | memoryview, offset: int = 0) -> int:
    """Write ``header`` into ``buf`` at ``offset``; return the bytes written."""
    if header.num_buffers is None:
        _HDR.pack_into(
            buf,
            offset,
            header.flags,
            header.gso_type,
            header.hdr_len,
            header.gso_size,
            header.csum_start,
            header.csum_offset,
        )
        return HEADER_SIZE
    _HDR_MRG.pack_into(
        buf,
        offset,
        header.flags,
        header.gso_type,
        header.hdr_len,
        header.gso_size,
        header.csum_start,
        header.csum_offset,
        header.num_buffers,
    )
    return HEADER_SIZE_MRG
