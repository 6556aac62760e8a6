"""The stack's DHCPv4 server, driven frame by frame (sans-IO, time as a float)."""

from __future__ import annotations

import dataclasses

import pytest

from tests.dhcp.client import (
    BROADCAST4,
    ZERO4,
    dhcp_frame,
    dhcp_replies,
    dhcp_stack,
    one_reply,
    request,
)
from tests.stack.guest import (
    BROADCAST_MAC,
    GATEWAY_MAC,
    GUEST4,
    GUEST_MAC,
    GW4,
    OTHER_MAC,
    make_stack,
    take_parsed,
)
from trionet.dhcp.config import DhcpConfig
from trionet.dhcp.v4 import LeaseState
from trionet.wire.dhcpv4 import (
    FLAG_BROADCAST,
    ClasslessRoute,
    DhcpMessage,
    MessageType,
    Option,
    decode_classless_routes,
    decode_domain_search,
)

REQUESTED = (Option.REQUESTED_ADDRESS, GUEST4)
SERVER = (Option.SERVER_ID, GW4)


def test_discover_gets_an_offer_of_the_slot_address_with_everything() -> None:
    config = DhcpConfig(search_domains=("corp.example", "example"), hostname="guest0")
    stack = dhcp_stack(config, mtu=1400)
    stack.receive_frame(dhcp_frame(request(MessageType.DISCOVER)), 0.0)
    frame, offer = one_reply(stack)
    assert offer.message_type == MessageType.OFFER
    assert offer.xid == 0x1234 and offer.hardware_address == GUEST_MAC
    assert offer.yiaddr == GUEST4
    # No broadcast flag: unicast to the offered address and the client's MAC.
    assert frame.dst_mac == GUEST_MAC and frame.src_mac == GATEWAY_MAC
    assert frame.ip is not None and frame.ip.src == GW4 and frame.ip.dst == GUEST4
    options = dict(offer.options)
    assert options[Option.SERVER_ID] == GW4
    assert options[Option.ROUTER] == GW4
    assert options[Option.DNS_SERVERS] == GW4
    assert options[Option.SUBNET_MASK] == bytes([255, 255, 255, 252])
    assert options[Option.INTERFACE_MTU] == (1400).to_bytes(2, "big")
    assert int.from_bytes(options[Option.LEASE_TIME], "big") == 3600
    assert int.from_bytes(options[Option.RENEWAL_TIME], "big") == 1800
    assert int.from_bytes(options[Option.REBINDING_TIME], "big") == 3150
    assert decode_domain_search(options[Option.DOMAIN_SEARCH]) == ("corp.example", "example")
    assert options[Option.DOMAIN_NAME] == b"corp.example"
    assert options[Option.HOST_NAME] == b"guest0"
    # The gateway is inside the /30: no classless routes needed.
    assert Option.CLASSLESS_ROUTES not in options
    assert stack.dhcpv4 is not None and stack.dhcpv4.lease.state is LeaseState.OFFERED


def test_broadcast_flag_gets_a_broadcast_reply() -> None:
    stack = dhcp_stack()
    stack.receive_frame(dhcp_frame(request(MessageType.DISCOVER, flags=FLAG_BROADCAST)), 0.0)
    frame, offer = one_reply(stack)
    assert frame.dst_mac == BROADCAST_MAC
    assert frame.ip is not None and frame.ip.dst == BROADCAST4
    assert offer.flags == FLAG_BROADCAST


def test_request_is_acked_and_the_lease_runs_with_the_clock() -> None:
    stack = dhcp_stack(DhcpConfig(lease_time=100))
    stack.receive_frame(dhcp_frame(request(MessageType.REQUEST, REQUESTED, SERVER)), 5.0)
    _, ack = one_reply(stack)
    assert ack.message_type == MessageType.ACK and ack.yiaddr == GUEST4
    lease = stack.dhcpv4.lease if stack.dhcpv4 else None
    assert lease is not None and lease.state is LeaseState.BOUND
    assert lease.active(104.9) and not lease.active(105.0)


def test_renewal_unicast_to_the_server_is_answered_not_relayed() -> None:
    stack = dhcp_stack()
    renew = request(MessageType.REQUEST, ciaddr=GUEST4)
    stack.receive_frame(dhcp_frame(renew, src=GUEST4, dst=GW4, dst_mac=GATEWAY_MAC), 1.0)
    frame, ack = one_reply(stack)
    assert ack.message_type == MessageType.ACK
    assert frame.ip is not None and frame.ip.dst == GUEST4 and frame.dst_mac == GUEST_MAC
    assert not stack.take_events()  # never a UDP flow to the host's port 67


