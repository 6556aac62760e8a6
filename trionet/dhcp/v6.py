"""The DHCPv6 server's decisions (RFC 8415): the slot's ::2, and DNS settings.

Stateful: the first IA_NA a client asks for is bound to the slot's ::2 (the
address the ``MSB_NET*`` variables name, where published ports reach the
guest); further IA_NAs, temporary addresses and prefix delegation get "no
addresses/prefixes available". Stateless: INFORMATION-REQUEST gets the DNS
server (the gateway) and the search domains. The server identifies itself
with a DUID-LL made from the gateway's MAC, so it stays the same across
restarts of the same slot.

Sans-IO: :meth:`Dhcpv6Server.answer` takes a parsed message and ``now`` and
returns the reply (to the client's link-local address, port 546) or None,
counting why in the stack's drop counter (``dhcpv6_*``).
"""

from __future__ import annotations

from collections import Counter

from trionet.dhcp.config import DhcpConfig
from trionet.wire.dhcpv6 import (
    Dhcpv6Message,
    IaAddress,
    IaNa,
    MessageType,
    Option,
    Status,
    encode_options,
    parse_ia_address,
    parse_ia_na,
    status_option,
)
from trionet.wire.domain_names import encode_names
from trionet.wire.errors import ParseError

__all__ = ["Dhcpv6Server"]

#: DUID type 3 (link-layer address), hardware type 1 (Ethernet).
_DUID_LL_ETHERNET = b"\x00\x03\x00\x01"
#: RFC 8415 11.1: a DUID is at most 128 bytes, after its 2-byte type.
_MAX_DUID = 130
_WITH_SERVER_ID = frozenset(
    (MessageType.REQUEST, MessageType.RENEW, MessageType.RELEASE, MessageType.DECLINE)
)
_WITHOUT_SERVER_ID = frozenset((MessageType.SOLICIT, MessageType.REBIND, MessageType.CONFIRM))
#: RFC 8415's "IA options": an Information-request carrying any is discarded.
_IA_OPTIONS = frozenset((Option.IA_NA, Option.IA_TA, Option.IA_PD))
#: Identity associations answered per message. Each answer is several times
#: the size of the request's IA (a status text rides along): answering every
#: one would turn a full-MTU request into a reply the link cannot carry.
MAX_IAS = 8
#: Addresses withdrawn (lifetimes 0) per Renew or Rebind, for the same reason.
MAX_WITHDRAWN = 8


