"""DHCPv6 messages (RFC 8415) between a client and a server, and their options.

A :class:`Dhcpv6Message` is the message type, the 24-bit transaction id and
the options as ``(code, value)`` pairs in wire order (a code may repeat: a
client sends one IA_NA per interface association). Options that nest
options (IA_NA, IA address) are decoded by :func:`parse_ia_na` and
:func:`parse_ia_address` and built by :class:`IaNa` and :class:`IaAddress`.
Relay messages (RELAY-FORW/REPL) have another header and are rejected: there
is no relay on a guest's link.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from trionet.wire._options import first_option
from trionet.wire._types import BytesLike
from trionet.wire.errors import ParseError

__all__ = [
    "ALL_DHCP_SERVERS",
    "DHCPV6_CLIENT_PORT",
    "DHCPV6_SERVER_PORT",
    "Dhcpv6Message",
    "IaAddress",
    "IaNa",
    "MessageType",
    "Option",
    "Status",
    "encode_options",
    "parse_dhcpv6",
    "parse_ia_address",
    "parse_ia_na",
    "parse_options",
    "status_option",
]

DHCPV6_CLIENT_PORT = 546
DHCPV6_SERVER_PORT = 547
#: All_DHCP_Relay_Agents_and_Servers, where clients send everything.
ALL_DHCP_SERVERS = bytes.fromhex("ff020000000000000000000000010002")

_OPTION = struct.Struct("!HH")
_IA = struct.Struct("!III")
_IAADDR = struct.Struct("!16sII")


class MessageType(enum.IntEnum):
    SOLICIT = 1
    ADVERTISE = 2
    REQUEST = 3
    CONFIRM = 4
    RENEW = 5
    REBIND = 6
    REPLY = 7
    RELEASE = 8
    DECLINE = 9
    RECONFIGURE = 10
    INFORMATION_REQUEST = 11
    RELAY_FORW = 12
    RELAY_REPL = 13


class Option(enum.IntEnum):
    CLIENTID = 1
    SERVERID = 2
    IA_NA = 3
    IA_TA = 4
    IAADDR = 5
    ORO = 6
    PREFERENCE = 7
    ELAPSED_TIME = 8
    STATUS_CODE = 13
    RAPID_COMMIT = 14
    DNS_SERVERS = 23
    DOMAIN_LIST = 24
    IA_PD = 25
    INFORMATION_REFRESH_TIME = 32


class Status(enum.IntEnum):
    SUCCESS = 0
    UNSPEC_FAIL = 1
    NO_ADDRS_AVAIL = 2
    NO_BINDING = 3
    NOT_ON_LINK = 4
    USE_MULTICAST = 5
    NO_PREFIX_AVAIL = 6


def encode_options(options: Sequence[tuple[int, bytes]]) -> bytes:
    """Options in wire form; ValueError for a code or value that does not fit 16 bits."""
    out = bytearray()
    for code, value in options:
        if not 0 <= code <= 0xFFFF or len(value) > 0xFFFF:
            raise ValueError(f"dhcpv6: option {code} does not fit")
        out += _OPTION.pack(code, len(value))
        out += value
    return bytes(out)


def parse_options(data: BytesLike) -> tuple[tuple[int, bytes], ...]:
    """Options in wire order; ParseError for one that runs past the end."""
    view = memoryview(data)
    options: list[tuple[int, bytes]] = []
    pos = 0
    end = len(view)
    while pos < end:
        if pos + 4 > end:
            raise ParseError("dhcpv6: truncated option header")
        code, length = _OPTION.unpack_from(view, pos)
        if pos + 4 + length > end:
            raise ParseError("dhcpv6: option exceeds the message")
        options.append((code, bytes(view[pos + 4 : pos + 4 + length])))
        pos += 4 + length
    return tuple(options)


@dataclass(frozen=True, slots=True)
class Dhcpv6Message:
    msg_type: int
    transaction_id: int
    options: tuple[tuple[int, bytes], ...] = ()

    def option(self, code: int) -> bytes | None:
        """The first option with ``code``, or None."""
        return first_option(self.options, code)

    def all(self, code: int) -> list[bytes]:
        return [value for have, value in self.options if have == code]

    def to_bytes(self) -> bytes:
        if not 0 <= self.msg_type <= 0xFF or not 0 <= self.transaction_id <= 0xFFFFFF:
            raise ValueError("dhcpv6: message type or transaction id out of range")
        header = ((self.msg_type << 24) | self.transaction_id).to_bytes(4, "big")
        return header + encode_options(self.options)


def parse_dhcpv6(data: BytesLike) -> Dhcpv6Message:
    """A client/server message (a UDP payload); ParseError when malformed or relayed."""
    view = memoryview(data)
    if len(view) < 4:
        raise ParseError("dhcpv6: shorter than 4 bytes")
    msg_type = view[0]
    if msg_type in (MessageType.RELAY_FORW, MessageType.RELAY_REPL):
        raise ParseError("dhcpv6: relay messages are not supported")
    transaction_id = int.from_bytes(view[1:4], "big")
    return Dhcpv6Message(msg_type, transaction_id, parse_options(view[4:]))


@dataclass(frozen=True, slots=True)
class IaAddress:
    """An IA address option's content (lifetimes in seconds)."""

    address: bytes
    preferred_lifetime: int
    valid_lifetime: int
    options: tuple[tuple[int, bytes], ...] = ()

    def to_bytes(self) -> bytes:
        return _IAADDR.pack(
            self.address, self.preferred_lifetime, self.valid_lifetime
        ) + encode_options(self.options)


def parse_ia_address(value: BytesLike) -> IaAddress:
    view = memoryview(value)
    if len(view) < _IAADDR.size:
        raise ParseError("dhcpv6: IA address shorter than 24 bytes")
    address, preferred, valid = _IAADDR.unpack_from(view)
    return IaAddress(address, preferred, valid, parse_options(view[_IAADDR.size :]))


@dataclass(frozen=True, slots=True)
class IaNa:
    """An IA_NA option's content: its id, T1 and T2, and nested options."""

    iaid: int
    t1: int
    t2: int
    options: tuple[tuple[int, bytes], ...] = ()

    def to_bytes(self) -> bytes:
        return _IA.pack(self.iaid, self.t1, self.t2) + encode_options(self.options)


def parse_ia_na(value: BytesLike) -> IaNa:
    """IA_NA (or IA_PD, which has the same head) content; ParseError when malformed."""
    view = memoryview(value)
    if len(view) < _IA.size:
        raise ParseError("dhcpv6: IA_NA shorter than 12 bytes")
    iaid, t1, t2 = _IA.unpack_from(view)
    return IaNa(iaid, t1, t2, parse_options(view[_IA.size :]))


def status_option(status: Status, message: str = "") -> tuple[int, bytes]:
    return (Option.STATUS_CODE, status.to_bytes(2, "big") + message.encode())
