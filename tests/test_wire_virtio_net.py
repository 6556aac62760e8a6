"""virtio-net header codec: fixed vectors, kernel-like rejections, round trip, fuzz."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.wire import virtio_net as vn
from trionet.wire.errors import ParseError


def test_known_gso_tcpv4_vector() -> None:
    # What the kernel hands over for a guest TCP burst at MTU 1500.
    raw = bytes([1, 1]) + struct.pack("<HHHH", 54, 1460, 34, 16)
    header = vn.parse(raw + b"frame")
    assert header == vn.VirtioNetHeader(1, 1, 54, 1460, 34, 16)
    assert header.needs_csum and not header.data_valid
    assert header.gso is vn.GsoType.TCPV4 and not header.ecn
    assert header.size == 10
    assert header.to_bytes() == raw


def test_little_endian_and_12_byte_form() -> None:
    raw = bytes([2, 0x84]) + struct.pack("<HHHHH", 0x0102, 0x0304, 0, 0, 7)
    header = vn.parse(raw, 12)
    assert header.hdr_len == 0x0102 and header.gso_size == 0x0304
    assert header.num_buffers == 7 and header.size == 12
    assert header.gso is vn.GsoType.TCPV6 and header.ecn and header.data_valid
    assert header.to_bytes() == raw


def test_split_is_zero_copy() -> None:
    raw = bytearray(bytes(10) + b"ethernet")
    header, frame = vn.split(raw)
    assert header == vn.NO_OFFLOAD
    raw[10] = ord("E")
    assert bytes(frame) == b"Ethernet"


def test_emit_into_buffer_at_offset() -> None:
    buf = bytearray(16)
    header = vn.VirtioNetHeader(1, 5, 42, 1000, 34, 6)
    assert vn.emit(header, buf, 3) == 10
    assert bytes(buf[3:13]) == header.to_bytes()
    assert vn.emit(vn.VirtioNetHeader(num_buffers=1), buf, 4) == 12
    assert vn.parse(buf[4:], 12).num_buffers == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00" * 9, "needs 10"),
        (bytes([0, 2]) + bytes(8), "unknown gso_type"),
        (bytes([0, 6]) + bytes(8), "unknown gso_type"),
        (bytes([0, 1]) + bytes(8), "gso_size 0"),
        (bytes([0, 0x80]) + bytes(8), "ECN"),
    ],
)
def test_rejections(raw: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        vn.parse(raw)
    assert reason in info.value.reason


def test_short_12_byte_header_and_bad_size() -> None:
    with pytest.raises(ParseError):
        vn.parse(bytes(11), 12)
    with pytest.raises(ValueError, match="10 or 12"):
        vn.parse(bytes(16), 11)


def test_check_frame() -> None:
    header = vn.VirtioNetHeader(vn.VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 16)
    header.check_frame(52)
    with pytest.raises(ParseError, match="beyond"):
        header.check_frame(51)
    gso = vn.VirtioNetHeader(0, 1, 66, 1460, 0, 0)
    gso.check_frame(66)
    with pytest.raises(ParseError, match="hdr_len"):
        gso.check_frame(65)


u16 = st.integers(0, 0xFFFF)


@st.composite
def headers(draw: st.DrawFn) -> vn.VirtioNetHeader:
    kind = draw(st.sampled_from(list(vn.GsoType)))
    if kind is vn.GsoType.NONE:
        gso_type, gso_size = 0, draw(u16)
    else:
        gso_type = kind | draw(st.sampled_from([0, vn.VIRTIO_NET_HDR_GSO_ECN]))
        gso_size = draw(st.integers(1, 0xFFFF))
    return vn.VirtioNetHeader(
        flags=draw(st.integers(0, 0xFF)),
        gso_type=gso_type,
        hdr_len=draw(u16),
        gso_size=gso_size,
        csum_start=draw(u16),
        csum_offset=draw(u16),
        num_buffers=draw(st.none() | u16),
    )


@given(headers())
def test_round_trip(header: vn.VirtioNetHeader) -> None:
    raw = header.to_bytes()
    assert len(raw) == header.size
    assert vn.parse(raw, header.size) == header
    buf = bytearray(header.size)
    vn.emit(header, buf)
    assert bytes(buf) == raw


@given(st.binary(max_size=24), st.sampled_from([10, 12]))
def test_arbitrary_bytes_parse_or_parse_error(raw: bytes, size: int) -> None:
    try:
        header = vn.parse(raw, size)
    except ParseError as exc:
        assert exc.reason
        return
    # Whatever parses re-emits to the very same bytes: nothing is silently dropped.
    assert header.to_bytes() == raw[:size]
    with contextlib.suppress(ParseError):
        header.check_frame(len(raw) - size)


def test_constructors_for_the_engine() -> None:
    tcp = vn.VirtioNetHeader.tcp_gso(ipv6=False, l4_offset=34, headers_len=66, mss=1448)
    assert tcp == vn.VirtioNetHeader(1, vn.VIRTIO_NET_HDR_GSO_TCPV4, 66, 1448, 34, 16)
    tcp6 = vn.VirtioNetHeader.tcp_gso(ipv6=True, l4_offset=54, headers_len=74, mss=1440)
    assert tcp6.gso is vn.GsoType.TCPV6 and tcp6.csum_start == 54
    assert vn.parse(tcp6.to_bytes()) == tcp6
    with pytest.raises(ValueError):
        vn.VirtioNetHeader.tcp_gso(ipv6=False, l4_offset=34, headers_len=54, mss=0)
    udp = vn.VirtioNetHeader.partial_csum(34, 6)
    assert (
        udp.needs_csum
        and udp.gso is vn.GsoType.NONE
        and (udp.csum_start, udp.csum_offset) == (34, 6)
    )