def test_long_run_of_renewals_keeps_the_lease() -> None:
    """A client renewing at T1 for a simulated week never loses its lease."""
    lease_time = 600
    stack = dhcp_stack(DhcpConfig(lease_time=lease_time))
    now = 0.0
    stack.receive_frame(dhcp_frame(request(MessageType.DISCOVER)), now)
    one_reply(stack)
    stack.receive_frame(dhcp_frame(request(MessageType.REQUEST, REQUESTED, SERVER)), now)
    _, ack = one_reply(stack)
    renewals = 0
    while now < 7 * 24 * 3600:
        t1 = int.from_bytes(dict(ack.options)[Option.RENEWAL_TIME], "big")
        now += t1
        assert stack.dhcpv4 is not None and stack.dhcpv4.lease.active(now)
        stack.poll(now)  # timers in between change nothing
        renew = request(MessageType.REQUEST, ciaddr=GUEST4, xid=renewals)
        stack.receive_frame(dhcp_frame(renew, src=GUEST4, dst=GW4, dst_mac=GATEWAY_MAC), now)
        _, ack = one_reply(stack)
        assert ack.message_type == MessageType.ACK and ack.xid == renewals
        renewals += 1
    assert renewals == 7 * 24 * 3600 // 300
    # And a client that stops renewing loses it once the lease runs out.
    assert not stack.dhcpv4.lease.active(now + lease_time)


@pytest.mark.parametrize(
    "message",
    [
        request(MessageType.REQUEST, (Option.REQUESTED_ADDRESS, bytes([10, 0, 2, 15]))),
        request(MessageType.REQUEST, (Option.REQUESTED_ADDRESS, bytes([10, 0, 2, 15])), SERVER),
        request(MessageType.REQUEST, ciaddr=bytes([10, 0, 2, 15])),
    ],
    ids=["init-reboot", "selecting", "rebinding"],
)
def test_request_for_another_address_gets_a_broadcast_nak(message: DhcpMessage) -> None:
    stack = dhcp_stack()
    stack.receive_frame(dhcp_frame(message), 0.0)
    frame, nak = one_reply(stack)
    assert nak.message_type == MessageType.NAK
    assert nak.yiaddr == ZERO4
    assert frame.dst_mac == BROADCAST_MAC and frame.ip is not None and frame.ip.dst == BROADCAST4
    assert dict(nak.options)[Option.SERVER_ID] == GW4


def test_request_for_another_server_is_ignored() -> None:
    stack = dhcp_stack()
    other = (Option.SERVER_ID, bytes([10, 0, 2, 2]))
    stack.receive_frame(dhcp_frame(request(MessageType.REQUEST, REQUESTED, other)), 0.0)
    assert not stack.take_frames()
    assert stack.drops["dhcp_other_server"] == 1


def test_inform_gets_configuration_without_a_lease() -> None:
    stack = dhcp_stack()
    inform = request(MessageType.INFORM, ciaddr=GUEST4)
    stack.receive_frame(dhcp_frame(inform, src=GUEST4), 0.0)
    frame, ack = one_reply(stack)
    options = dict(ack.options)
    assert ack.message_type == MessageType.ACK and ack.yiaddr == ZERO4 and ack.ciaddr == GUEST4
    assert Option.LEASE_TIME not in options and Option.RENEWAL_TIME not in options
    assert options[Option.DNS_SERVERS] == GW4
    assert frame.ip is not None and frame.ip.dst == GUEST4


def test_release_and_decline_are_recorded_without_a_reply() -> None:
    stack = dhcp_stack()
    stack.receive_frame(dhcp_frame(request(MessageType.REQUEST, REQUESTED, SERVER)), 0.0)
    one_reply(stack)
    release = request(MessageType.RELEASE, SERVER, ciaddr=GUEST4)
    stack.receive_frame(dhcp_frame(release, src=GUEST4, dst=GW4, dst_mac=GATEWAY_MAC), 1.0)
    assert not stack.take_frames()
    assert stack.dhcpv4 is not None and stack.dhcpv4.lease.state is LeaseState.RELEASED
    stack.receive_frame(dhcp_frame(request(MessageType.DECLINE, REQUESTED, SERVER)), 2.0)
    assert not stack.take_frames()
    assert stack.dhcpv4.lease.state is LeaseState.DECLINED
    assert stack.drops["dhcp_declined"] == 1


