from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.policy import (
    Action,
    Cidr,
    Direction,
    Domain,
    DomainSuffix,
    Group,
    NetworkPolicy,
    PinSet,
    PolicyEvaluator,
    PolicyVerdict,
    Rule,
)
from trionet.policy.groups import IPAddress

from .strategies import GATEWAYS, addresses, policies

ip = ipaddress.ip_address
ALLOW, DENY, DEFER = PolicyVerdict.ALLOW, PolicyVerdict.DENY, PolicyVerdict.DEFER


def evaluator(policy: NetworkPolicy, platform: NetworkPolicy | None = None) -> PolicyEvaluator:
    return PolicyEvaluator(policy, GATEWAYS, PinSet(), platform)


@pytest.mark.parametrize(
    ("address", "verdict"),
    [
        ("93.184.215.14", ALLOW),
        ("2606:4700::1111", ALLOW),
        ("203.0.113.10", ALLOW),
        ("172.16.0.1", DENY),
        ("fd42::1", DENY),
        ("fe80::1", DENY),  # host
        ("10.0.0.1", DENY),
        ("192.168.1.1", DENY),
        ("fd00::5", DENY),  # private
        ("127.0.0.1", DENY),
        ("::1", DENY),
        ("169.254.1.1", DENY),
        ("fe80::9", DENY),
        ("169.254.169.254", DENY),
        ("::ffff:169.254.169.254", DENY),
        ("::ffff:10.0.0.1", DENY),
        ("0.0.0.0", DENY),
        ("::", DENY),
        ("224.0.0.1", DENY),
    ],
)
def test_public_profile_egress(address: str, verdict: PolicyVerdict) -> None:
    decision = evaluator(NetworkPolicy.public()).egress(ip(address), 443, "tcp", 0.0)
    assert decision.verdict is verdict
    if verdict is ALLOW:
        assert (decision.rule_index, decision.rule_text) == (1, "allow egress group:public")
    else:
        assert (decision.rule_index, decision.rule_text) == (None, "default")


def test_dns_to_the_gateway_only_on_port_53() -> None:
    ev = evaluator(NetworkPolicy.public())
    assert ev.egress(ip("172.16.0.1"), 53, "udp", 0).verdict is ALLOW
    assert ev.egress(ip("fd42::1"), 53, "tcp", 0).rule_index == 0
    assert ev.egress(ip("172.16.0.1"), 853, "tcp", 0).verdict is DENY
    assert ev.egress(ip("172.16.0.1"), None, "icmpv4", 0).verdict is DENY  # port-less
    ev = evaluator(NetworkPolicy.from_profiles(["host"]))
    assert ev.egress(ip("172.16.0.1"), 8080, "tcp", 0).verdict is ALLOW
    assert ev.egress(ip("172.16.0.1"), None, "icmpv4", 0).verdict is ALLOW


def test_protocol_and_port_filters() -> None:
    policy = NetworkPolicy(
        rules=(Rule.allow(Group.PUBLIC, protocols=["tcp"], ports=[443, (8000, 8100)]),)
    )
    ev = evaluator(policy)
    assert ev.egress(ip("1.1.1.1"), 443, "tcp", 0).verdict is ALLOW
    assert ev.egress(ip("1.1.1.1"), 8050, "tcp", 0).verdict is ALLOW
    assert ev.egress(ip("1.1.1.1"), 80, "tcp", 0).verdict is DENY
    assert ev.egress(ip("1.1.1.1"), 443, "udp", 0).verdict is DENY
    assert ev.egress(ip("1.1.1.1"), None, "icmpv4", 0).verdict is DENY


def test_cidr_rules_match_mapped_addresses_and_their_family_only() -> None:
    policy = NetworkPolicy(rules=(Rule.deny("10.0.0.0/8"), Rule.allow("any")))
    ev = evaluator(policy)
    assert ev.egress(ip("::ffff:10.1.1.1"), 80, "tcp", 0).verdict is DENY
    assert ev.egress(ip("::a01:101"), 80, "tcp", 0).verdict is ALLOW  # IPv4-compatible, not mapped
    assert ev.egress(ip("11.0.0.1"), 80, "tcp", 0).verdict is ALLOW


def test_ingress_rules_never_decide_egress() -> None:
    policy = NetworkPolicy(rules=(Rule.allow("any", direction=Direction.INGRESS),))
    ev = evaluator(policy)
    assert ev.egress(ip("1.1.1.1"), 80, "tcp", 0).verdict is DENY
    assert ev.ingress(ip("1.1.1.1"), 80, "tcp", 0).verdict is ALLOW


