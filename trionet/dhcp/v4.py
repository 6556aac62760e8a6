"""The DHCPv4 server's decisions (RFC 2131): one client, one lease.

The gateway's link has exactly one guest, and the guest exactly one
address, the slot's. So there is no pool and no lease database: the server
offers that address to the guest's MAC, acknowledges requests for it, and
answers NAK to a request for any other address (a guest carrying a lease
from another network then starts over at once, instead of waiting for it to
expire). Lease state is kept only to report it (``lease``), and expires
with the time passed in.

Sans-IO: :meth:`Dhcpv4Server.answer` takes a parsed message and ``now`` and
returns the reply with where it must go; the stack frames and sends it.
What cannot be answered is counted in the stack's drop counter under a
``dhcp_*`` reason.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import Counter
from dataclasses import dataclass

from trionet.dhcp.config import DhcpConfig
from trionet.wire.dhcpv4 import (
    BOOTREPLY,
    BOOTREQUEST,
    DHCP_MIN_DATAGRAM,
    FLAG_BROADCAST,
    ClasslessRoute,
    DhcpMessage,
    MessageType,
    Option,
    encode_classless_routes,
    encode_domain_search,
)

__all__ = ["Dhcpv4Reply", "Dhcpv4Server", "Lease", "LeaseState"]

_ZERO4 = bytes(4)
_BROADCAST4 = b"\xff\xff\xff\xff"
#: Options whose value has exactly this many bytes (RFC 2132); others are dropped.
_FIXED_LENGTH: dict[int, int] = {
    Option.MESSAGE_TYPE: 1,
    Option.REQUESTED_ADDRESS: 4,
    Option.SERVER_ID: 4,
    Option.MAX_MESSAGE_SIZE: 2,
    Option.LEASE_TIME: 4,
}
#: Longest option value a client may send (after RFC 3396 joining); longer is dropped.
MAX_OPTION_LEN = 1024
#: Dropped first, in this order, when a reply would exceed the client's maximum.
#: The client's own identifier goes last, and only for a client whose long
#: identifier and small maximum contradict each other.
_OPTIONAL = (Option.HOST_NAME, Option.DOMAIN_SEARCH, Option.DOMAIN_NAME, Option.CLIENT_ID)
_UDP_IP_HEADERS = 28


class LeaseState(enum.Enum):
    NONE = "none"
    OFFERED = "offered"
    BOUND = "bound"
    RELEASED = "released"
    DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class Lease:
    """What the server last told the client; ``expires`` in the stack's clock."""

    state: LeaseState
    expires: float | None = None

    def active(self, now: float) -> bool:
        return self.state is LeaseState.BOUND and self.expires is not None and now < self.expires


@dataclass(frozen=True, slots=True)
class Dhcpv4Reply:
    """A reply and its destination: ``broadcast`` means 255.255.255.255 at ff:ff:ff:ff:ff:ff."""

    message: DhcpMessage
    dst_ip: bytes
    broadcast: bool


