"""Specific behaviours of each codec: the edge cases a property test may not hit."""

from __future__ import annotations

import struct

import pytest

from trionet.wire import ParseError
from trionet.wire.arp import ArpPacket, parse_arp
from trionet.wire.checksum import internet_checksum, pseudo_header_v4, pseudo_header_v6
from trionet.wire.ethernet import EthernetHeader, parse_ethernet
from trionet.wire.icmpv4 import (
    ICMPV4_QUOTE_LIMIT,
    Icmpv4DestUnreachable,
    Icmpv4Echo,
    icmpv4_quote,
    parse_icmpv4,
)
from trionet.wire.icmpv6 import (
    ICMPV6_QUOTE_LIMIT,
    NeighborSolicitation,
    RouterAdvertisement,
    RouterSolicitation,
    icmpv6_quote,
    parse_icmpv6,
)
from trionet.wire.ipv4 import Ipv4Header, parse_ipv4
from trionet.wire.ipv6 import MAX_EXTENSION_HEADERS, Ipv6Header, parse_ipv6
from trionet.wire.tcp import NO_OPTIONS, TcpFlags, TcpHeader, TcpOptions, parse_tcp
from trionet.wire.udp import UdpHeader, parse_udp

SRC4, DST4 = bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2])
SRC6, DST6 = bytes.fromhex("fd00" + "00" * 13 + "0f"), bytes.fromhex("fd00" + "00" * 13 + "02")


def test_parse_error_carries_reason() -> None:
    with pytest.raises(ParseError) as info:
        parse_ethernet(b"short")
    assert info.value.reason == "ethernet: frame shorter than 14 bytes"


def test_vlan_tagged_frame_reports_inner_type_and_skips_tag() -> None:
    frame = bytes(6) + bytes([2] * 6) + b"\x81\x00" + b"\x20\x05" + b"\x08\x00" + b"IP"
    header, payload = parse_ethernet(frame)
    assert (header.ethertype, header.vlan_tci, header.vlan_id, header.header_len) == (
        0x0800,
        0x2005,
        5,
        18,
    )
    assert payload == b"IP"


def test_truncated_vlan_tag_is_rejected() -> None:
    with pytest.raises(ParseError):
        parse_ethernet(bytes(12) + b"\x81\x00\x00")


def test_payload_is_a_view_not_a_copy() -> None:
    frame = bytearray(EthernetHeader(bytes(6), bytes(6), 0x0800).to_bytes() + b"abcd")
    _, payload = parse_ethernet(frame)
    frame[14] = ord("z")
    assert payload[0] == ord("z")


def test_arp_rejects_other_hardware() -> None:
    wire = bytearray(ArpPacket(1, bytes(6), SRC4, bytes(6), DST4).to_bytes())
    wire[1] = 6  # IEEE 802 hardware type
    with pytest.raises(ParseError):
        parse_arp(wire)
    assert parse_arp(ArpPacket(1, bytes(6), SRC4, bytes(6), DST4).to_bytes() + bytes(18))


def _ipv4(payload: bytes = b"data", **fields: object) -> bytes:
    return Ipv4Header(SRC4, DST4, 17, len(payload), **fields).to_bytes() + payload  # type: ignore[arg-type]


def test_ipv4_trims_ethernet_padding() -> None:
    header, payload = parse_ipv4(_ipv4() + bytes(22))
    assert payload == b"data" and header.payload_len == 4


def test_ipv4_total_length_beyond_buffer_is_rejected() -> None:
    with pytest.raises(ParseError, match="exceeds"):
        parse_ipv4(_ipv4()[:-1])


def test_ipv4_checksum_is_verified_unless_told_not_to() -> None:
    wire = bytearray(_ipv4())
    wire[8] ^= 1  # TTL changed after the checksum was computed
    with pytest.raises(ParseError, match="checksum"):
        parse_ipv4(wire)
    assert parse_ipv4(wire, verify_checksum=False)[0].ttl == 65


def test_ipv4_options_are_skipped() -> None:
    options = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL
    header = bytearray(_ipv4()[:20])
    header[0] = 0x46
    struct.pack_into("!H", header, 2, 28)
    struct.pack_into("!H", header, 10, 0)
    wire = header + options + b"data"
    struct.pack_into("!H", wire, 10, internet_checksum(wire[:24]))
    parsed, payload = parse_ipv4(wire)
    assert payload == b"data" and parsed.payload_len == 4


