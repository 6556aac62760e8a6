"""TCP header (RFC 9293 section 3.1) and its options.

This module fixes the *representation* the TCP state machine works with;
parse/emit live beside it. The payload is never part of the header: it is
passed alongside as a memoryview so no bytes are copied on the parse path.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from trionet.wire._construct import positional_constructor
from trionet.wire._types import BytesLike, WritableBuffer
from trionet.wire.checksum import ones_sum
from trionet.wire.errors import ParseError

__all__ = [
    "MAX_OPTIONS_LEN",
    "NO_OPTIONS",
    "TCP_HEADER_LEN",
    "TcpFlags",
    "TcpHeader",
    "TcpOptions",
    "emit_options",
    "make_tcp_header",
    "make_tcp_options",
    "options_len",
    "parse_tcp",
]

TCP_HEADER_LEN = 20
MAX_OPTIONS_LEN = 40


class TcpFlags(enum.IntFlag):
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


@dataclass(frozen=True, slots=True)
class TcpOptions:
    """The options trionet understands; unknown ones are skipped on parse."""

    mss: int | None = None
    window_scale: int | None = None
    sack_permitted: bool = False
    #: (left edge, right edge) pairs, at most 4 (3 when timestamps are present).
    sack_blocks: tuple[tuple[int, int], ...] = ()
    #: (TSval, TSecr) of RFC 7323.
    timestamp: tuple[int, int] | None = None


NO_OPTIONS = TcpOptions()


@dataclass(frozen=True, slots=True)
class TcpHeader:
    """A TCP header as numbers; ``window`` is the raw, unscaled 16-bit field."""

    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: TcpFlags
    window: int
    urgent: int = 0
    options: TcpOptions = NO_OPTIONS

    @property
    def header_len(self) -> int:
        """Bytes ``emit_into`` writes: 20 plus the options, a multiple of 4."""
        opts = self.options
        if opts is NO_OPTIONS:
            return TCP_HEADER_LEN
        return TCP_HEADER_LEN + options_len(opts)

    def emit_into(
        self,
        buf: WritableBuffer,
        offset: int,
        payload: BytesLike,
        pseudo_sum: int,
        *,
        partial: bool = False,
    ) -> int:
        """Write header and options for ``payload`` (summed, not copied) at ``offset``.

        ``pseudo_sum`` must cover length ``header_len + len(payload)``. With
        ``partial=True`` the checksum field holds just the pseudo-header sum,
        for a link that finishes the checksum (virtio-net NEEDS_CSUM).
        Returns the offset just past the header.
        """
        opts = self.options
        end = offset + TCP_HEADER_LEN
        if opts is not NO_OPTIONS:
            end = emit_options(opts, buf, end)
        header_len = end - offset
        _HEADER.pack_into(
            buf,
            offset,
            self.src_port,
            self.dst_port,
            self.seq,
            self.ack,
            (header_len << 10) | int(self.flags),
            self.window,
            pseudo_sum if partial else 0,
            self.urgent,
        )
        if not partial:
            total = ones_sum(memoryview(buf)[offset:end], ones_sum(payload, pseudo_sum))
            _CHECKSUM.pack_into(buf, offset + 16, ~total & 0xFFFF)
        return end

    def to_bytes(self, payload: BytesLike, pseudo_sum: int, *, partial: bool = False) -> bytes:
        """Header and payload joined (for tests and rare paths; the hot path uses writev)."""
        header_len = self.header_len
        buf = bytearray(header_len + len(payload))
        self.emit_into(buf, 0, payload, pseudo_sum, partial=partial)
        buf[header_len:] = payload
        return bytes(buf)


_HEADER = struct.Struct("!HHIIHHHH")
_CHECKSUM = struct.Struct("!H")
_MSS = struct.Struct("!BBH")
_WSCALE = struct.Struct("!BBBB")
_TIMESTAMP = struct.Struct("!BBBBII")
_SACK_EDGES = struct.Struct("!II")
_U32 = struct.Struct("!I")
_TS_VALUES = struct.Struct("!II")
_U16 = struct.Struct("!H")
_SACK_PERMITTED = b"\x01\x01\x04\x02"
# What Linux puts in every established segment: NOP, NOP, timestamps.
_TS_ONLY_PREFIX = b"\x01\x01\x08\x0a"

# IntFlag construction is slow; every possible flags byte is built once.
_FLAGS = tuple(TcpFlags(i) for i in range(256))

_KIND_EOL = 0
_KIND_NOP = 1
_KIND_MSS = 2
_KIND_WSCALE = 3
_KIND_SACK_PERMITTED = 4
_KIND_SACK = 5
_KIND_TIMESTAMP = 8


#: Build a :class:`TcpHeader` from all eight fields, positionally and without
#: the frozen ``__init__`` (see :mod:`trionet.wire._construct`): for paths
#: that build one per segment.
make_tcp_header = positional_constructor(TcpHeader)
#: Likewise for :class:`TcpOptions` (mss, window_scale, sack_permitted,
#: sack_blocks, timestamp).
make_tcp_options = positional_constructor(TcpOptions)


def options_len(opts: TcpOptions) -> int:
    """Bytes the options take on the wire as trionet lays them out (NOP-aligned to 4)."""
    length = 0
    if opts.mss is not None:
        length += 4
    if opts.window_scale is not None:
        length += 4
    if opts.sack_permitted:
        length += 4
    if opts.timestamp is not None:
        length += 12
    if opts.sack_blocks:
        length += 4 + 8 * len(opts.sack_blocks)
    return length


def emit_options(opts: TcpOptions, buf: WritableBuffer, pos: int) -> int:
    """Write ``opts`` at ``pos`` (``options_len(opts)`` bytes); return the end offset."""
    # Every option is padded to a 4-byte boundary with leading NOPs, as Linux
    # does, so the header needs no trailing EOL padding.
    start = pos
    if opts.mss is not None:
        _MSS.pack_into(buf, pos, _KIND_MSS, 4, opts.mss)
        pos += 4
    if opts.window_scale is not None:
        _WSCALE.pack_into(buf, pos, _KIND_NOP, _KIND_WSCALE, 3, opts.window_scale)
        pos += 4
    if opts.sack_permitted:
        buf[pos : pos + 4] = _SACK_PERMITTED
        pos += 4
    if opts.timestamp is not None:
        tsval, tsecr = opts.timestamp
        _TIMESTAMP.pack_into(buf, pos, _KIND_NOP, _KIND_NOP, _KIND_TIMESTAMP, 10, tsval, tsecr)
        pos += 12
    if opts.sack_blocks:
        blocks = opts.sack_blocks
        _WSCALE.pack_into(buf, pos, _KIND_NOP, _KIND_NOP, _KIND_SACK, 2 + 8 * len(blocks))
        pos += 4
        for left, right in blocks:
            _SACK_EDGES.pack_into(buf, pos, left, right)
            pos += 8
    if pos - start > MAX_OPTIONS_LEN:
        raise ValueError("tcp: options exceed 40 bytes")
    return pos


def _parse_options(view: memoryview) -> TcpOptions:
    if len(view) == 12 and view[:4] == _TS_ONLY_PREFIX:
        return make_tcp_options(None, None, False, (), _TS_VALUES.unpack_from(view, 4))
    mss: int | None = None
    window_scale: int | None = None
    sack_permitted = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    timestamp: tuple[int, int] | None = None
    pos = 0
    end = len(view)
    while pos < end:
        kind = view[pos]
        if kind == _KIND_EOL:
            break
        if kind == _KIND_NOP:
            pos += 1
            continue
        if pos + 1 >= end:
            raise ParseError("tcp: option length missing")
        length = view[pos + 1]
        if length < 2 or pos + length > end:
            raise ParseError("tcp: bad option length")
        if kind == _KIND_MSS:
            if length != 4:
                raise ParseError("tcp: bad MSS option length")
            mss = _U16.unpack_from(view, pos + 2)[0]
        elif kind == _KIND_WSCALE:
            if length != 3:
                raise ParseError("tcp: bad window scale option length")
            window_scale = view[pos + 2]
        elif kind == _KIND_SACK_PERMITTED:
            if length != 2:
                raise ParseError("tcp: bad SACK-permitted option length")
            sack_permitted = True
        elif kind == _KIND_SACK:
            count, rest = divmod(length - 2, 8)
            if rest or not 1 <= count <= 4:
                raise ParseError("tcp: bad SACK option length")
            sack_blocks = tuple(
                _SACK_EDGES.unpack_from(view, pos + 2 + 8 * i) for i in range(count)
            )
        elif kind == _KIND_TIMESTAMP:
            if length != 10:
                raise ParseError("tcp: bad timestamp option length")
            timestamp = _TS_VALUES.unpack_from(view, pos + 2)
        pos += length
    return make_tcp_options(mss, window_scale, sack_permitted, sack_blocks, timestamp)


def parse_tcp(data: BytesLike, pseudo_sum: int | None) -> tuple[TcpHeader, memoryview]:
    """Parse a TCP segment; return the header and a zero-copy view of its payload.

    ``pseudo_sum`` is the folded pseudo-header sum computed with
    ``len(data)`` as the length, or ``None`` when the link validated the
    checksum already (virtio-net offload). Unknown options are skipped by
    their length; malformed lengths are rejected.
    """
    view = memoryview(data)
    if len(view) < TCP_HEADER_LEN:
        raise ParseError("tcp: shorter than 20 bytes")
    src_port, dst_port, seq, ack, offset_flags, window, _, urgent = _HEADER.unpack_from(view)
    header_len = (offset_flags >> 12) * 4
    if header_len < TCP_HEADER_LEN:
        raise ParseError("tcp: data offset below 5")
    if header_len > len(view):
        raise ParseError("tcp: data offset beyond the segment")
    if pseudo_sum is not None and ones_sum(view, pseudo_sum) != 0xFFFF:
        raise ParseError("tcp: bad checksum")
    options = NO_OPTIONS if header_len == TCP_HEADER_LEN else _parse_options(view[20:header_len])
    header = make_tcp_header(
        src_port, dst_port, seq, ack, _FLAGS[offset_flags & 0xFF], window, urgent, options
    )
    return header, view[header_len:]
