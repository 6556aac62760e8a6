"""One fuzz target per parser, a whole-frame target that dispatches like the stack,
and the stack itself (see :mod:`fuzz.stack_target`).

A target returns normally for "parsed" and for "rejected with ParseError";
any other exception, or a failed round-trip assertion, is a bug. Transport
targets run twice per input: once with checksum verification off (reaching
the option parsers with any bytes) and once with the checksum repaired and
verification on (so the verifying path is fuzzed past the checksum too).
"""

from __future__ import annotations

import contextlib
import dataclasses
import struct
from collections import Counter
from collections.abc import Callable

from fuzz.dns_target import fuzz_dns
from fuzz.stack_target import fuzz_stack
from fuzz.walk import walk_frame
from trionet.dhcp.config import DhcpConfig
from trionet.dhcp.v4 import Dhcpv4Server
from trionet.dhcp.v6 import Dhcpv6Server
from trionet.http.h1 import H1RequestRewriter, HttpRefusedError
from trionet.http.h2 import PREFACE as H2_PREFACE
from trionet.http.h2 import H2RequestRewriter
from trionet.secrets.config import SecretsConfig
from trionet.secrets.plan import SecretViolationError, build_plan
from trionet.tls.clienthello import PeekStatus, peek_client_hello
from trionet.wire import ParseError
from trionet.wire.arp import parse_arp
from trionet.wire.checksum import internet_checksum, pseudo_header_v4, pseudo_header_v6
from trionet.wire.dhcpv4 import (
    DHCP_SERVER_PORT,
    Option,
    decode_classless_routes,
    decode_domain_search,
    encode_classless_routes,
    encode_domain_search,
    parse_dhcpv4,
)
from trionet.wire.dhcpv6 import (
    DHCPV6_SERVER_PORT,
    IaNa,
    parse_dhcpv6,
    parse_ia_address,
    parse_ia_na,
)
from trionet.wire.dhcpv6 import Option as Dhcpv6Option
from trionet.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, parse_ethernet
from trionet.wire.icmpv4 import parse_icmpv4
from trionet.wire.icmpv6 import parse_icmpv6
from trionet.wire.ipv4 import PROTO_ICMP, PROTO_TCP, PROTO_UDP, parse_ipv4
from trionet.wire.ipv6 import NEXT_HEADER_ICMPV6, parse_ipv6
from trionet.wire.tcp import MAX_OPTIONS_LEN, options_len, parse_tcp
from trionet.wire.udp import parse_udp

Target = Callable[[bytes], None]

# A fixed pseudo-header: the fuzzed bytes are the segment, the addresses don't matter.
_PSEUDO_SRC = bytes([10, 0, 2, 15])
_PSEUDO_DST = bytes([10, 0, 2, 2])


def _repair(data: bytes, field: int, pseudo: int) -> bytes:
    """``data`` with the checksum at ``field`` made correct for ``pseudo``."""
    if len(data) < field + 2:
        return data
    buf = bytearray(data)
    buf[field : field + 2] = b"\0\0"
    struct.pack_into("!H", buf, field, internet_checksum(buf, pseudo))
    return bytes(buf)


def fuzz_ethernet(data: bytes) -> None:
    try:
        header, payload = parse_ethernet(data)
    except ParseError:
        return
    assert header.to_bytes() == data[: header.header_len]
    assert len(payload) == len(data) - header.header_len


def fuzz_arp(data: bytes) -> None:
    try:
        packet = parse_arp(data)
    except ParseError:
        return
    assert parse_arp(packet.to_bytes()) == packet


def fuzz_ipv4(data: bytes) -> None:
    for verify in (False, True):
        for truncated_ok in (False, True):
            try:
                header, payload = parse_ipv4(
                    data, verify_checksum=verify, truncated_ok=truncated_ok
                )
            except ParseError:
                continue
            if len(payload) < header.payload_len:
                assert truncated_ok
                continue
            assert len(payload) == header.payload_len
            again, payload2 = parse_ipv4(header.to_bytes() + bytes(payload))
            assert again == header and payload2 == payload


