"""DHCPv4, DHCPv6 and domain-name codecs: hypothesis round trips, arbitrary bytes,
and scapy as the independent implementation on both sides."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.wire.strategies import domain_names, ipv4_addrs, ipv6_addrs, u8, u16, u32
from trionet.wire import ParseError
from trionet.wire.dhcpv4 import (
    BOOTREPLY,
    ClasslessRoute,
    DhcpMessage,
    MessageType,
    Option,
    decode_classless_routes,
    decode_domain_search,
    encode_classless_routes,
    encode_domain_search,
    parse_dhcpv4,
)
from trionet.wire.dhcpv6 import (
    Dhcpv6Message,
    IaAddress,
    IaNa,
    parse_dhcpv6,
    parse_ia_address,
    parse_ia_na,
)
from trionet.wire.domain_names import decode_names, encode_names

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.dhcp import BOOTP, DHCP  # noqa: E402
from scapy.layers.dhcp6 import (  # noqa: E402
    DUID_LLT,
    DHCP6_Solicit,
    DHCP6OptClientId,
    DHCP6OptElapsedTime,
    DHCP6OptIA_NA,
    DHCP6OptIAAddress,
)

# -- DHCPv4 ---------------------------------------------------------------------------

#: Any code but PAD, END and OVERLOAD (whose meaning moves options into file/sname).
option_codes = st.integers(1, 254).filter(lambda c: c != Option.OVERLOAD)
dhcp_options = st.dictionaries(option_codes, st.binary(max_size=600), max_size=8).map(
    lambda d: tuple(d.items())
)
dhcp_messages = st.builds(
    DhcpMessage,
    op=u8,
    xid=u32,
    chaddr=st.binary(min_size=16, max_size=16),
    htype=u8,
    hlen=u8,
    hops=u8,
    secs=u16,
    flags=u16,
    ciaddr=ipv4_addrs,
    yiaddr=ipv4_addrs,
    siaddr=ipv4_addrs,
    giaddr=ipv4_addrs,
    sname=st.binary(min_size=64, max_size=64),
    file=st.binary(min_size=128, max_size=128),
    options=dhcp_options,
)


@given(dhcp_messages)
def test_dhcpv4_round_trip(message: DhcpMessage) -> None:
    wire = message.to_bytes()
    assert len(wire) >= 300
    assert parse_dhcpv4(wire) == message


@given(st.binary(max_size=700))
def test_dhcpv4_arbitrary_bytes_parse_or_raise_parse_error(data: bytes) -> None:
    try:
        message = parse_dhcpv4(data)
    except ParseError:
        return
    assert parse_dhcpv4(message.to_bytes()) == message


@given(st.binary(max_size=400).map(lambda b: bytes(236) + b"\x63\x82\x53\x63" + b))
def test_dhcpv4_arbitrary_options_parse_or_raise_parse_error(data: bytes) -> None:
    try:
        message = parse_dhcpv4(data)
    except ParseError:
        return
    assert parse_dhcpv4(message.to_bytes()) == message


def test_long_options_are_split_and_joined() -> None:
    value = bytes(range(256)) * 3
    message = DhcpMessage(1, 7, bytes(16), options=((Option.CLIENT_ID, value),))
    wire = message.to_bytes()
    assert wire.count(bytes((Option.CLIENT_ID, 255))) == 3  # RFC 3396 pieces
    assert parse_dhcpv4(wire).option(Option.CLIENT_ID) == value


def test_overloaded_file_field_holds_options() -> None:
    file = bytes((Option.HOST_NAME, 3)) + b"abc" + b"\xff"
    message = DhcpMessage(
        1, 7, bytes(16), file=file.ljust(128, b"\0"), options=((Option.OVERLOAD, b"\x01"),)
    )
    parsed = parse_dhcpv4(message.to_bytes())
    assert parsed.option(Option.HOST_NAME) == b"abc"
    assert parsed.option(Option.OVERLOAD) is None
    assert parse_dhcpv4(parsed.to_bytes()) == parsed


def test_overload_inside_an_overloaded_field_is_ignored() -> None:
    # RFC 2131 4.1, RFC 2132 9.3: only the options field says which fields
    # hold options. An overload option found in 'file' is not one: kept, it
    # made the parsed message say "file holds options" once more, so
    # re-parsing its bytes joined file's options in a second time.
    file = bytes((Option.OVERLOAD, 1, 3, Option.HOST_NAME, 3)) + b"abc" + b"\xff"
    message = DhcpMessage(
        1, 7, bytes(16), file=file.ljust(128, b"\0"), options=((Option.OVERLOAD, b"\x01"),)
    )
    parsed = parse_dhcpv4(message.to_bytes())
    assert parsed.option(Option.HOST_NAME) == b"abc"
    assert parsed.option(Option.OVERLOAD) is None
    assert parse_dhcpv4(parsed.to_bytes()) == parsed


@pytest.mark.parametrize(
    "data",
    [
        bytes(239),  # no room for the cookie
        bytes(236) + b"\x63\x82\x53\x64",  # wrong cookie
        bytes(236) + b"\x63\x82\x53\x63" + b"\x35",  # option code without length
        bytes(236) + b"\x63\x82\x53\x63" + b"\x35\x05\x01",  # length past the end
    ],
)
def test_dhcpv4_malformed(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_dhcpv4(data)


@st.composite
def classless_routes(draw: st.DrawFn) -> ClasslessRoute:
    width = draw(st.integers(0, 32))
    significant = (width + 7) // 8
    destination = draw(ipv4_addrs)[:significant].ljust(4, b"\0")
    return ClasslessRoute(destination, width, draw(ipv4_addrs))


@given(st.lists(classless_routes(), max_size=6))
def test_classless_routes_round_trip(routes: list[ClasslessRoute]) -> None:
    assert decode_classless_routes(encode_classless_routes(routes)) == tuple(routes)


def test_classless_routes_rfc3442_example() -> None:
    # RFC 3442's examples: 10.0.0.0/8 via 10.0.0.1 is 5 octets of destination part.
    route = ClasslessRoute(bytes([10, 0, 0, 0]), 8, bytes([10, 0, 0, 1]))
    assert encode_classless_routes([route]) == bytes([8, 10, 10, 0, 0, 1])
    with pytest.raises(ParseError):
        decode_classless_routes(bytes([33, 1, 2, 3, 4, 5, 6, 7, 8]))
    with pytest.raises(ParseError):
        decode_classless_routes(bytes([24, 10, 0]))


@given(st.lists(domain_names, max_size=6), st.booleans())
def test_domain_names_round_trip(names: list[str], compress: bool) -> None:
    wire = encode_names(names, compress=compress)
    assert decode_names(wire, pointers=compress) == tuple(names)


def test_domain_search_compresses_per_rfc3397() -> None:
    # RFC 3397 section 2's example: eng.apple.com and marketing.apple.com.
    wire = encode_domain_search(["eng.apple.com", "marketing.apple.com"])
    assert wire == (b"\x03eng\x05apple\x03com\x00" + b"\x09marketing\xc0\x04")
    assert decode_domain_search(wire) == ("eng.apple.com", "marketing.apple.com")


@pytest.mark.parametrize(
    "data",
    [
        b"\xc0\x00",  # a pointer to itself
        b"\x01a\xc0\x00",  # a pointer loop back to the start
        b"\x03ab",  # a label past the end
        b"\x40",  # reserved label type
        b"\x01.\x00",  # a dot inside a label
    ],
)
def test_domain_names_malformed(data: bytes) -> None:
    with pytest.raises(ParseError):
        decode_names(data, pointers=True)


@given(st.binary(max_size=300))
def test_domain_names_arbitrary_bytes(data: bytes) -> None:
    try:
        names = decode_names(data, pointers=True)
    except ParseError:
        return
    assert decode_names(encode_names(names, compress=True), pointers=True) == names


def test_scapy_parses_what_we_emit() -> None:
    message = DhcpMessage(
        BOOTREPLY,
        0xABCD,
        bytes.fromhex("026d73000002").ljust(16, b"\0"),
        yiaddr=bytes([172, 16, 0, 2]),
        options=(
            (Option.MESSAGE_TYPE, bytes((MessageType.OFFER,))),
            (Option.SERVER_ID, bytes([172, 16, 0, 1])),
            (Option.LEASE_TIME, (3600).to_bytes(4, "big")),
            (Option.DOMAIN_SEARCH, encode_domain_search(["corp.example"])),
        ),
    )
    packet = BOOTP(message.to_bytes())
    assert packet.xid == 0xABCD and packet.yiaddr == "172.16.0.2"
    options = dict(o for o in packet[DHCP].options if isinstance(o, tuple))
    assert options["message-type"] == 2
    assert options["server_id"] == "172.16.0.1"
    assert options["lease_time"] == 3600


def test_we_parse_what_scapy_emits() -> None:
    packet = BOOTP(chaddr=bytes.fromhex("026d73000002"), xid=99) / DHCP(
        options=[("message-type", "request"), ("requested_addr", "172.16.0.2"), "end"]
    )
    message = parse_dhcpv4(bytes(packet))
    assert message.xid == 99 and message.message_type == MessageType.REQUEST
    assert message.option(Option.REQUESTED_ADDRESS) == bytes([172, 16, 0, 2])
    assert message.hardware_address == bytes.fromhex("026d73000002")


# -- DHCPv6 ---------------------------------------------------------------------------

v6_options = st.lists(st.tuples(u16, st.binary(max_size=200)), max_size=8).map(tuple)
dhcpv6_messages = st.builds(
    Dhcpv6Message,
    msg_type=u8.filter(lambda t: t not in (12, 13)),
    transaction_id=st.integers(0, 0xFFFFFF),
    options=v6_options,
)


@given(dhcpv6_messages)
def test_dhcpv6_round_trip(message: Dhcpv6Message) -> None:
    assert parse_dhcpv6(message.to_bytes()) == message


@given(st.binary(max_size=400))
def test_dhcpv6_arbitrary_bytes(data: bytes) -> None:
    try:
        message = parse_dhcpv6(data)
    except ParseError:
        return
    assert parse_dhcpv6(message.to_bytes()) == message


ia_addresses = st.builds(IaAddress, ipv6_addrs, u32, u32, v6_options)


@given(st.builds(IaNa, u32, u32, u32, v6_options), ia_addresses)
def test_ia_na_round_trip(head: IaNa, ia_address: IaAddress) -> None:
    assert parse_ia_address(ia_address.to_bytes()) == ia_address
    ia = IaNa(head.iaid, head.t1, head.t2, ((5, ia_address.to_bytes()), *head.options))
    assert parse_ia_na(ia.to_bytes()) == ia


def test_relay_messages_are_rejected() -> None:
    with pytest.raises(ParseError):
        parse_dhcpv6(b"\x0c" + bytes(33))


def test_we_parse_what_scapy_emits_v6() -> None:
    solicit = (
        DHCP6_Solicit(trid=0x123456)
        / DHCP6OptClientId(duid=DUID_LLT(lladdr="02:6d:73:00:00:02", timeval=1))
        / DHCP6OptElapsedTime()
        / DHCP6OptIA_NA(iaid=7, ianaopts=[DHCP6OptIAAddress(addr="fd42:6d73:62::2")])
    )
    message = parse_dhcpv6(bytes(solicit))
    assert message.msg_type == 1 and message.transaction_id == 0x123456
    ia_value = message.option(3)
    assert ia_value is not None
    ia = parse_ia_na(ia_value)
    assert ia.iaid == 7
    assert parse_ia_address(ia.options[0][1]).address == bytes.fromhex(
        "fd426d73006200000000000000000002"
    )
