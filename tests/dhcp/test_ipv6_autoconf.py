"""Router advertisements, DHCPv6 and SLAAC sources, through the sans-IO stack."""

from __future__ import annotations

import pytest

from tests.dhcp.client import dhcp_stack, dhcpv6_frame, dhcpv6_reply
from tests.stack.guest import (
    ALL_NODES,
    GATEWAY_MAC,
    GUEST6,
    GUEST6_LL,
    GUEST_MAC,
    GW4,
    GW6,
    GW6_LL,
    REMOTE6,
    arp_request,
    make_stack,
    parse_out,
    take_parsed,
    v6,
)
from trionet.dhcp.config import MAX_SEARCH_LIST_BYTES, DhcpConfig
from trionet.dhcp.v6 import MAX_IAS, MAX_WITHDRAWN
from trionet.stack.flows import FlowKey, TcpConnectRequested, UdpReceived
from trionet.wire.dhcpv6 import (
    Dhcpv6Message,
    IaAddress,
    IaNa,
    MessageType,
    Option,
    Status,
    parse_ia_address,
    parse_ia_na,
)
from trionet.wire.domain_names import decode_names, encode_names
from trionet.wire.icmpv6 import (
    RA_MANAGED,
    RA_OTHER,
    NdpPrefixInfo,
    RouterAdvertisement,
    RouterSolicitation,
)
from trionet.wire.tcp import TcpFlags, TcpHeader
from trionet.wire.udp import UdpHeader

ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
SLAAC = GUEST6[:8] + bytes.fromhex("006d73fffe000002")
PRIVACY = GUEST6[:8] + bytes.fromhex("3a1f00c2d9e84b17")


def router_advertisements(stack: object) -> list[RouterAdvertisement]:
    out = []
    for frame in take_parsed(stack):  # type: ignore[arg-type]
        assert isinstance(frame.icmp6, RouterAdvertisement), frame
        assert frame.ip is not None and frame.ip.src == GW6_LL and frame.ip.dst == ALL_NODES
        assert frame.ip.hop_limit == 255 and frame.dst_mac == bytes.fromhex("333300000001")
        out.append(frame.icmp6)
    return out


def rs(hop_limit: int = 255) -> bytes:
    return v6(RouterSolicitation(), src=GUEST6_LL, dst=ALL_ROUTERS, hop_limit=hop_limit)


# -- router advertisements --------------------------------------------------------------


def test_advertisement_carries_prefix_mtu_dns_and_flags() -> None:
    stack = dhcp_stack(DhcpConfig(search_domains=("corp.example",), ra_interval=200), mtu=1400)
    stack.receive_frame(rs(), 0.0)
    (ra,) = router_advertisements(stack)
    assert ra.flags == RA_MANAGED | RA_OTHER
    assert ra.router_lifetime == 600 and ra.source_lladdr == GATEWAY_MAC and ra.mtu == 1400
    assert ra.prefixes == (NdpPrefixInfo(GUEST6[:8] + bytes(8), 64, True, True, 86400, 14400),)
    assert ra.dns_servers == (GW6,) and ra.dns_lifetime == 600
    assert ra.search_domains == ("corp.example",) and ra.dnssl_lifetime == 600


def _longest_search_list() -> tuple[str, ...]:
    # 7 x 73 bytes: the most the dhcp section's limit lets through.
    names = tuple("x" * 60 + f".d{i}.example" for i in range(7))
    assert len(encode_names(names)) <= MAX_SEARCH_LIST_BYTES
    return names


