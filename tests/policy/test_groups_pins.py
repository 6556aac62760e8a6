from __future__ import annotations

import ipaddress
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.policy import AnswerRecord, Group, PinSet, answer_pins, classify, is_rebind_private
from trionet.policy.groups import IPAddress

from .strategies import GATEWAYS, addresses, ipv4s

ip = ipaddress.ip_address


@pytest.mark.parametrize(
    ("address", "group"),
    [
        ("0.0.0.0", None),
        ("::", None),
        ("::ffff:0.0.0.0", None),
        ("172.16.0.1", Group.HOST),
        ("fd42::1", Group.HOST),
        ("fe80::1", Group.HOST),
        ("::ffff:172.16.0.1", Group.HOST),
        ("169.254.169.254", Group.METADATA),
        ("::ffff:169.254.169.254", Group.METADATA),
        ("127.0.0.1", Group.LOOPBACK),
        ("127.255.0.9", Group.LOOPBACK),
        ("::1", Group.LOOPBACK),
        ("10.0.0.1", Group.PRIVATE),
        ("172.16.0.2", Group.PRIVATE),
        ("172.31.255.255", Group.PRIVATE),
        ("192.168.0.1", Group.PRIVATE),
        ("100.64.0.1", Group.PRIVATE),
        ("fd00::1", Group.PRIVATE),
        ("::ffff:10.0.0.1", Group.PRIVATE),
        ("169.254.1.1", Group.LINK_LOCAL),
        ("fe80::2", Group.LINK_LOCAL),
        ("224.0.0.1", Group.MULTICAST),
        ("ff02::1", Group.MULTICAST),
        ("8.8.8.8", Group.PUBLIC),
        ("203.0.113.10", Group.PUBLIC),  # TEST-NET is public to policy (rebind-private to DNS)
        ("2001:db8::1", Group.PUBLIC),
        ("172.32.0.1", Group.PUBLIC),
        ("255.255.255.255", Group.PUBLIC),
        ("fec0::1", Group.PUBLIC),
        # NAT64 (RFC 6052): a translator on the host's path makes these IPv4.
        ("64:ff9b::10.0.0.1", Group.PRIVATE),
        ("64:ff9b::169.254.169.254", Group.METADATA),
        ("64:ff9b::127.0.0.1", Group.LOOPBACK),
        ("64:ff9b::172.16.0.1", Group.HOST),
        ("64:ff9b::8.8.8.8", Group.PUBLIC),
        ("64:ff9b::", None),
        ("64:ff9b:1::8.8.8.8", Group.PRIVATE),
        ("64:ff9c::10.0.0.1", Group.PUBLIC),
    ],
)
def test_classify(address: str, group: Group | None) -> None:
    assert classify(ip(address), GATEWAYS) is group


_REFERENCE = [
    (Group.METADATA, ["169.254.169.254/32"]),
    (Group.LOOPBACK, ["127.0.0.0/8", "::1/128"]),
    (
        Group.PRIVATE,
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"],
    ),
    (Group.LINK_LOCAL, ["169.254.0.0/16", "fe80::/10"]),
    (Group.MULTICAST, ["224.0.0.0/4", "ff00::/8"]),
]


def _reference_group(address: IPAddress) -> Group | None:
    """§10.2 written the slow, obvious way."""
    if address.version == 6 and address.ipv4_mapped is not None:  # type: ignore[union-attr]
        address = address.ipv4_mapped  # type: ignore[union-attr]
    if address in ipaddress.ip_network("64:ff9b::/96"):
        address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    elif address in ipaddress.ip_network("64:ff9b:1::/48"):
        return Group.PRIVATE
    if address.is_unspecified:
        return None
    if address in (GATEWAYS.ipv4, *GATEWAYS.ipv6):
        return Group.HOST
    for group, nets in _REFERENCE:
        if any(address in ipaddress.ip_network(n) for n in nets):
            return group
    return Group.PUBLIC


@given(addresses)
def test_classifier_matches_the_reference_order(address: IPAddress) -> None:
    group = classify(address, GATEWAYS)
    assert group == _reference_group(address)
    nat64_unspecified = int(ipaddress.IPv6Address("64:ff9b::"))
    assert (group is None) == (int(address) in (0, 0xFFFF_0000_0000, nat64_unspecified))