class Dhcpv4Server:
    """Answers the one guest's DHCP messages with the one lease. See the module docstring."""

    def __init__(
        self,
        config: DhcpConfig,
        *,
        server: bytes,
        client: bytes,
        prefix_len: int,
        client_mac: bytes,
        mtu: int,
        drops: Counter[str],
    ) -> None:
        self.config = config
        self.server = server
        self.client = client
        self.client_mac = client_mac
        self.drops = drops
        self._mtu = mtu
        #: replies sent, by message type name (OFFER, ACK, NAK)
        self.sent: Counter[str] = Counter()
        self.lease = Lease(LeaseState.NONE)
        self._options = self._lease_options(prefix_len, mtu)

    def _lease_options(self, prefix_len: int, mtu: int) -> list[tuple[int, bytes]]:
        """Everything an OFFER/ACK says besides the message type, server and times."""
        mask_int = (0xFFFFFFFF << (32 - prefix_len)) & 0xFFFFFFFF
        client_int = int.from_bytes(self.client, "big")
        server_int = int.from_bytes(self.server, "big")
        network = client_int & mask_int
        broadcast = network | (~mask_int & 0xFFFFFFFF)
        options: list[tuple[int, bytes]] = [
            (Option.SUBNET_MASK, mask_int.to_bytes(4, "big")),
            (Option.ROUTER, self.server),
            (Option.DNS_SERVERS, self.server),
            (Option.INTERFACE_MTU, max(mtu, 68).to_bytes(2, "big")),
            (Option.BROADCAST_ADDRESS, broadcast.to_bytes(4, "big")),
        ]
        if not network < server_int < broadcast:
            # The gateway lies outside the guest's subnet (an explicit
            # address at the edge of its /30): a plain router option would
            # be unreachable, so say how to reach it (RFC 3442): a host
            # route on the link, then the default route through it.
            routes = encode_classless_routes(
                (
                    ClasslessRoute(self.server, 32, _ZERO4),
                    ClasslessRoute(_ZERO4, 0, self.server),
                )
            )
            options.append((Option.CLASSLESS_ROUTES, routes))
        domains = self.config.search_domains
        if domains:
            options.append((Option.DOMAIN_NAME, domains[0].encode()))
            options.append((Option.DOMAIN_SEARCH, encode_domain_search(domains)))
        if self.config.hostname is not None:
            options.append((Option.HOST_NAME, self.config.hostname.encode()))
        return options

    # -- input ---------------------------------------------------------------

    def _clean_options(self, message: DhcpMessage) -> dict[int, bytes]:
        """The client's options, without malformed or oversized ones (counted)."""
        options: dict[int, bytes] = {}
        for code, value in message.options:
            if len(value) > MAX_OPTION_LEN:
                self.drops["dhcp_option_oversized"] += 1
                continue
            expected = _FIXED_LENGTH.get(code)
            if expected is not None and len(value) != expected:
                self.drops["dhcp_option_malformed"] += 1
                continue
            options[code] = value
        return options

    def answer(self, message: DhcpMessage, now: float) -> Dhcpv4Reply | None:
        """The reply to ``message`` from the guest, or None (counted) when there is none."""
        if message.op != BOOTREQUEST:
            self.drops["dhcp_not_request"] += 1
            return None
        if message.htype != 1 or message.hlen != 6:
            self.drops["dhcp_not_ethernet"] += 1
            return None
        if message.hardware_address != self.client_mac:
            # Our only lease belongs to the guest's MAC, and every frame we
            # send goes to that MAC: another client could not even hear us.
            self.drops["dhcp_foreign_client"] += 1
            return None
        if message.giaddr != _ZERO4:
            self.drops["dhcp_relayed"] += 1  # no relay agents on a point-to-point link
            return None
        options = self._clean_options(message)
        kind = options.get(Option.MESSAGE_TYPE)
        server_id = options.get(Option.SERVER_ID)
        requested = options.get(Option.REQUESTED_ADDRESS)
        if kind is None:
            self.drops["dhcp_no_message_type"] += 1
            return None
        kind_value = kind[0]
        if kind_value == MessageType.DISCOVER:
            self.lease = Lease(LeaseState.OFFERED)
            return self._reply(message, options, MessageType.OFFER)
        if kind_value == MessageType.REQUEST:
            if server_id is not None:
                if server_id != self.server:
                    self.drops["dhcp_other_server"] += 1  # the client chose someone else
                    return None
                wanted = requested  # SELECTING
            elif requested is not None:
                wanted = requested  # INIT-REBOOT
            else:
                wanted = message.ciaddr  # RENEWING or REBINDING
            if wanted != self.client:
                self.lease = Lease(LeaseState.NONE)
                return self._nak(message, options, "requested address is not this client's")
            self.lease = Lease(LeaseState.BOUND, now + self.config.lease_time)
            return self._reply(message, options, MessageType.ACK)
        if kind_value == MessageType.INFORM:
            return self._reply(message, options, MessageType.ACK, inform=True)
        if kind_value == MessageType.RELEASE:
            if server_id == self.server and message.ciaddr == self.client:
                self.lease = Lease(LeaseState.RELEASED)
            else:
                self.drops["dhcp_not_our_lease"] += 1
            return None
        if kind_value == MessageType.DECLINE:
            # The guest saw our address in use on its link. There is no
            # other address to give; it will ask again (RFC 2131 3.1.5).
            if server_id == self.server and requested == self.client:
                self.lease = Lease(LeaseState.DECLINED)
                self.drops["dhcp_declined"] += 1
            else:
                self.drops["dhcp_not_our_lease"] += 1
            return None
        self.drops["dhcp_unexpected_type"] += 1
        return None

    # -- output -----------------------------------------------------------------

    def _base(self, message: DhcpMessage, *, yiaddr: bytes, ciaddr: bytes = _ZERO4) -> DhcpMessage:
        return DhcpMessage(
            BOOTREPLY,
            message.xid,
            message.chaddr,
            flags=message.flags,
            ciaddr=ciaddr,
            yiaddr=yiaddr,
        )

    def _reply(
        self,
        message: DhcpMessage,
        options: dict[int, bytes],
        kind: MessageType,
        *,
        inform: bool = False,
    ) -> Dhcpv4Reply:
        reply_options: list[tuple[int, bytes]] = [
            (Option.MESSAGE_TYPE, bytes((kind,))),
            (Option.SERVER_ID, self.server),
            *_client_id(options),
        ]
        if not inform:  # RFC 2131 4.3.5: no lease times in an answer to INFORM
            lease = self.config.lease_time
            reply_options += [
                (Option.LEASE_TIME, lease.to_bytes(4, "big")),
                (Option.RENEWAL_TIME, (lease // 2).to_bytes(4, "big")),
                (Option.REBINDING_TIME, (lease * 7 // 8).to_bytes(4, "big")),
            ]
        reply_options += self._options
        routes = dict(self._options).get(Option.CLASSLESS_ROUTES)
        if routes is not None and Option.MS_CLASSLESS_ROUTES in options.get(
            Option.PARAMETER_LIST, b""
        ):
            reply_options.append((Option.MS_CLASSLESS_ROUTES, routes))  # Windows asks for 249
        reply_options = self._fit(reply_options, options)
        if inform:
            reply = self._base(message, yiaddr=_ZERO4, ciaddr=message.ciaddr)
        else:
            reply = self._base(message, yiaddr=self.client)
        reply = dataclasses.replace(reply, options=tuple(reply_options))
        self.sent[kind.name] += 1
        # RFC 2131 4.1: to ciaddr if the client has one, else broadcast if
        # it asked (it cannot receive unicast before it is configured),
        # else unicast to the address being handed out.
        if message.ciaddr != _ZERO4:
            return Dhcpv4Reply(reply, message.ciaddr, broadcast=False)
        if message.flags & FLAG_BROADCAST:
            return Dhcpv4Reply(reply, _BROADCAST4, broadcast=True)
        return Dhcpv4Reply(reply, self.client, broadcast=False)

    def _fit(
        self, reply_options: list[tuple[int, bytes]], options: dict[int, bytes]
    ) -> list[tuple[int, bytes]]:
        """Drop optional options until the reply fits the client's maximum message size.

        A client may say more than 576 bytes, but never more than the link
        carries: the stack does not fragment replies.
        """
        limit = DHCP_MIN_DATAGRAM
        size_option = options.get(Option.MAX_MESSAGE_SIZE)
        if size_option is not None:
            limit = max(limit, min(int.from_bytes(size_option, "big"), self._mtu))
        budget = limit - _UDP_IP_HEADERS - 240 - 1  # fixed part, cookie, END

        def size(opts: list[tuple[int, bytes]]) -> int:
            return sum(len(v) + 2 * max(1, -(-len(v) // 255)) for _, v in opts)

        for code in _OPTIONAL:
            if size(reply_options) <= budget:
                break
            reply_options = [(c, v) for c, v in reply_options if c != code]
            self.drops["dhcp_option_trimmed"] += 1
        return reply_options

    def _nak(self, message: DhcpMessage, options: dict[int, bytes], text: str) -> Dhcpv4Reply:
        nak_options = [
            (Option.MESSAGE_TYPE, bytes((MessageType.NAK,))),
            (Option.SERVER_ID, self.server),
            *_client_id(options),
            (Option.MESSAGE, text.encode()),
        ]
        reply = dataclasses.replace(
            self._base(message, yiaddr=_ZERO4), options=tuple(self._fit(nak_options, options))
        )
        self.sent[MessageType.NAK.name] += 1
        # RFC 2131 4.3.2: without a relay, a NAK is always broadcast.
        return Dhcpv4Reply(reply, _BROADCAST4, broadcast=True)


def _client_id(options: dict[int, bytes]) -> list[tuple[int, bytes]]:
    """The client's identifier, to return unaltered in every reply (RFC 6842 3)."""
    value = options.get(Option.CLIENT_ID)
    return [] if value is None else [(Option.CLIENT_ID, value)]