def test_the_longest_search_list_still_fits_a_1280_byte_link() -> None:
    # Router advertisements and DHCPv6 replies are sent unfragmented: a guest
    # on a 1280-byte link that dropped them would get no IPv6 at all.
    config = DhcpConfig(search_domains=_longest_search_list())
    stack = dhcp_stack(config, mtu=1280)
    stack.receive_frame(rs(), 0.0)
    (frame,) = stack.take_frames()
    assert len(frame) - 14 <= 1280  # the IPv6 packet, without its Ethernet header
    ra = parse_out(frame).icmp6
    assert isinstance(ra, RouterAdvertisement) and len(ra.search_domains) == 7
    held = tuple(
        (Option.IAADDR, IaAddress(REMOTE6[:12] + i.to_bytes(4, "big"), 1, 1).to_bytes())
        for i in range(50)
    )
    ia = (Option.IA_NA, IaNa(7, 0, 0, held).to_bytes())
    server = (Option.SERVERID, bytes.fromhex("00030001") + GATEWAY_MAC)
    long_client = (Option.CLIENTID, bytes.fromhex("0002") + bytes(128))
    renew = Dhcpv6Message(MessageType.RENEW, 3, (long_client, server, ia))
    stack.receive_frame(dhcpv6_frame(renew, src=GUEST6_LL), 0.0)
    _, reply = dhcpv6_reply(stack)
    assert reply.option(Option.DOMAIN_LIST) is not None
    assert len(reply.to_bytes()) + 48 <= 1280


def test_flags_follow_the_config() -> None:
    stack = dhcp_stack(DhcpConfig(ra_managed=False, ra_other=False))
    stack.receive_frame(rs(), 0.0)
    (ra,) = router_advertisements(stack)
    assert ra.flags == 0 and ra.search_domains == ()


def test_unsolicited_schedule_starts_with_the_link() -> None:
    stack = dhcp_stack(DhcpConfig(ra_interval=30))
    assert stack.next_deadline() is None  # nobody there to hear it yet
    stack.receive_frame(arp_request(GW4), 5.0)  # IPv4 alone starts nothing
    stack.take_frames()
    assert stack.next_deadline() is None
    stack.receive_frame(v6(UdpHeader(1, 2), b"x", src=GUEST6, dst=REMOTE6), 10.0)
    stack.take_events()
    assert stack.next_deadline() == 10.0
    sent = []
    now = 10.0
    while now < 100.0:
        deadline = stack.next_deadline()
        assert deadline is not None
        now = deadline
        stack.poll(now)
        if router_advertisements(stack):
            sent.append(now)
    # Three initial advertisements 4 s apart, then one per interval.
    assert sent == [10.0, 14.0, 18.0, 48.0, 78.0, 108.0][: len(sent)]
    assert len(sent) >= 5


def test_solicitations_are_answered_but_rate_limited() -> None:
    stack = dhcp_stack()
    stack.receive_frame(rs(), 1.0)
    assert len(router_advertisements(stack)) == 1
    stack.receive_frame(rs(), 1.5)
    assert not router_advertisements(stack)
    assert stack.drops["ra_rate_limited"] == 1
    stack.receive_frame(rs(), 2.6)
    assert len(router_advertisements(stack)) == 1


def test_solicitation_not_from_the_link_is_ignored() -> None:
    stack = dhcp_stack()
    stack.receive_frame(rs(hop_limit=64), 0.0)
    assert not take_parsed(stack)
    assert stack.drops["ndp_ignored"] == 1


def test_solicitation_from_the_unspecified_address_with_a_link_address_is_ignored() -> None:
    # RFC 4861 6.1.1: from "::" a solicitation MUST NOT carry a source
    # link-layer address option; one that does is discarded. Without the
    # option, "::" is a host that has no address yet, and is answered.
    unspecified = bytes(16)
    stack = dhcp_stack()
    bogus = RouterSolicitation(source_lladdr=GUEST_MAC)
    stack.receive_frame(v6(bogus, src=unspecified, dst=ALL_ROUTERS, hop_limit=255), 0.0)
    assert not take_parsed(stack)
    assert stack.drops["ndp_ignored"] == 1
    plain = RouterSolicitation()
    stack.receive_frame(v6(plain, src=unspecified, dst=ALL_ROUTERS, hop_limit=255), 0.0)
    assert len(router_advertisements(stack)) == 1