def test_domain_rules_through_the_pin_set() -> None:
    policy = NetworkPolicy(
        rules=(Rule.allow(DomainSuffix("example.com")), Rule.deny(Domain("evil.org")))
    ).append(Rule.allow(Group.PUBLIC))
    ev = evaluator(policy)
    target = ip("93.184.215.14")
    assert ev.egress(target, 443, "tcp", 0).rule_index == 2  # nothing pinned: the group rule
    ev.pins.record("evil.org", 4, [target], 60, 0)
    decision = ev.egress(target, 443, "tcp", 1)
    assert (decision.verdict, decision.rule_index, decision.matched_name) == (DENY, 1, "evil.org")
    ev.pins.record("www.example.com", 4, [target], 60, 0)
    decision = ev.egress(target, 443, "tcp", 1)
    assert (decision.verdict, decision.matched_name) == (ALLOW, "www.example.com")
    # The pins expire, and with them the domain rules' grip on this IP.
    assert ev.egress(target, 443, "tcp", 61).rule_index == 2
    # Suffixes are label-aligned.
    ev.pins.record("evilexample.com", 4, [ip("1.2.3.4")], 60, 0)
    assert ev.egress(ip("1.2.3.4"), 443, "tcp", 1).rule_index == 2


def test_sni_rules() -> None:
    policy = NetworkPolicy(
        rules=(Rule.deny(Domain("blocked.example")), Rule.allow(DomainSuffix("ok.example")))
    )
    ev = evaluator(policy)
    anywhere = ip("1.2.3.4")
    # Deny on the SNI alone: dialling the IP directly does not dodge a domain block.
    decision = ev.egress(anywhere, 443, "tcp", 0, sni="Blocked.Example")
    assert (decision.verdict, decision.rule_index) == (DENY, 0)
    # Allow needs the pin too: a spoofed SNI on an unrelated IP gets nothing.
    assert ev.egress(anywhere, 443, "tcp", 0, sni="a.ok.example").verdict is DENY
    ev.pins.record("b.ok.example", 4, [anywhere], 60, 0)
    decision = ev.egress(anywhere, 443, "tcp", 1, sni="a.ok.example")
    assert (decision.verdict, decision.rule_index, decision.matched_name) == (
        ALLOW,
        1,
        "a.ok.example",
    )
    assert ev.egress(anywhere, 443, "tcp", 1, sni="not a name").verdict is DENY


def test_deferred_at_syn() -> None:
    deny_then_nothing = NetworkPolicy(rules=(Rule.deny(Domain("evil.example")),))
    ev = evaluator(deny_then_nothing)
    # Nothing after the deny could allow: deny now, on the default.
    assert ev.egress(ip("1.2.3.4"), 443, "tcp", 0, deferred=True) == ev.egress(
        ip("1.2.3.4"), 443, "tcp", 0
    )
    deny_then_public = deny_then_nothing.append(Rule.allow(Group.PUBLIC))
    ev = evaluator(deny_then_public)
    decision = ev.egress(ip("1.2.3.4"), 443, "tcp", 0, deferred=True)
    assert (decision.verdict, decision.rule_index) == (DEFER, 0)
    # ... but a private IP is denied now: the later allow cannot match it.
    assert ev.egress(ip("10.0.0.1"), 443, "tcp", 0, deferred=True).verdict is DENY
    # An earlier IP rule decides immediately.
    ip_first = deny_then_public.prepend(Rule.allow("1.2.3.4"))
    assert evaluator(ip_first).egress(ip("1.2.3.4"), 443, "tcp", 0, deferred=True).verdict is ALLOW
    # An allow domain rule defers only when the pin set binds the IP already.
    allow_domain = NetworkPolicy(rules=(Rule.allow(Domain("ok.example")),))
    ev = evaluator(allow_domain)
    assert ev.egress(ip("1.2.3.4"), 443, "tcp", 0, deferred=True).verdict is DENY
    ev.pins.record("ok.example", 4, [ip("1.2.3.4")], 60, 0)
    decision = ev.egress(ip("1.2.3.4"), 443, "tcp", 0, deferred=True)
    assert (decision.verdict, decision.matched_name) == (DEFER, "ok.example")