@pytest.mark.parametrize(
    "message",
    [
        request(MessageType.RELEASE, (Option.SERVER_ID, bytes([10, 0, 2, 2])), ciaddr=GUEST4),
        request(MessageType.RELEASE, SERVER, ciaddr=bytes([10, 0, 2, 15])),
        request(MessageType.DECLINE, (Option.REQUESTED_ADDRESS, bytes([10, 0, 2, 15])), SERVER),
    ],
    ids=["release-other-server", "release-other-address", "decline-other-address"],
)
def test_release_or_decline_of_another_lease_changes_nothing_and_is_counted(
    message: DhcpMessage,
) -> None:
    stack = dhcp_stack()
    stack.receive_frame(dhcp_frame(request(MessageType.REQUEST, REQUESTED, SERVER)), 0.0)
    one_reply(stack)
    stack.receive_frame(dhcp_frame(message, src=GUEST4, dst=GW4, dst_mac=GATEWAY_MAC), 1.0)
    assert not stack.take_frames()
    assert stack.dhcpv4 is not None and stack.dhcpv4.lease.state is LeaseState.BOUND
    assert stack.drops["dhcp_not_our_lease"] == 1


def test_gateway_outside_the_subnet_gets_classless_routes() -> None:
    # An explicit guest address at the start of its /30 puts the gateway below it.
    guest, gateway = bytes([10, 0, 0, 4]), bytes([10, 0, 0, 3])
    stack = dhcp_stack(guest_ipv4=guest, gateway_ipv4=gateway)
    windows = (Option.PARAMETER_LIST, bytes((1, 3, 6, 15, 33, 44, 46, 47, 31, 43, 121, 249)))
    stack.receive_frame(dhcp_frame(request(MessageType.DISCOVER, windows)), 0.0)
    _, offer = one_reply(stack)
    options = dict(offer.options)
    routes = decode_classless_routes(options[Option.CLASSLESS_ROUTES])
    assert routes == (
        ClasslessRoute(gateway, 32, ZERO4),
        ClasslessRoute(ZERO4, 0, gateway),
    )
    assert options[Option.MS_CLASSLESS_ROUTES] == options[Option.CLASSLESS_ROUTES]


#: a search list near the longest the dhcp section accepts (497 of 512 bytes)
LONG_DOMAINS = tuple(f"{'d' * 60}.example{i}" for i in range(7))


def test_reply_fits_the_smallest_message_a_client_takes() -> None:
    stack = dhcp_stack(DhcpConfig(search_domains=LONG_DOMAINS, hostname="h" * 63))
    stack.receive_frame(dhcp_frame(request(MessageType.DISCOVER)), 0.0)
    frame, offer = one_reply(stack)
    assert frame.ip is not None and 20 + 8 + len(offer.to_bytes()) <= 576
    assert stack.drops["dhcp_option_trimmed"] >= 1
    # What must be there still is.
    assert offer.option(Option.ROUTER) == GW4


def test_larger_maximum_message_size_keeps_the_search_list() -> None:
    stack = dhcp_stack(DhcpConfig(search_domains=LONG_DOMAINS))
    size = (Option.MAX_MESSAGE_SIZE, (1500).to_bytes(2, "big"))
    stack.receive_frame(dhcp_frame(request(MessageType.DISCOVER, size)), 0.0)
    _, offer = one_reply(stack)
    search = offer.option(Option.DOMAIN_SEARCH)
    assert search is not None and decode_domain_search(search) == LONG_DOMAINS


def test_replies_never_exceed_the_link_mtu() -> None:
    # The stack does not fragment DHCP replies: a client's large maximum
    # message size must not let one grow past the link.
    stack = dhcp_stack(DhcpConfig(search_domains=LONG_DOMAINS), mtu=800)
    size = (Option.MAX_MESSAGE_SIZE, (1500).to_bytes(2, "big"))
    stack.receive_frame(dhcp_frame(request(MessageType.DISCOVER, size)), 0.0)
    frame, offer = one_reply(stack)
    assert 20 + 8 + len(frame.payload) <= 800
    assert stack.drops["dhcp_option_trimmed"] >= 1
    assert offer.option(Option.ROUTER) == GW4


CLIENT_ID = (Option.CLIENT_ID, b"\x01" + GUEST_MAC)