@pytest.mark.parametrize(
    ("patch", "reason"),
    [((0, 0x65), "version"), ((0, 0x44), "below 20"), ((3, 10), "shorter than header")],
)
def test_ipv4_bad_header_fields(patch: tuple[int, int], reason: str) -> None:
    wire = bytearray(_ipv4())
    wire[patch[0]] = patch[1]
    with pytest.raises(ParseError, match=reason):
        parse_ipv4(wire, verify_checksum=False)


def test_ipv4_fragment_fields() -> None:
    header, _ = parse_ipv4(_ipv4(more_fragments=True, frag_offset=1480, ident=7))
    assert header.is_fragment and header.frag_offset == 1480 and header.ident == 7
    assert not parse_ipv4(_ipv4(dont_fragment=True))[0].is_fragment


def _ipv6_with_chain(chain: list[tuple[int, bytes]], upper: int, payload: bytes) -> bytes:
    """Fixed header + extension headers given as (type, body without next-header byte)."""
    body = b""
    types = [kind for kind, _ in chain] + [upper]
    for (_, ext), next_type in zip(chain, types[1:], strict=True):
        body += bytes([next_type]) + ext
    body += payload
    first = types[0]
    return struct.pack("!IHBB16s16s", 0x60000000, len(body), first, 64, SRC6, DST6) + body


def _opts_header() -> bytes:
    return b"\x00" + b"\x01\x04" + bytes(4)  # hdr ext len 0, PadN of 4: 8 bytes in all


def test_ipv6_walks_chain_to_upper_layer() -> None:
    frag = b"\x00" + struct.pack("!HI", 1480 | 1, 0xABCD)
    wire = _ipv6_with_chain([(0, _opts_header()), (60, _opts_header()), (44, frag)], 17, b"udp!")
    header, payload = parse_ipv6(wire)
    assert header.next_header == 17 and payload == b"udp!"
    assert header.fragment is not None
    assert (header.fragment.ident, header.fragment.offset, header.fragment.more) == (
        0xABCD,
        1480,
        True,
    )


def test_ipv6_chain_length_is_bounded() -> None:
    ok = [(60, _opts_header())] * MAX_EXTENSION_HEADERS
    assert parse_ipv6(_ipv6_with_chain(ok, 6, b""))[0].next_header == 6
    with pytest.raises(ParseError, match="too long"):
        parse_ipv6(_ipv6_with_chain([*ok, (60, _opts_header())], 6, b""))


def test_ipv6_hop_by_hop_must_be_first() -> None:
    with pytest.raises(ParseError, match="not first"):
        parse_ipv6(_ipv6_with_chain([(60, _opts_header()), (0, _opts_header())], 6, b""))


def test_ipv6_trims_padding_and_rejects_overlong_payload_length() -> None:
    wire = Ipv6Header(SRC6, DST6, 17, 4).to_bytes() + b"abcd"
    assert parse_ipv6(wire + bytes(10))[1] == b"abcd"
    with pytest.raises(ParseError):
        parse_ipv6(wire[:-1])


def test_udp_zero_checksum_allowed_only_where_legal() -> None:
    wire = struct.pack("!HHHH", 1, 2, 12, 0) + b"abcd"
    pseudo = pseudo_header_v4(SRC4, DST4, 17, len(wire))
    assert parse_udp(wire, pseudo)[1] == b"abcd"
    with pytest.raises(ParseError, match="zero checksum"):
        parse_udp(wire, pseudo, zero_checksum_ok=False)


def test_udp_length_shorter_than_buffer_is_honoured_with_checksum() -> None:
    payload = b"abcd"
    pseudo = pseudo_header_v4(SRC4, DST4, 17, 8 + len(payload))
    wire = UdpHeader(5, 6).to_bytes(payload, pseudo) + b"trailing"
    buffer_pseudo = pseudo_header_v4(SRC4, DST4, 17, len(wire))
    assert parse_udp(wire, buffer_pseudo) == (UdpHeader(5, 6), payload)


def test_udp_bad_checksum_rejected() -> None:
    pseudo = pseudo_header_v4(SRC4, DST4, 17, 12)
    wire = bytearray(UdpHeader(5, 6).to_bytes(b"abcd", pseudo))
    wire[-1] ^= 0x40
    with pytest.raises(ParseError, match="checksum"):
        parse_udp(wire, pseudo)
    assert parse_udp(wire, None)[0] == UdpHeader(5, 6)