def test_dns_queries() -> None:
    policy = NetworkPolicy.public().deny_domain_suffixes("blocked.example")
    policy = policy.prepend(Rule.allow(Domain("tcp-only.example"), protocols=["tcp"], ports=[1]))
    ev = evaluator(policy)
    decision = ev.dns_query("www.Example.com.", "udp", 53)
    assert (decision.verdict, decision.rule_index, decision.matched_name) == (
        ALLOW,
        2,
        "www.example.com",
    )
    assert ev.dns_query("x.blocked.example", "udp", 53).rule_index == 1
    # Domain rules ignore their protocol/port filters for queries.
    assert ev.dns_query("tcp-only.example", "udp", 53).rule_index == 0
    # DoT queries (853) are not covered by allow_dns: the default denies them.
    assert ev.dns_query("www.example.com", "tcp", 853).verdict is DENY
    # A name that is no domain can still match the host group rule.
    assert ev.dns_query("bad name!", "udp", 53).rule_index == 2
    # CIDR and other group rules never match a query.
    only_ips = NetworkPolicy(
        default_egress=Action.DENY, rules=(Rule.allow(Group.PUBLIC), Rule.allow("0.0.0.0/0"))
    )
    assert evaluator(only_ips).dns_query("example.com", "udp", 53).verdict is DENY
    any_udp = NetworkPolicy(rules=(Rule.allow("any", protocols=["udp"]),))
    assert evaluator(any_udp).dns_query("example.com", "udp", 53).verdict is ALLOW
    assert evaluator(any_udp).dns_query("example.com", "tcp", 53).verdict is DENY


def test_ingress() -> None:
    policy = NetworkPolicy(
        default_ingress=Action.DENY,
        rules=(
            Rule.allow(Group.LOOPBACK, direction=Direction.INGRESS, ports=[80]),
            Rule.deny("any", direction=Direction.ANY, protocols=["udp"]),
            Rule.allow(Domain("peer.example"), direction=Direction.INGRESS),
        ),
    )
    ev = evaluator(policy)
    assert ev.ingress(ip("127.0.0.1"), 80, "tcp", 0).verdict is ALLOW
    assert ev.ingress(ip("127.0.0.1"), 81, "tcp", 0).verdict is DENY
    assert ev.ingress(ip("127.0.0.1"), 80, "udp", 0).verdict is ALLOW
    assert ev.ingress(ip("127.0.0.2"), 81, "udp", 0).rule_index == 1
    ev.pins.record("peer.example", 4, [ip("5.6.7.8")], 10, 0)
    assert ev.ingress(ip("5.6.7.8"), 22, "tcp", 1).matched_name == "peer.example"
    assert NetworkPolicy.public().default_ingress is Action.ALLOW


def test_rebind_admission() -> None:
    private = evaluator(NetworkPolicy.from_profiles(["public", "private"]))
    assert private.admits_private_answer(ip("10.1.2.3"), 0)
    assert private.admits_private_answer(ip("::ffff:10.1.2.3"), 0)
    for address in ("127.0.0.1", "169.254.169.254", "169.254.1.1", "0.0.0.0", "::1"):
        assert not private.admits_private_answer(ip(address), 0), address
    # Public TEST-NET answers are rebind-private but only explicit rules admit them:
    # the public group rule does (it names the group), a default allow never does.
    assert private.admits_private_answer(ip("203.0.113.10"), 0)
    assert not evaluator(NetworkPolicy.allow_all()).admits_private_answer(ip("10.0.0.1"), 0)
    any_rule = NetworkPolicy(rules=(Rule.allow("any"),))
    assert not evaluator(any_rule).admits_private_answer(ip("10.0.0.1"), 0)
    port_scoped = NetworkPolicy(rules=(Rule.allow(Group.PRIVATE, ports=[80]),))
    assert not evaluator(port_scoped).admits_private_answer(ip("10.0.0.1"), 0)
    earlier_deny = NetworkPolicy.from_profiles(["private"]).prepend(Rule.deny("10.0.0.0/8"))
    assert not evaluator(earlier_deny).admits_private_answer(ip("10.0.0.1"), 0)
    assert evaluator(earlier_deny).admits_private_answer(ip("192.168.0.1"), 0)
    udp_only = NetworkPolicy(
        rules=(Rule.deny("10.0.0.0/8", protocols=["tcp"]), Rule.allow(Group.PRIVATE))
    )
    assert evaluator(udp_only).admits_private_answer(ip("10.0.0.1"), 0)  # via UDP
    # The platform floor (public only) vetoes whatever the tenant admits.
    floor = evaluator(NetworkPolicy.from_profiles(["private"]), NetworkPolicy.public())
    assert not floor.admits_private_answer(ip("10.0.0.1"), 0)


def test_platform_floor() -> None:
    ev = evaluator(NetworkPolicy.allow_all(), NetworkPolicy.public())
    decision = ev.egress(ip("10.0.0.1"), 80, "tcp", 0)
    assert (decision.verdict, decision.layer, decision.rule_text) == (DENY, "platform", "default")
    decision = ev.egress(ip("1.1.1.1"), 80, "tcp", 0)
    assert (decision.verdict, decision.layer, decision.rule_text) == (ALLOW, "tenant", "default")
    narrow = evaluator(NetworkPolicy.deny_all(), NetworkPolicy.public())
    decision = narrow.egress(ip("1.1.1.1"), 80, "tcp", 0)
    assert (decision.verdict, decision.layer) == (DENY, "tenant")
    # The metadata service stays out of reach whatever the tenant says.
    meta = evaluator(NetworkPolicy(rules=(Rule.allow(Group.METADATA),)), NetworkPolicy.public())
    assert meta.egress(ip("169.254.169.254"), 80, "tcp", 0).layer == "platform"