@pytest.mark.parametrize(
    "message",
    [
        request(MessageType.DISCOVER, CLIENT_ID),
        request(MessageType.REQUEST, REQUESTED, SERVER, CLIENT_ID),
        request(MessageType.REQUEST, (Option.REQUESTED_ADDRESS, bytes([10, 0, 2, 15])), CLIENT_ID),
    ],
    ids=["offer", "ack", "nak"],
)
def test_client_identifier_is_returned_unaltered(message: DhcpMessage) -> None:
    # RFC 6842 3 (updating RFC 2131's table 3): a client identifier the
    # client sent MUST come back, unaltered, in OFFER, ACK and NAK.
    stack = dhcp_stack()
    stack.receive_frame(dhcp_frame(message), 0.0)
    _, reply = one_reply(stack)
    assert reply.option(Option.CLIENT_ID) == CLIENT_ID[1]


@pytest.mark.parametrize("kind", [MessageType.DISCOVER, MessageType.REQUEST])
def test_an_identifier_too_long_for_the_clients_maximum_is_left_out(kind: MessageType) -> None:
    # 800 bytes of identifier and a 576-byte maximum contradict each other;
    # the reply still fits (a DISCOVER gets an OFFER, the REQUEST a NAK).
    stack = dhcp_stack()
    stack.receive_frame(dhcp_frame(request(kind, (Option.CLIENT_ID, b"\x00" * 800))), 0.0)
    _, reply = one_reply(stack)
    assert 20 + 8 + len(reply.to_bytes()) <= 576
    assert reply.option(Option.CLIENT_ID) is None
    assert stack.drops["dhcp_option_trimmed"] >= 1


def test_no_client_identifier_is_invented() -> None:
    stack = dhcp_stack()
    stack.receive_frame(dhcp_frame(request(MessageType.DISCOVER)), 0.0)
    _, offer = one_reply(stack)
    assert offer.option(Option.CLIENT_ID) is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (request(MessageType.DISCOVER, chaddr=OTHER_MAC), "dhcp_foreign_client"),
        (DhcpMessage(1, 1, GUEST_MAC.ljust(16, b"\0")), "dhcp_no_message_type"),
        (request(MessageType.OFFER), "dhcp_unexpected_type"),
        (
            DhcpMessage(1, 1, GUEST_MAC.ljust(16, b"\0"), giaddr=GW4, options=((53, b"\x01"),)),
            "dhcp_relayed",
        ),
        (
            DhcpMessage(2, 1, GUEST_MAC.ljust(16, b"\0"), options=((53, b"\x01"),)),
            "dhcp_not_request",
        ),
        (b"\x01" * 100, "dhcp_malformed"),
        (dataclasses.replace(request(MessageType.DISCOVER), hlen=16), "dhcp_not_ethernet"),
        (dataclasses.replace(request(MessageType.DISCOVER), htype=6), "dhcp_not_ethernet"),
    ],
)
def test_unanswerable_messages_are_counted(message: DhcpMessage | bytes, reason: str) -> None:
    stack = dhcp_stack()
    stack.receive_frame(dhcp_frame(message), 0.0)
    assert not stack.take_frames()
    assert stack.drops[reason] == 1


def test_malformed_and_oversized_options_are_dropped_and_counted() -> None:
    stack = dhcp_stack()
    message = request(
        MessageType.DISCOVER,
        (Option.REQUESTED_ADDRESS, b"\x0a\x00\x02"),  # 3 bytes: malformed
        (Option.CLIENT_ID, b"\x01" + b"x" * 2000),  # joined from 8 pieces: oversized
    )
    stack.receive_frame(dhcp_frame(message), 0.0)
    _, offer = one_reply(stack)  # the message itself is still answered
    assert offer.message_type == MessageType.OFFER
    assert stack.drops["dhcp_option_malformed"] == 1
    assert stack.drops["dhcp_option_oversized"] == 1


def test_off_means_broadcasts_are_dropped_as_before() -> None:
    for stack in (make_stack(), dhcp_stack(DhcpConfig(enabled=False))):
        stack.receive_frame(dhcp_frame(request(MessageType.DISCOVER)), 0.0)
        assert not stack.take_frames()
        assert stack.drops["link_broadcast"] == 1
        assert stack.dhcpv4 is None


def test_other_broadcasts_are_still_dropped() -> None:
    from tests.stack.guest import v4
    from trionet.wire.udp import UdpHeader

    stack = dhcp_stack()
    stack.receive_frame(
        v4(UdpHeader(5000, 137), b"x", src=GUEST4, dst=BROADCAST4, dst_mac=BROADCAST_MAC), 0.0
    )
    assert not take_parsed(stack)
    assert stack.drops["link_broadcast"] == 1
    assert not dhcp_replies(stack)