def fuzz_ipv6(data: bytes) -> None:
    for truncated_ok in (False, True):
        try:
            header, payload = parse_ipv6(data, truncated_ok=truncated_ok)
        except ParseError:
            continue
        if len(payload) < header.payload_len:
            assert truncated_ok
            continue
        assert len(payload) == header.payload_len
        again, payload2 = parse_ipv6(header.to_bytes() + bytes(payload))
        assert again == header and payload2 == payload


def fuzz_udp(data: bytes) -> None:
    pseudo = pseudo_header_v4(_PSEUDO_SRC, _PSEUDO_DST, PROTO_UDP, len(data))
    for candidate, sum_ in ((data, None), (_repair(data, 6, pseudo), pseudo)):
        for zero_ok in (True, False):
            try:
                header, payload = parse_udp(candidate, sum_, zero_checksum_ok=zero_ok)
            except ParseError:
                continue
            emitted_pseudo = pseudo_header_v4(
                _PSEUDO_SRC, _PSEUDO_DST, PROTO_UDP, 8 + len(payload)
            )
            wire = header.to_bytes(payload, emitted_pseudo)
            assert parse_udp(wire, emitted_pseudo, zero_checksum_ok=False) == (header, payload)


def fuzz_tcp(data: bytes) -> None:
    pseudo = pseudo_header_v4(_PSEUDO_SRC, _PSEUDO_DST, PROTO_TCP, len(data))
    for candidate, sum_ in ((data, None), (_repair(data, 16, pseudo), pseudo)):
        try:
            header, payload = parse_tcp(candidate, sum_)
        except ParseError:
            continue
        # Options that fit on the wire unaligned may not fit in trionet's
        # NOP-aligned layout; the state machine never emits such a set.
        if options_len(header.options) > MAX_OPTIONS_LEN:
            continue
        length = header.header_len + len(payload)
        emitted_pseudo = pseudo_header_v4(_PSEUDO_SRC, _PSEUDO_DST, PROTO_TCP, length)
        wire = header.to_bytes(payload, emitted_pseudo)
        assert parse_tcp(wire, emitted_pseudo) == (header, payload)


def fuzz_icmpv4(data: bytes) -> None:
    for candidate, verify in ((data, False), (_repair(data, 2, 0), True)):
        try:
            message, body = parse_icmpv4(candidate, verify_checksum=verify)
        except ParseError:
            continue
        assert parse_icmpv4(message.to_bytes(body)) == (message, body)


def fuzz_icmpv6(data: bytes) -> None:
    src = b"\xfe\x80" + bytes(13) + b"\x01"
    dst = b"\xfe\x80" + bytes(13) + b"\x02"
    pseudo = pseudo_header_v6(src, dst, NEXT_HEADER_ICMPV6, len(data))
    for candidate, sum_ in ((data, None), (_repair(data, 2, pseudo), pseudo)):
        try:
            message, body = parse_icmpv6(candidate, sum_)
        except ParseError:
            continue
        length = message.header_len + len(body)
        emitted_pseudo = pseudo_header_v6(src, dst, NEXT_HEADER_ICMPV6, length)
        wire = message.to_bytes(body, emitted_pseudo)
        assert parse_icmpv6(wire, emitted_pseudo) == (message, body)


_CLIENT_MAC = bytes.fromhex("02aa00000002")
_SERVER_MAC = bytes.fromhex("02aa00000001")