@given(ipv4s)
def test_mapped_classifies_as_embedded(address: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert classify(mapped, GATEWAYS) == classify(address, GATEWAYS)
    assert is_rebind_private(mapped) == is_rebind_private(address)


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("10.0.0.1", True),
        ("127.0.0.1", True),
        ("0.1.2.3", True),
        ("169.254.169.254", True),
        ("192.0.2.1", True),
        ("198.18.0.1", True),
        ("198.51.100.1", True),
        ("203.0.113.10", True),
        ("240.0.0.1", True),
        ("255.255.255.255", True),
        ("192.88.99.1", True),
        ("100.64.0.1", True),
        ("8.8.8.8", False),
        ("93.184.215.14", False),
        ("172.32.0.1", False),
        ("::1", True),
        ("::", True),
        ("fd00::1", True),
        ("fe80::1", True),
        ("fec0::1", True),
        ("ff02::1", True),
        ("100::1", True),
        ("64:ff9b:1::1", True),
        ("2001:db8::1", True),
        ("3fff::1", True),
        ("::ffff:10.0.0.1", True),
        ("2606:4700::1111", False),
        # NAT64 (DNS64 answers): judged by the IPv4 they carry.
        ("64:ff9b::8.8.8.8", False),
        ("64:ff9b::10.0.0.5", True),
        ("64:ff9b::169.254.169.254", True),
        ("64:ff9b::1", True),  # 0.0.0.1
    ],
)
def test_rebind_private(address: str, private: bool) -> None:
    assert is_rebind_private(ip(address)) is private


# -- pins ---------------------------------------------------------------------------


def test_pin_lifetime_and_ttl_floor() -> None:
    pins = PinSet()
    pins.record("Example.COM.", 4, [ip("93.184.215.14")], ttl=0, now=100.0)
    assert pins.names_for(ip("93.184.215.14"), 100.5) == {"example.com"}
    assert pins.names_for(ip("93.184.215.14"), 101.0) == frozenset()  # floored to 1 s
    pins.record("example.com", 4, [ip("93.184.215.14")], ttl=30, now=200.0)
    assert pins.names_for(ip("93.184.215.14"), 229.9) == {"example.com"}
    pins.expire(230.0)
    assert len(pins) == 0


def test_pin_families_are_independent_and_replace() -> None:
    pins = PinSet()
    pins.record("a.example", 4, [ip("1.1.1.1"), ip("1.1.1.2")], 60, 0)
    pins.record("a.example", 6, [ip("2001:4860::1")], 60, 0)
    pins.record("a.example", 4, [ip("1.1.1.3")], 60, 1)  # replaces the v4 entry only
    assert pins.names_for(ip("1.1.1.1"), 2) == frozenset()
    assert pins.names_for(ip("1.1.1.3"), 2) == {"a.example"}
    assert pins.names_for(ip("2001:4860::1"), 2) == {"a.example"}
    pins.record("a.example", 6, [], 60, 3)  # empty: forget
    assert pins.names_for(ip("2001:4860::1"), 4) == frozenset()
    pins.forget("A.example", 4)
    assert len(pins) == 0


def test_pin_mapped_addresses_normalise() -> None:
    pins = PinSet()
    pins.record("m.example", 6, [ip("::ffff:1.2.3.4")], 60, 0)
    assert pins.names_for(ip("1.2.3.4"), 1) == {"m.example"}
    assert pins.names_for(ip("::ffff:1.2.3.4"), 1) == {"m.example"}


def test_pin_set_is_bounded() -> None:
    pins = PinSet(max_entries=3)
    for i in range(5):
        pins.record(f"n{i}.example", 4, [ip(f"1.1.1.{i}")], 100 + i, 0)
    assert len(pins) == 3
    assert pins.evicted == 2
    # The soonest to expire went first.
    assert pins.names_for(ip("1.1.1.0"), 1) == frozenset()
    assert pins.names_for(ip("1.1.1.4"), 1) == {"n4.example"}


def test_pin_heap_stays_bounded_under_rerecording() -> None:
    pins = PinSet()
    for i in range(10_000):
        pins.record("same.example", 4, [ip("1.1.1.1")], 86400, float(i))
    assert len(pins._expiries) < 2000
    assert pins.names_for(ip("1.1.1.1"), 10_000.0) == {"same.example"}