def test_no_advertisements_when_off() -> None:
    for config in (DhcpConfig(router_advertisements=False), DhcpConfig(enabled=False)):
        stack = dhcp_stack(config)
        stack.receive_frame(rs(), 0.0)
        assert not take_parsed(stack) and stack.next_deadline() is None


# -- SLAAC sources ------------------------------------------------------------------------


@pytest.mark.parametrize("source", [SLAAC, PRIVACY], ids=["eui64", "privacy"])
def test_addresses_the_guest_formed_in_its_64_are_its_own(source: bytes) -> None:
    stack = make_stack()
    syn = TcpHeader(40000, 443, 1000, 0, TcpFlags.SYN, 64240)
    stack.receive_frame(v6(syn, src=source, dst=REMOTE6), 0.0)
    (event,) = stack.take_events()
    assert isinstance(event, TcpConnectRequested)
    assert event.key == FlowKey(6, source, 40000, REMOTE6, 443)
    assert stack.tcp_accept(event.key, 0.0)
    (synack,) = take_parsed(stack)
    assert synack.ip is not None and synack.ip.dst == source  # answered where it came from
    # UDP too, and replies go back to the address that sent.
    stack.receive_frame(v6(UdpHeader(5353, 53), b"q", src=source, dst=GW6), 0.1)
    (udp,) = stack.take_events()
    assert isinstance(udp, UdpReceived) and udp.key.guest_addr == source
    stack.udp_send(udp.key, b"answer", 0.2)
    (reply,) = take_parsed(stack)
    assert reply.ip is not None and reply.ip.dst == source and reply.payload == b"answer"


def test_two_guest_addresses_are_two_flows() -> None:
    stack = make_stack()
    for source in (GUEST6, SLAAC):
        stack.receive_frame(v6(UdpHeader(5000, 53), b"q", src=source, dst=GW6), 0.0)
    keys = [event.key for event in stack.take_events()]  # type: ignore[union-attr]
    assert [key.guest_addr for key in keys] == [GUEST6, SLAAC]


@pytest.mark.parametrize(
    "source",
    [
        bytes.fromhex("fd426d73006300000000000000000002"),  # the next slot's /64
        bytes.fromhex("20010db8000000000000000000000002"),  # anywhere else
        GW6,  # the gateway itself
        GUEST6[:8] + bytes(8),  # the subnet-router anycast address
    ],
    ids=["other-slot", "elsewhere", "gateway", "anycast"],
)
def test_spoofed_sources_outside_the_guest_are_still_dropped(source: bytes) -> None:
    stack = make_stack()
    stack.receive_frame(v6(UdpHeader(5000, 53), b"q", src=source, dst=REMOTE6), 0.0)
    assert not stack.take_events()
    assert stack.drops["bad_source"] == 1


# -- DHCPv6 -----------------------------------------------------------------------------

CLIENT_DUID = bytes.fromhex("00030001") + bytes.fromhex("5a9400000002")
CLIENT_ID = (Option.CLIENTID, CLIENT_DUID)
IA = (Option.IA_NA, IaNa(7, 0, 0).to_bytes())


def solicit(*options: tuple[int, bytes]) -> Dhcpv6Message:
    return Dhcpv6Message(MessageType.SOLICIT, 0xABCDEF, (CLIENT_ID, *options))


def ia_address(message: Dhcpv6Message) -> IaAddress:
    ia_value = message.option(Option.IA_NA)
    assert ia_value is not None
    ia = parse_ia_na(ia_value)
    assert ia.iaid == 7
    (code, value), *_ = ia.options
    assert code == Option.IAADDR
    return parse_ia_address(value)