def fuzz_dhcpv4(data: bytes) -> None:
    """The codec round-trips, its structured options too, and the server answers sanely."""
    try:
        message = parse_dhcpv4(data)
    except ParseError:
        return
    assert parse_dhcpv4(message.to_bytes()) == message
    for code, value in message.options:
        with contextlib.suppress(ParseError):
            if code == Option.CLASSLESS_ROUTES:
                routes = decode_classless_routes(value)
                assert decode_classless_routes(encode_classless_routes(routes)) == routes
            elif code == Option.DOMAIN_SEARCH:
                names = decode_domain_search(value)
                assert decode_domain_search(encode_domain_search(names)) == names
    # The server sees the message as if from its client (else it only counts a foreign MAC).
    server = Dhcpv4Server(
        DhcpConfig(search_domains=("corp.example",)),
        server=bytes([10, 77, 0, 1]),
        client=bytes([10, 77, 0, 2]),
        prefix_len=30,
        client_mac=_CLIENT_MAC,
        mtu=1500,
        drops=Counter(),
    )
    ours = dataclasses.replace(message, chaddr=_CLIENT_MAC + message.chaddr[6:], hlen=6, htype=1)
    reply = server.answer(ours, 0.0)
    if reply is not None:
        wire = reply.message.to_bytes()
        assert parse_dhcpv4(wire) == reply.message
        assert len(wire) + 28 <= 576 or ours.option(Option.MAX_MESSAGE_SIZE) is not None


def fuzz_dhcpv6(data: bytes) -> None:
    """The codec and its nested options round-trip, and the server answers sanely."""
    try:
        message = parse_dhcpv6(data)
    except ParseError:
        return
    assert parse_dhcpv6(message.to_bytes()) == message
    for code, value in message.options:
        if code == Dhcpv6Option.IA_NA:
            with contextlib.suppress(ParseError):
                ia = parse_ia_na(value)
                assert IaNa(ia.iaid, ia.t1, ia.t2, ia.options).to_bytes() == value
                for nested_code, nested in ia.options:
                    if nested_code == Dhcpv6Option.IAADDR:
                        address = parse_ia_address(nested)
                        assert address.to_bytes() == nested
    server = Dhcpv6Server(
        DhcpConfig(search_domains=("corp.example",)),
        address=bytes.fromhex("fd770000000000000000000000000002"),
        dns_server=bytes.fromhex("fd770000000000000000000000000001"),
        server_mac=_SERVER_MAC,
        drops=Counter(),
    )
    reply = server.answer(message, 0.0)
    if reply is not None:
        assert parse_dhcpv6(reply.to_bytes()) == reply
        assert reply.transaction_id == message.transaction_id
        # However many IAs and addresses the client lists, the reply fits
        # IPv6's minimum link MTU (the stack does not fragment it).
        assert len(reply.to_bytes()) + 48 <= 1280


def fuzz_frame(data: bytes) -> None:
    """The stack's receive path: Ethernet, then IP, then transport, checksums verified."""
    with contextlib.suppress(ParseError):
        walk_frame(data)


#: Target name -> (function, layer of a corpus frame to seed it with).
_H1_CONFIG = SecretsConfig.from_dict(
    {
        "secrets": [
            {
                "env_var": "KEY",
                "value": "real-key",
                "allowed_hosts": ["api.example.com"],
                "injection": {"query_params": True, "body": True},
            },
            {"env_var": "OTHER", "value": "real-other", "allowed_hosts": ["other.example"]},
        ]
    }
)


def fuzz_clienthello(data: bytes) -> None:
    """Any bytes: a verdict, never an exception; a parsed hello lies within the input."""
    result = peek_client_hello(data)
    if result.status is PeekStatus.COMPLETE:
        assert result.hello is not None and result.hello.length <= len(data)
        # A complete hello stays complete, unchanged, whatever follows it.
        assert peek_client_hello(data + b"\x17\x03\x03") == result


def _h1_outcome(data: bytes, segment: int) -> tuple[str, bytes]:
    plan = build_plan(_H1_CONFIG, "api.example.com", tls_intercepted=True, identity=lambda _: True)
    rewriter = H1RequestRewriter(plan, "api.example.com")
    out = b""
    try:
        for start in range(0, len(data), segment):
            out += rewriter.receive(data[start : start + segment])
        out += rewriter.receive_eof()
    except (HttpRefusedError, SecretViolationError) as exc:
        return type(exc).__name__, b""
    return "ok", out