@pytest.mark.parametrize("offload_proto", ["udp", "tcp"])
def test_partial_checksum_completes_like_a_nic_would(offload_proto: str) -> None:
    # The NIC (or guest kernel) sums from csum_start to the end, with the
    # field holding the pseudo-header sum, and stores the result: that must
    # be a valid checksum.
    payload = b"some payload bytes!"
    header: UdpHeader | TcpHeader
    if offload_proto == "udp":
        header, field, proto = UdpHeader(1000, 53), 6, 17
    else:
        header, field, proto = TcpHeader(1, 2, 3, 4, TcpFlags.ACK, 100), 16, 6
    pseudo = pseudo_header_v6(SRC6, DST6, proto, header.header_len + len(payload))
    wire = bytearray(header.to_bytes(payload, pseudo, partial=True))
    assert struct.unpack_from("!H", wire, field)[0] == pseudo
    struct.pack_into("!H", wire, field, internet_checksum(wire))
    if isinstance(header, UdpHeader):
        assert parse_udp(wire, pseudo)[0] == header
    else:
        assert parse_tcp(wire, pseudo)[0] == header


def _tcp_with_options(options: bytes) -> bytes:
    offset = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", 1, 2, 3, 4, offset << 4, 0x02, 5, 0, 0) + options


def test_tcp_unknown_options_skipped_and_eol_stops() -> None:
    options = b"\x1e\x04ab" + b"\x02\x04\x05\xb4" + b"\x00" + b"\x03\x03\x07" + bytes(2)
    header, _ = parse_tcp(_tcp_with_options(options), None)
    assert header.options == TcpOptions(mss=1460)


@pytest.mark.parametrize(
    "options",
    [
        b"\x02\x03\x05\x00",  # MSS length 3
        b"\x03\x04\x07\x00",  # window scale length 4
        b"\x04\x03\x00\x00",  # SACK-permitted length 3
        b"\x05\x0b" + bytes(10),  # SACK length not 2 + 8n
        b"\x08\x08" + bytes(6),  # timestamp length 8
        b"\x1e\x01\x00\x00",  # length below 2
        b"\x1e\x09\x00\x00",  # length past the header
        b"\x01\x01\x01\x02",  # kind without a length byte
    ],
)
def test_tcp_malformed_option_lengths_rejected(options: bytes) -> None:
    with pytest.raises(ParseError):
        parse_tcp(_tcp_with_options(options), None)


def test_tcp_data_offset_checked() -> None:
    wire = bytearray(_tcp_with_options(b""))
    wire[12] = 4 << 4
    with pytest.raises(ParseError, match="below 5"):
        parse_tcp(wire, None)
    wire[12] = 6 << 4
    with pytest.raises(ParseError, match="beyond"):
        parse_tcp(wire, None)


def test_tcp_linux_syn_options_layout_and_no_option_identity() -> None:
    opts = TcpOptions(mss=1460, window_scale=7, sack_permitted=True, timestamp=(1, 2))
    header = TcpHeader(1, 2, 3, 0, TcpFlags.SYN, 64240, options=opts)
    assert header.header_len == 44
    plain, _ = parse_tcp(TcpHeader(1, 2, 3, 4, TcpFlags.ACK, 5).to_bytes(b"", 0), None)
    assert plain.options is NO_OPTIONS


def test_tcp_too_many_options_refused_on_emit() -> None:
    opts = TcpOptions(1460, 7, True, ((1, 2), (3, 4)), (5, 6))
    with pytest.raises(ValueError, match="40 bytes"):
        TcpHeader(1, 2, 3, 4, TcpFlags.ACK, 5, options=opts).to_bytes(b"", 0)


def test_icmpv4_checksum_verified() -> None:
    wire = bytearray(Icmpv4Echo(True, 1, 2).to_bytes(b"ping"))
    assert parse_icmpv4(wire)[0] == Icmpv4Echo(True, 1, 2)
    wire[-1] ^= 1
    with pytest.raises(ParseError):
        parse_icmpv4(wire)


def test_icmp_quotes_are_bounded_by_the_rfc_sizes() -> None:
    datagram = bytes(2000)
    assert len(icmpv4_quote(datagram)) == ICMPV4_QUOTE_LIMIT == 548
    assert 20 + 8 + len(icmpv4_quote(datagram)) == 576
    assert len(icmpv6_quote(datagram)) == ICMPV6_QUOTE_LIMIT == 1232
    assert 40 + 8 + len(icmpv6_quote(datagram)) == 1280
    assert icmpv4_quote(b"short") == b"short"


