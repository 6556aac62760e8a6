"""Fuzz target for the DNS interceptor: a guest's query, then a resolver's answer.

The fuzzed bytes are split in two: the guest's query and what "the resolver"
sends back (with the id the interceptor chose, so garbage gets past the id
check). Beyond "never raises": every response the guest gets parses as a DNS
message with the guest's id, and UDP responses fit the size the guest can take.
"""

from __future__ import annotations

import ipaddress

import dns.message

from trionet.dns.intercept import Answer, DnsInterceptor, SendUpstream, Transport, Upstream
from trionet.policy.evaluate import PolicyEvaluator
from trionet.policy.groups import Gateways
from trionet.policy.model import NetworkPolicy
from trionet.policy.pins import PinSet

_GW4 = ipaddress.IPv4Address("172.16.0.1")
_GW6 = ipaddress.IPv6Address("fd42:6d73:62::1")
_UPSTREAM_ID = 0x5A5A


def _interceptor() -> DnsInterceptor:
    pins = PinSet(max_entries=1024)
    evaluator = PolicyEvaluator(
        NetworkPolicy.from_profiles(["public"]), Gateways(_GW4, (_GW6,)), pins
    )
    return DnsInterceptor(
        evaluator,
        pins,
        gateway_ipv4=_GW4,
        gateway_ipv6=_GW6,
        host_alias="host.trionet.internal",
        upstreams=[Upstream(ipaddress.ip_address("127.0.0.1"), 5300)],
    )


_IC = _interceptor()


def dns_seeds() -> list[bytes]:
    """A few well-formed queries, so mutations start from something that parses."""
    seeds = []
    for name, rdtype, edns in [
        ("example.com", "A", False),
        ("www.example.com", "AAAA", True),
        ("host.trionet.internal", "A", False),
        ("big.example", "TXT", True),
    ]:
        message = dns.message.make_query(name, rdtype, use_edns=edns)
        seeds.append(message.to_wire())
    return seeds


def fuzz_dns(data: bytes) -> None:
    split = data[0] if data else 0
    guest, resolver = data[1 : 1 + split], data[1 + split :]
    for transport in Transport:
        exchange = _IC.receive_query(
            guest,
            destination=_GW4 if split % 2 else ipaddress.ip_address("198.51.100.53"),
            transport=transport,
            now=10.0,
            upstream_id=_UPSTREAM_ID,
        )
        event = exchange.next_event()
        if isinstance(event, SendUpstream):
            answer = exchange.receive_upstream(_UPSTREAM_ID.to_bytes(2, "big") + resolver, 11.0)
            event = answer if answer is not None else exchange.upstream_failed()
        while isinstance(event, SendUpstream):
            event = exchange.upstream_failed()
        assert isinstance(event, Answer)
        if event.response is None:
            continue
        response = dns.message.from_wire(event.response)
        assert response.id == int.from_bytes(guest[:2], "big")
        if transport is Transport.UDP:
            query = dns.message.from_wire(guest)
            limit = max(query.payload, 512) if query.edns >= 0 else 512
            assert len(event.response) <= limit