def test_stateful_solicit_then_request() -> None:
    stack = dhcp_stack(DhcpConfig(lease_time=1000, search_domains=("corp.example",)))
    stack.receive_frame(dhcpv6_frame(solicit(IA), src=GUEST6_LL), 0.0)
    frame, advertise = dhcpv6_reply(stack)
    assert frame.ip is not None and frame.ip.src == GW6_LL and frame.ip.dst == GUEST6_LL
    assert advertise.msg_type == MessageType.ADVERTISE and advertise.transaction_id == 0xABCDEF
    assert advertise.option(Option.CLIENTID) == CLIENT_DUID
    server_id = advertise.option(Option.SERVERID)
    assert server_id == bytes.fromhex("00030001") + GATEWAY_MAC
    assert ia_address(advertise) == IaAddress(GUEST6, 1000, 1000)
    assert advertise.option(Option.DNS_SERVERS) == GW6
    domains = advertise.option(Option.DOMAIN_LIST)
    assert domains is not None and decode_names(domains) == ("corp.example",)
    assert advertise.option(Option.PREFERENCE) == b"\xff"
    assert stack.dhcpv6 is not None and stack.dhcpv6.bound_until is None  # only advertised

    request = Dhcpv6Message(
        MessageType.REQUEST, 0x111111, (CLIENT_ID, (Option.SERVERID, server_id), IA)
    )
    stack.receive_frame(dhcpv6_frame(request, src=GUEST6_LL), 1.0)
    _, reply = dhcpv6_reply(stack)
    assert reply.msg_type == MessageType.REPLY and ia_address(reply).address == GUEST6
    ia_value = reply.option(Option.IA_NA)
    assert ia_value is not None and parse_ia_na(ia_value).t1 == 500
    assert stack.dhcpv6.bound_until == 1001.0


def test_rapid_commit_binds_at_once() -> None:
    stack = dhcp_stack()
    stack.receive_frame(dhcpv6_frame(solicit(IA, (Option.RAPID_COMMIT, b"")), src=GUEST6_LL), 0.0)
    _, reply = dhcpv6_reply(stack)
    assert reply.msg_type == MessageType.REPLY
    assert reply.option(Option.RAPID_COMMIT) == b""
    assert ia_address(reply).address == GUEST6


def test_one_address_per_client() -> None:
    stack = dhcp_stack()
    second = (Option.IA_NA, IaNa(8, 0, 0).to_bytes())
    stack.receive_frame(dhcpv6_frame(solicit(IA, second), src=GUEST6_LL), 0.0)
    _, advertise = dhcpv6_reply(stack)
    ias = [parse_ia_na(value) for value in advertise.all(Option.IA_NA)]
    assert [ia.iaid for ia in ias] == [7, 8]
    status = dict(ias[1].options)[Option.STATUS_CODE]
    assert int.from_bytes(status[:2], "big") == Status.NO_ADDRS_AVAIL


@pytest.mark.parametrize("kind", [MessageType.RENEW, MessageType.REBIND])
def test_renewing_an_address_never_bound_here_withdraws_it(kind: MessageType) -> None:
    # RFC 8415 18.3.4 (Renew), 18.3.5 (Rebind): an address in the IA that
    # is not appropriate for the link comes back with lifetimes of 0, so a
    # guest that carried a lease from elsewhere stops using it at once.
    stack = dhcp_stack(DhcpConfig(lease_time=1000))
    held = [(Option.IAADDR, IaAddress(a, 500, 600).to_bytes()) for a in (REMOTE6, GUEST6)]
    ia = (Option.IA_NA, IaNa(7, 0, 0, tuple(held)).to_bytes())
    server = (Option.SERVERID, bytes.fromhex("00030001") + GATEWAY_MAC)
    options = (CLIENT_ID, server, ia) if kind == MessageType.RENEW else (CLIENT_ID, ia)
    stack.receive_frame(dhcpv6_frame(Dhcpv6Message(kind, 3, options), src=GUEST6_LL), 0.0)
    _, reply = dhcpv6_reply(stack)
    ia_value = reply.option(Option.IA_NA)
    assert ia_value is not None
    addresses = [parse_ia_address(v) for c, v in parse_ia_na(ia_value).options if c == 5]
    assert addresses == [IaAddress(GUEST6, 1000, 1000), IaAddress(REMOTE6, 0, 0)]