def _h2_outcome(data: bytes, segment: int) -> tuple[str, bytes]:
    plan = build_plan(_H1_CONFIG, "api.example.com", tls_intercepted=True, identity=lambda _: True)
    rewriter = H2RequestRewriter(plan, "api.example.com")
    out = b""
    try:
        for start in range(0, len(data), segment):
            out += rewriter.receive(data[start : start + segment])
    except (HttpRefusedError, SecretViolationError) as exc:
        return type(exc).__name__, b""
    return "ok", out


def fuzz_http2(data: bytes) -> None:
    """The HTTP/2 rewriter, fed after the preface: own refusals only, cut-independent."""
    data = H2_PREFACE + data
    segment = 1 + (data[-1] % 29 if len(data) > len(H2_PREFACE) else 0)
    whole = _h2_outcome(data, len(data))
    assert whole == _h2_outcome(data, segment)
    if whole[0] == "ok":
        assert _leaks_other(data, whole[1]) is False


def fuzz_http1(data: bytes) -> None:
    """The HTTP/1 rewriter: only its own refusals, and how reads are cut changes nothing."""
    segment = 1 + (data[0] % 13 if data else 0)
    whole = _h1_outcome(data, max(len(data), 1))
    cut = _h1_outcome(data, segment)
    assert whole == cut, (whole, cut)
    if whole[0] == "ok":
        assert _leaks_other(data, whole[1]) is False


def _leaks_other(data: bytes, out: bytes) -> bool:
    """Whether the rewriter put OTHER's value in (the input may hold those bytes itself)."""
    return out.count(b"real-other") > data.count(b"real-other")


TARGETS: dict[str, tuple[Target, str]] = {
    "ethernet": (fuzz_ethernet, "frame"),
    "arp": (fuzz_arp, "arp"),
    "ipv4": (fuzz_ipv4, "ipv4"),
    "ipv6": (fuzz_ipv6, "ipv6"),
    "udp": (fuzz_udp, "udp"),
    "tcp": (fuzz_tcp, "tcp"),
    "icmpv4": (fuzz_icmpv4, "icmpv4"),
    "icmpv6": (fuzz_icmpv6, "icmpv6"),
    "dhcpv4": (fuzz_dhcpv4, "dhcpv4"),
    "dhcpv6": (fuzz_dhcpv6, "dhcpv6"),
    "frame": (fuzz_frame, "frame"),
    "stack": (fuzz_stack, "frame"),
    "clienthello": (fuzz_clienthello, "clienthello"),
    "http1": (fuzz_http1, "http1"),
    "http2": (fuzz_http2, "http2"),
    "dns": (fuzz_dns, "dns"),
}


def layers_of(frame: bytes) -> dict[str, bytes]:
    """Split a seed frame into the bytes each target expects (checksums not checked)."""
    found = {"frame": frame}
    try:
        eth, l3 = parse_ethernet(frame)
        if eth.ethertype == ETHERTYPE_ARP:
            found["arp"] = bytes(l3)
            return found
        if eth.ethertype == ETHERTYPE_IPV4:
            found["ipv4"] = bytes(l3)
            ip4, l4 = parse_ipv4(l3, verify_checksum=False)
            proto = ip4.protocol
        elif eth.ethertype == ETHERTYPE_IPV6:
            found["ipv6"] = bytes(l3)
            ip6, l4 = parse_ipv6(l3)
            proto = ip6.next_header
        else:
            return found
    except ParseError:
        return found
    name = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMP: "icmpv4", 58: "icmpv6"}.get(proto)
    if name is not None:
        found[name] = bytes(l4)
    if name == "udp" and len(l4) >= 8:
        port = int.from_bytes(l4[2:4], "big")
        if port in (DHCP_SERVER_PORT, DHCPV6_SERVER_PORT):
            found["dhcpv4" if port == DHCP_SERVER_PORT else "dhcpv6"] = bytes(l4[8:])
        if port == 53 and len(l4) > 8:
            found["dns"] = bytes(l4[8:])
    return found