def test_answer_pins_follows_cname_chains_only_from_the_query() -> None:
    records = [
        AnswerRecord("www.example.com.", "CNAME", 300, "edge.cdn.example."),
        AnswerRecord("edge.cdn.example", "CNAME", 60, "Edge2.cdn.example."),
        AnswerRecord("edge2.cdn.example", "A", 120, "93.184.215.14"),
        AnswerRecord("unrelated.example", "A", 5, "10.9.9.9"),  # not reachable: ignored
        AnswerRecord("unrelated.example", "CNAME", 5, "www.example.com"),
        AnswerRecord("edge2.cdn.example", "AAAA", 1, "2001:db8::1"),  # other family
    ]
    addresses, ttl = answer_pins("WWW.example.com", 4, records)
    assert addresses == {ip("93.184.215.14")}
    assert ttl == 60
    addresses6, ttl6 = answer_pins("www.example.com", 6, records)
    assert addresses6 == {ip("2001:db8::1")}
    assert ttl6 == 1
    assert answer_pins("www.example.com", 4, records[3:4]) == (frozenset(), 1.0)
    zero = [AnswerRecord("z.example", "A", 0, "1.2.3.4")]
    assert answer_pins("z.example", 4, zero)[1] == 1.0


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from([4, 6]), st.integers(0, 5)),
        max_size=30,
    )
)
def test_pin_set_agrees_with_a_dict(ops: list[tuple[str, int, int]]) -> None:
    pins = PinSet()
    model: dict[tuple[str, int], tuple[set[str], float]] = {}
    for now, (name, family, n) in enumerate(ops):
        addrs = [str(ip(f"10.0.0.{i}" if family == 4 else f"fd00::{i}")) for i in range(n)]
        pins.record(name, family, [ip(a) for a in addrs], 2.5, float(now))
        if addrs:
            model[(name, family)] = (set(addrs), now + 2.5)
        else:
            model.pop((name, family), None)
        for probe in ("10.0.0.0", "10.0.0.1", "fd00::", "fd00::3"):
            expected = {k[0] for k, (a, exp) in model.items() if probe in a and exp > now + 0.5}
            assert pins.names_for(ip(probe), now + 0.5) == expected


def test_pin_set_is_bounded_in_addresses_not_only_entries() -> None:
    # One answer over TCP can carry some 4000 A records: 65536 entries of
    # those would be ~2.6e8 addresses. The addresses all entries hold are
    # bounded too; the entries closest to expiry go first.
    pins = PinSet(max_entries=100, max_addresses=10)
    first = [ip(f"203.0.113.{i}") for i in range(6)]
    second = [ip(f"198.51.100.{i}") for i in range(6)]
    pins.record("first.example", 4, first, 30, 0)
    pins.record("second.example", 4, second, 60, 0)
    assert pins.names_for(first[0], 1) == frozenset()
    assert pins.names_for(second[0], 1) == {"second.example"}
    assert pins.evicted == 1
    huge = [ipaddress.IPv4Address(0x0A000000 + i) for i in range(50)]
    pins.record("huge.example", 4, huge, 60, 0)
    assert sum(bool(pins.names_for(a, 1)) for a in huge) == 10
    assert pins.names_for(second[0], 1) == frozenset()
    pins.forget("huge.example", 4)
    pins.record("again.example", 4, first, 60, 0)  # the count went back down
    assert pins.names_for(first[5], 1) == {"again.example"} and len(pins) == 1


def test_a_long_cname_chain_listed_backwards_costs_one_pass() -> None:
    # A resolver the guest picked (dig @X) can answer with thousands of
    # CNAMEs in 64 KiB. Iterating the records to a fixed point took one pass
    # per link: seconds of the engine's time for one query.
    n = 6000
    records = [AnswerRecord(f"c{i + 1}.example", "CNAME", 60, f"c{i}.example") for i in range(n)]
    records.append(AnswerRecord("c0.example", "A", 30, "192.0.2.7"))
    started = time.perf_counter()
    assert answer_pins(f"C{n}.example.", 4, records) == (frozenset({ip("192.0.2.7")}), 30)
    assert time.perf_counter() - started < 0.5


def _fixed_point_pins(name: str, family: int, records: list[AnswerRecord]) -> object:
    """§7.5 written the slow, obvious way: iterate until no CNAME adds a name."""
    eligible = {name.rstrip(".").lower()}
    ttls: list[float] = []
    used: set[int] = set()
    changed = True
    while changed:
        changed = False
        for i, r in enumerate(records):
            if r.kind == "CNAME" and i not in used and r.owner.lower() in eligible:
                used.add(i)
                ttls.append(max(r.ttl, 1.0))
                if r.data.lower() not in eligible:
                    eligible.add(r.data.lower())
                    changed = True
    wanted = "A" if family == 4 else "AAAA"
    found = {ip(r.data) for r in records if r.kind == wanted and r.owner.lower() in eligible}
    ttls += [max(r.ttl, 1.0) for r in records if r.kind == wanted and r.owner.lower() in eligible]
    return (frozenset(found), min(ttls)) if found else (frozenset(), 1.0)


_owners = st.sampled_from(["a.example", "B.example", "c.example", "d.example"])


@given(
    st.lists(
        st.one_of(
            st.builds(AnswerRecord, _owners, st.just("CNAME"), st.integers(0, 99), _owners),
            st.builds(
                AnswerRecord,
                _owners,
                st.just("A"),
                st.integers(0, 99),
                st.sampled_from(["192.0.2.1", "192.0.2.2", "198.51.100.3"]),
            ),
        ),
        max_size=12,
    )
)
def test_answer_pins_is_the_fixed_point(records: list[AnswerRecord]) -> None:
    assert answer_pins("a.example", 4, records) == _fixed_point_pins("a.example", 4, records)