def test_an_advertise_withdraws_nothing() -> None:
    stack = dhcp_stack()
    hint = (Option.IAADDR, IaAddress(REMOTE6, 0, 0).to_bytes())
    ia = (Option.IA_NA, IaNa(7, 0, 0, (hint,)).to_bytes())
    stack.receive_frame(dhcpv6_frame(solicit(ia), src=GUEST6_LL), 0.0)
    _, advertise = dhcpv6_reply(stack)
    ia_value = advertise.option(Option.IA_NA)
    assert ia_value is not None and len(parse_ia_na(ia_value).options) == 1


def test_stateless_information_request() -> None:
    stack = dhcp_stack(DhcpConfig(lease_time=900))
    message = Dhcpv6Message(MessageType.INFORMATION_REQUEST, 5, (CLIENT_ID,))
    stack.receive_frame(dhcpv6_frame(message, src=GUEST6_LL), 0.0)
    _, reply = dhcpv6_reply(stack)
    assert reply.msg_type == MessageType.REPLY
    assert reply.option(Option.DNS_SERVERS) == GW6
    assert reply.option(Option.INFORMATION_REFRESH_TIME) == (900).to_bytes(4, "big")
    assert reply.option(Option.IA_NA) is None


def test_confirm_says_whether_the_address_is_on_link() -> None:
    stack = dhcp_stack()
    for address, status in ((SLAAC, Status.SUCCESS), (REMOTE6, Status.NOT_ON_LINK)):
        held = IaAddress(address, 0, 0).to_bytes()
        ia = (Option.IA_NA, IaNa(7, 0, 0, ((Option.IAADDR, held),)).to_bytes())
        message = Dhcpv6Message(MessageType.CONFIRM, 9, (CLIENT_ID, ia))
        stack.receive_frame(dhcpv6_frame(message, src=GUEST6_LL), 0.0)
        _, reply = dhcpv6_reply(stack)
        code = reply.option(Option.STATUS_CODE)
        assert code is not None and int.from_bytes(code[:2], "big") == status


def test_confirm_without_addresses_gets_no_reply() -> None:
    # RFC 8415 18.3.3: with no address in any IA there is nothing to
    # confirm, and the server MUST NOT reply (a Success would tell the
    # client an address it never named is still good).
    stack = dhcp_stack()
    for ias in ((), (IA,), ((Option.IA_TA, (7).to_bytes(4, "big")),)):
        message = Dhcpv6Message(MessageType.CONFIRM, 9, (CLIENT_ID, *ias))
        stack.receive_frame(dhcpv6_frame(message, src=GUEST6_LL), 0.0)
        assert not [f for f in take_parsed(stack) if f.udp is not None]
    assert stack.drops["dhcpv6_confirm_empty"] == 3


@pytest.mark.parametrize(
    "ia",
    [
        (Option.IA_PD, IaNa(7, 0, 0).to_bytes()),
        (Option.IA_TA, b""),  # empty, yet an IA option all the same
    ],
    ids=["ia_pd", "empty_ia_ta"],
)
def test_information_request_with_any_ia_is_discarded(ia: tuple[int, bytes]) -> None:
    # RFC 8415 16.12: an Information-request that includes an IA option
    # (IA_NA, IA_TA or IA_PD) MUST be discarded.
    stack = dhcp_stack()
    message = Dhcpv6Message(MessageType.INFORMATION_REQUEST, 1, (CLIENT_ID, ia))
    stack.receive_frame(dhcpv6_frame(message, src=GUEST6_LL), 0.0)
    assert not [f for f in take_parsed(stack) if f.udp is not None]
    assert stack.drops["dhcpv6_unexpected_option"] == 1


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            Dhcpv6Message(
                MessageType.REQUEST, 1, (CLIENT_ID, (Option.SERVERID, b"\x00\x01other"), IA)
            ),
            "dhcpv6_other_server",
        ),
        (Dhcpv6Message(MessageType.SOLICIT, 1, (IA,)), "dhcpv6_no_client_id"),
        (Dhcpv6Message(MessageType.ADVERTISE, 1, (CLIENT_ID,)), "dhcpv6_unexpected_type"),
        (
            Dhcpv6Message(MessageType.SOLICIT, 1, ((Option.CLIENTID, b"x"),)),
            "dhcpv6_option_malformed",
        ),
        (
            Dhcpv6Message(MessageType.INFORMATION_REQUEST, 1, (CLIENT_ID, IA)),
            "dhcpv6_unexpected_option",
        ),
    ],
)
def test_unanswerable_dhcpv6_is_counted(message: Dhcpv6Message, reason: str) -> None:
    stack = dhcp_stack()
    stack.receive_frame(dhcpv6_frame(message, src=GUEST6_LL), 0.0)
    assert not [f for f in take_parsed(stack) if f.udp is not None]
    assert stack.drops[reason] == 1