def test_frag_needed_carries_mtu() -> None:
    message = Icmpv4DestUnreachable.frag_needed(1400)
    wire = message.to_bytes(b"quoted")
    assert wire[:2] == b"\x03\x04" and struct.unpack_from("!H", wire, 6)[0] == 1400


def _ndp(message_type: int, body: bytes, options: bytes) -> bytes:
    wire = bytearray(struct.pack("!BBH", message_type, 0, 0) + body + options)
    pseudo = pseudo_header_v6(SRC6, DST6, 58, len(wire))
    struct.pack_into("!H", wire, 2, internet_checksum(wire, pseudo))
    return bytes(wire)


def test_ndp_zero_length_option_rejected() -> None:
    wire = _ndp(133, bytes(4), b"\x01\x00" + bytes(6))
    with pytest.raises(ParseError, match="zero-length"):
        parse_icmpv6(wire, None)


def test_ndp_unknown_option_skipped() -> None:
    options = b"\x0e\x01" + bytes(6) + b"\x01\x01" + b"\x02\x00\x00\x00\x00\x01"  # nonce, SLLA
    message, body = parse_icmpv6(_ndp(135, bytes(4) + DST6, options), None)
    assert message == NeighborSolicitation(DST6, b"\x02\x00\x00\x00\x00\x01")
    assert body == b""


def test_ndp_nonzero_code_rejected() -> None:
    pseudo = pseudo_header_v6(SRC6, DST6, 58, 8)
    wire = bytearray(RouterSolicitation().to_bytes(b"", pseudo))
    wire[1] = 1
    with pytest.raises(ParseError):
        parse_icmpv6(wire, None)


def test_icmpv6_checksum_covers_pseudo_header() -> None:
    pseudo = pseudo_header_v6(SRC6, DST6, 58, 8)
    wire = RouterSolicitation().to_bytes(b"", pseudo)
    assert parse_icmpv6(wire, pseudo)[0] == RouterSolicitation()
    other = pseudo_header_v6(DST6, DST6, 58, 8)
    with pytest.raises(ParseError, match="checksum"):
        parse_icmpv6(wire, other)


def test_ipv6_later_fragment_data_is_not_walked_as_headers() -> None:
    # Offset 1448: the bytes after the fragment header are data that happen
    # to look like a truncated destination-options header.
    frag = b"\x00" + struct.pack("!HI", 1448, 9)
    wire = _ipv6_with_chain([(44, frag)], 60, b"\x11\x05junk")
    header, payload = parse_ipv6(wire)
    assert header.next_header == 60
    assert payload == b"\x11\x05junk"


def test_quoted_datagrams_parse_with_truncated_ok() -> None:
    v4 = Ipv4Header(SRC4, DST4, 17, 1000).to_bytes() + bytes(1000)
    with pytest.raises(ParseError):
        parse_ipv4(icmpv4_quote(v4))
    header, payload = parse_ipv4(icmpv4_quote(v4), truncated_ok=True)
    assert header.payload_len == 1000 and len(payload) == 548 - 20
    with pytest.raises(ParseError):  # not even the header is there
        parse_ipv4(v4[:19], truncated_ok=True)
    v6 = Ipv6Header(SRC6, DST6, 6, 2000).to_bytes() + bytes(2000)
    header6, payload6 = parse_ipv6(icmpv6_quote(v6), truncated_ok=True)
    assert header6.payload_len == 2000 and len(payload6) == 1232 - 40
    with pytest.raises(ParseError):
        parse_ipv6(icmpv6_quote(v6))


@pytest.mark.parametrize("units", [1, 2, 4])
def test_ndp_rdnss_option_must_hold_whole_addresses(units: int) -> None:
    option = bytes([25, units]) + bytes(units * 8 - 2)
    with pytest.raises(ParseError, match="RDNSS"):
        parse_icmpv6(_ndp(134, bytes(12), option), None)
    # One address (3 units) is the smallest valid option.
    good = bytes([25, 3, 0, 0]) + struct.pack("!I", 600) + DST6
    message, _ = parse_icmpv6(_ndp(134, bytes(12), good), None)
    assert isinstance(message, RouterAdvertisement)
    assert (message.dns_servers, message.dns_lifetime) == ((DST6,), 600)
