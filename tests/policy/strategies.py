"""Hypothesis strategies for policies, shared by the policy tests."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from trionet.policy import (
    ANY,
    Action,
    Cidr,
    Direction,
    Domain,
    DomainSuffix,
    Group,
    GroupDestination,
    NetworkPolicy,
    PortRange,
    Rule,
)
from trionet.policy.groups import Gateways

GATEWAYS = Gateways(
    ipaddress.IPv4Address("172.16.0.1"),
    (ipaddress.IPv6Address("fd42::1"), ipaddress.IPv6Address("fe80::1")),
)

ipv4s = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1))
ipv6s = st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1))
# Bias towards the interesting corners: each group's ranges and mapped forms.
special_v4 = st.sampled_from(
    [
        "0.0.0.0",
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "169.254.1.1",
        "224.0.0.1",
        "8.8.8.8",
        "203.0.113.10",
        "255.255.255.255",
    ]
).map(ipaddress.IPv4Address)
addresses = st.one_of(
    ipv4s,
    ipv6s,
    special_v4,
    special_v4.map(lambda a: ipaddress.IPv6Address("::ffff:" + str(a))),
    special_v4.map(lambda a: ipaddress.IPv6Address("64:ff9b::" + str(a))),
    st.sampled_from(["::", "::1", "fd42::1", "fe80::1", "fc00::5", "ff02::1", "2001:db8::1"]).map(
        ipaddress.IPv6Address
    ),
)

labels = st.from_regex(r"[a-z0-9_]([a-z0-9_-]{0,6}[a-z0-9_])?", fullmatch=True)
domains = st.lists(labels, min_size=1, max_size=4).map(".".join)
cidrs = st.one_of(
    st.builds(lambda a, p: Cidr(f"{a}/{p}"), ipv4s, st.integers(0, 32)),
    st.builds(lambda a, p: Cidr(f"{a}/{p}"), ipv6s, st.integers(0, 128)),
    st.sampled_from(["10.0.0.0/8", "10.1.0.0/16", "0.0.0.0/0", "fd00::/8"]).map(Cidr),
)
destinations = st.one_of(
    st.just(ANY),
    cidrs,
    st.sampled_from(list(Group)).map(GroupDestination),
    domains.map(Domain),
    domains.map(DomainSuffix),
)
port_ranges = st.tuples(st.integers(0, 65535), st.integers(0, 65535)).map(
    lambda t: PortRange(min(t), max(t))
)
rules = st.builds(
    Rule,
    direction=st.sampled_from(list(Direction)),
    destination=destinations,
    action=st.sampled_from(list(Action)),
    protocols=st.frozensets(st.sampled_from(["tcp", "udp", "icmpv4", "icmpv6"])),
    ports=st.lists(port_ranges, max_size=3).map(tuple),
)
policies = st.builds(
    NetworkPolicy,
    default_egress=st.sampled_from(list(Action)),
    default_ingress=st.sampled_from(list(Action)),
    rules=st.lists(rules, max_size=8).map(tuple),
)