# -- properties ------------------------------------------------------------------------

probes = st.tuples(
    addresses,
    st.one_of(st.none(), st.integers(0, 65535), st.sampled_from([53, 80, 443])),
    st.sampled_from(["tcp", "udp", "icmpv4", "icmpv6"]),
    st.one_of(st.none(), st.sampled_from(["a", "a.b", "example.com", "x.example.com"])),
)


def _decide(
    policy: NetworkPolicy, probe: tuple[IPAddress, int | None, str, str | None]
) -> tuple[PolicyVerdict, ...]:
    address, port, protocol, sni = probe
    ev = evaluator(policy)
    for name in ("a", "a.b", "example.com", "x.example.com"):
        ev.pins.record(name, address.version, [address], 60, 0)
    return (
        ev.egress(address, port, protocol, 1).verdict,
        ev.egress(address, port, protocol, 1, deferred=True).verdict,
        ev.egress(address, port, protocol, 1, sni=sni).verdict,
        ev.ingress(address, port or 0, protocol, 1).verdict,
        PolicyVerdict((ev.admits_private_answer(address, 1) and "allow") or "deny"),
    )


@given(policies, probes)
def test_shadowed_rules_never_decide(
    policy: NetworkPolicy, probe: tuple[IPAddress, int | None, str, str | None]
) -> None:
    """Dropping every rule the shadow check reports leaves every flow decision unchanged."""
    shadowed = {int(w[len("rules[") : w.index("]")]) for w in policy.shadowed()}
    kept = tuple(r for i, r in enumerate(policy.rules) if i not in shadowed)
    lean = NetworkPolicy(policy.default_egress, policy.default_ingress, kept)
    assert lean.shadowed() == []
    # Flow decisions only: rebind admission reads explicit rules alone (an
    # earlier "any" never admits), so a rule "any" shadows may still admit.
    assert _decide(lean, probe)[:4] == _decide(policy, probe)[:4]


@given(policies, probes, st.data())
def test_swapping_agreeing_address_rules_decides_the_same(
    policy: NetworkPolicy,
    probe: tuple[IPAddress, int | None, str, str | None],
    data: st.DataObject,
) -> None:
    """Two adjacent address rules with the same action may be written in either order."""
    rules = list(policy.rules)
    swappable = [
        i
        for i in range(len(rules) - 1)
        if rules[i].action is rules[i + 1].action
        and not isinstance(rules[i].destination, Domain | DomainSuffix)
        and not isinstance(rules[i + 1].destination, Domain | DomainSuffix)
    ]
    if not swappable:
        return
    i = data.draw(st.sampled_from(swappable))
    rules[i], rules[i + 1] = rules[i + 1], rules[i]
    swapped = NetworkPolicy(policy.default_egress, policy.default_ingress, tuple(rules))
    assert _decide(swapped, probe) == _decide(policy, probe)


def test_admission_reads_cidr_rules() -> None:
    ev = evaluator(NetworkPolicy(rules=(Rule.allow(Cidr("10.1.0.0/16")),)))
    assert ev.admits_private_answer(ip("10.1.9.9"), 0)
    assert not ev.admits_private_answer(ip("10.2.0.1"), 0)


def test_deferred_walk_over_a_long_blocklist() -> None:
    # A blocklist of thousands of domains is an ordinary policy; deciding a
    # SYN against it must not cost a stack frame per deny rule (it used to
    # raise RecursionError past ~1000 of them, inside the engine's flush).
    names = [f"blocked{i}.example" for i in range(3000)]
    ev = evaluator(NetworkPolicy.public().deny_domains(*names))
    decision = ev.egress(ip("93.184.215.14"), 443, "tcp", 0, deferred=True)
    assert (decision.verdict, decision.rule_index) == (DEFER, 0)
    assert ev.egress(ip("10.0.0.1"), 443, "tcp", 0, deferred=True).verdict is DENY
    only_denies = evaluator(NetworkPolicy(rules=tuple(Rule.deny(Domain(n)) for n in names)))
    decision = only_denies.egress(ip("93.184.215.14"), 443, "tcp", 0, deferred=True)
    assert (decision.verdict, decision.rule_index) == (DENY, None)