def test_malformed_dhcpv6_and_spoofed_sources_are_dropped() -> None:
    stack = dhcp_stack()
    frame = v6(
        UdpHeader(546, 547),
        b"\x01\x00\x00\x01\x00\x01\xff\xff",
        src=GUEST6_LL,
        dst=bytes.fromhex("ff020000000000000000000000010002"),
        dst_mac=bytes.fromhex("333300010002"),
    )
    stack.receive_frame(frame, 0.0)
    assert stack.drops["dhcpv6_malformed"] == 1
    spoofed = dhcpv6_frame(solicit(IA), src=REMOTE6)
    stack.receive_frame(spoofed, 0.0)
    assert stack.drops["bad_source"] == 1
    assert not [f for f in take_parsed(stack) if f.udp is not None]


def test_dhcpv6_off_drops_as_before() -> None:
    stack = dhcp_stack(DhcpConfig(dhcpv6=False))
    stack.receive_frame(dhcpv6_frame(solicit(IA), src=GUEST6_LL), 0.0)
    assert not [f for f in take_parsed(stack) if f.udp is not None]
    assert stack.drops["bad_source"] == 1  # a link-local source to a multicast group


def test_a_request_full_of_identity_associations_gets_a_reply_that_fits_the_link() -> None:
    # Each answered IA carries a status text: several times the 8 bytes of
    # a bare IA_TA in the request. Answering all of a full-MTU request's
    # IAs made a reply far over the MTU.
    stack = dhcp_stack()
    many = [(Option.IA_TA, i.to_bytes(4, "big")) for i in range(150)]
    stack.receive_frame(dhcpv6_frame(solicit(IA, *many), src=GUEST6_LL), 0.0)
    _, advertise = dhcpv6_reply(stack)
    assert len(advertise.to_bytes()) + 48 <= 1500
    assert ia_address(advertise).address == GUEST6
    assert len(advertise.all(Option.IA_TA)) == MAX_IAS - 1
    assert stack.drops["dhcpv6_too_many_ias"] == 1


def test_a_renew_listing_many_addresses_gets_a_reply_that_fits_the_link() -> None:
    stack = dhcp_stack()
    held = tuple(
        (Option.IAADDR, IaAddress(REMOTE6[:12] + i.to_bytes(4, "big"), 1, 1).to_bytes())
        for i in range(50)
    )
    ia = (Option.IA_NA, IaNa(7, 0, 0, held).to_bytes())
    server = (Option.SERVERID, bytes.fromhex("00030001") + GATEWAY_MAC)
    renew = Dhcpv6Message(MessageType.RENEW, 3, (CLIENT_ID, server, ia))
    stack.receive_frame(dhcpv6_frame(renew, src=GUEST6_LL), 0.0)
    _, reply = dhcpv6_reply(stack)
    assert len(reply.to_bytes()) + 48 <= 1280
    ia_value = reply.option(Option.IA_NA)
    assert ia_value is not None
    assert len(parse_ia_na(ia_value).options) == 1 + MAX_WITHDRAWN