class Dhcpv6Server:
    """Answers the guest's DHCPv6 messages. See the module docstring."""

    def __init__(
        self,
        config: DhcpConfig,
        *,
        address: bytes,
        dns_server: bytes,
        server_mac: bytes,
        drops: Counter[str],
    ) -> None:
        self.config = config
        self.address = address
        self.duid = _DUID_LL_ETHERNET + server_mac
        self.drops = drops
        #: replies sent, by message type name
        self.sent: Counter[str] = Counter()
        #: when the binding of ::2 runs out (the stack's clock), if it was ever made
        self.bound_until: float | None = None
        info: list[tuple[int, bytes]] = [(Option.DNS_SERVERS, dns_server)]
        if config.search_domains:
            info.append((Option.DOMAIN_LIST, encode_names(config.search_domains)))
        self._info = info

    def answer(self, message: Dhcpv6Message, now: float) -> Dhcpv6Message | None:
        kind = message.msg_type
        client_id = message.option(Option.CLIENTID)
        server_id = message.option(Option.SERVERID)
        if client_id is not None and not 2 <= len(client_id) <= _MAX_DUID:
            self.drops["dhcpv6_option_malformed"] += 1
            return None
        if kind == MessageType.INFORMATION_REQUEST:
            if server_id is not None and server_id != self.duid:
                self.drops["dhcpv6_other_server"] += 1
                return None
            if any(code in _IA_OPTIONS for code, _ in message.options):
                self.drops["dhcpv6_unexpected_option"] += 1  # RFC 8415 16.12
                return None
            options = self._head(client_id)
            options += self._info
            options.append((Option.INFORMATION_REFRESH_TIME, self._lease().to_bytes(4, "big")))
            return self._reply(MessageType.REPLY, message, options)
        if kind not in _WITH_SERVER_ID and kind not in _WITHOUT_SERVER_ID:
            self.drops["dhcpv6_unexpected_type"] += 1
            return None
        if client_id is None:
            self.drops["dhcpv6_no_client_id"] += 1
            return None
        if kind in _WITH_SERVER_ID and server_id != self.duid:
            self.drops["dhcpv6_other_server"] += 1
            return None
        if kind in _WITHOUT_SERVER_ID and server_id is not None:
            self.drops["dhcpv6_unexpected_option"] += 1
            return None
        options = self._head(client_id)
        if kind in (MessageType.RELEASE, MessageType.DECLINE):
            if kind == MessageType.DECLINE:
                self.drops["dhcpv6_declined"] += 1
            self.bound_until = None
            options.append(status_option(Status.SUCCESS))
            return self._reply(MessageType.REPLY, message, options)
        if kind == MessageType.CONFIRM:
            status = self._confirm(message)
            if status is None:
                return None
            options.append(status)
            return self._reply(MessageType.REPLY, message, options)
        # SOLICIT, REQUEST, RENEW, REBIND: bind the address.
        rapid = kind == MessageType.SOLICIT and message.option(Option.RAPID_COMMIT) is not None
        binding = kind != MessageType.SOLICIT or rapid
        withdraw = kind in (MessageType.RENEW, MessageType.REBIND)
        options += self._identity_associations(
            message, binding=binding, withdraw=withdraw, now=now
        )
        if kind == MessageType.SOLICIT:
            # 255: the client may request at once, without collecting others.
            options.append((Option.PREFERENCE, b"\xff"))
            if rapid:
                options.append((Option.RAPID_COMMIT, b""))
        options += self._info
        advertise = kind == MessageType.SOLICIT and not rapid
        return self._reply(
            MessageType.ADVERTISE if advertise else MessageType.REPLY, message, options
        )

    # -- pieces -----------------------------------------------------------------

    def _lease(self) -> int:
        return self.config.lease_time

    def _head(self, client_id: bytes | None) -> list[tuple[int, bytes]]:
        options: list[tuple[int, bytes]] = [(Option.SERVERID, self.duid)]
        if client_id is not None:
            options.append((Option.CLIENTID, client_id))
        return options

    def _reply(
        self, kind: MessageType, message: Dhcpv6Message, options: list[tuple[int, bytes]]
    ) -> Dhcpv6Message:
        self.sent[kind.name] += 1
        return Dhcpv6Message(kind, message.transaction_id, tuple(options))

    def _identity_associations(
        self, message: Dhcpv6Message, *, binding: bool, withdraw: bool, now: float
    ) -> list[tuple[int, bytes]]:
        lease = self._lease()
        out: list[tuple[int, bytes]] = []
        given = False
        answered = 0
        for code, value in message.options:
            if code not in _IA_OPTIONS:
                continue
            if answered == MAX_IAS:
                self.drops["dhcpv6_too_many_ias"] += 1
                break
            answered += 1
            if code == Option.IA_NA:
                try:
                    ia = parse_ia_na(value)
                except ParseError:
                    self.drops["dhcpv6_option_malformed"] += 1
                    continue
                if given:
                    nested = (status_option(Status.NO_ADDRS_AVAIL, "one address per client"),)
                    out.append((Option.IA_NA, IaNa(ia.iaid, 0, 0, nested).to_bytes()))
                    continue
                given = True
                addresses: list[tuple[int, bytes]] = [
                    (Option.IAADDR, IaAddress(self.address, lease, lease).to_bytes())
                ]
                if withdraw:
                    addresses += self._withdrawn(ia)
                ia_out = IaNa(ia.iaid, lease // 2, lease * 4 // 5, tuple(addresses))
                out.append((Option.IA_NA, ia_out.to_bytes()))
            else:
                if len(value) < 4:
                    self.drops["dhcpv6_option_malformed"] += 1
                    continue
                iaid = value[:4]
                if code == Option.IA_TA:
                    status = status_option(Status.NO_ADDRS_AVAIL, "no temporary addresses")
                    out.append((code, iaid + encode_options((status,))))
                else:
                    status = status_option(Status.NO_PREFIX_AVAIL, "no prefix delegation")
                    out.append((code, iaid + bytes(8) + encode_options((status,))))
        if not given:
            out.append(status_option(Status.NO_ADDRS_AVAIL, "no IA_NA was asked for"))
        elif binding:
            self.bound_until = now + lease
        return out

    def _withdrawn(self, ia: IaNa) -> list[tuple[int, bytes]]:
        """The other addresses the client renews in ``ia``, with lifetimes of 0.

        RFC 8415 18.3.4 and 18.3.5: this server only ever binds the slot's
        ::2, so any other address a client renews (a lease carried from
        another network or slot) is not appropriate here. Returned with
        lifetimes of 0, it is dropped at once, instead of being kept as a
        source the gateway refuses until its own lifetimes run out.
        """
        withdrawn: dict[bytes, None] = {}
        for code, value in ia.options:
            if code != Option.IAADDR:
                continue
            try:
                address = parse_ia_address(value).address
            except ParseError:
                self.drops["dhcpv6_option_malformed"] += 1
                continue
            if address != self.address and len(withdrawn) < MAX_WITHDRAWN:
                withdrawn[address] = None
        return [(Option.IAADDR, IaAddress(a, 0, 0).to_bytes()) for a in withdrawn]

    def _confirm(self, message: Dhcpv6Message) -> tuple[int, bytes] | None:
        """Success if every address the client holds is in the slot's /64 (RFC 8415 18.3.3).

        None (counted) when the IAs name no address: then there is nothing
        to confirm, and the server MUST NOT reply.
        """
        seen = False
        for value in message.all(Option.IA_NA):
            try:
                ia = parse_ia_na(value)
                addresses = [
                    parse_ia_address(v).address for c, v in ia.options if c == Option.IAADDR
                ]
            except ParseError:
                self.drops["dhcpv6_option_malformed"] += 1
                continue
            for address in addresses:
                seen = True
                if address[:8] != self.address[:8]:
                    return status_option(Status.NOT_ON_LINK)
        if not seen:
            self.drops["dhcpv6_confirm_empty"] += 1
            return None
        return status_option(Status.SUCCESS)
