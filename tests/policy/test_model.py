from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.config_fields import ConfigError
from trionet.dns.config import Nameserver
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
    canonical_domain,
)
from trionet.policy.model import allow_dns

from .strategies import policies


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        (".example.com", "example.com"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("a-b.example", "a-b.example"),
    ],
)
def test_canonical_domain(raw: str, canonical: str) -> None:
    assert canonical_domain(raw) == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "",
        ".",
        "https://example.com",
        "example.com:443",
        "*.example.com",
        "a..b",
        "-a.com",
        "a b.com",
        "x" * 64 + ".com",
        "exa/mple.com",
        "münchen.de",
    ],
)
def test_canonical_domain_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        canonical_domain(bad)


def test_public_profile_is_the_reference_default() -> None:
    policy = NetworkPolicy.public()
    assert policy.default_egress is Action.DENY
    assert policy.default_ingress is Action.ALLOW
    assert [r.text() for r in policy.rules] == [
        "allow egress group:host tcp,udp port 53",
        "allow egress group:public",
    ]


def test_profiles_compose_in_canonical_order_without_duplicates() -> None:
    policy = NetworkPolicy.from_profiles(["host", "public", "private", "host"])
    assert policy.rules == (
        allow_dns(),
        Rule.allow(Group.PUBLIC),
        Rule.allow(Group.PRIVATE),
        Rule.allow(Group.HOST),
    )
    assert NetworkPolicy.from_profiles([]) == NetworkPolicy(Action.DENY, Action.ALLOW, ())
    with pytest.raises(ValueError, match="unknown profile"):
        NetworkPolicy.from_profiles(["everything"])


def test_presets() -> None:
    assert NetworkPolicy.allow_all() == NetworkPolicy(Action.ALLOW, Action.ALLOW, ())
    assert NetworkPolicy.deny_all() == NetworkPolicy(Action.DENY, Action.DENY, ())


def test_domain_helpers_prepend() -> None:
    policy = (
        NetworkPolicy.public().deny_domains("Evil.example.").allow_domain_suffixes("ok.example")
    )
    assert policy.rules[0] == Rule.allow(DomainSuffix("ok.example"))
    assert policy.rules[1] == Rule.deny(Domain("evil.example"))
    assert policy.rules[2:] == NetworkPolicy.public().rules


def test_builder_shorthands() -> None:
    assert Rule.allow("10.0.0.0/8").destination == Cidr("10.0.0.0/8")
    assert Rule.allow("192.0.2.7").destination.network == ipaddress.ip_network("192.0.2.7/32")  # type: ignore[union-attr]
    assert Rule.allow("2001:db8::1").destination == Cidr("2001:db8::1/128")
    assert Rule.allow("any").destination is ANY
    assert Rule.allow("Example.com").destination == Domain("example.com")
    assert Rule.allow(Group.HOST).destination == GroupDestination(Group.HOST)
    rule = Rule.deny("10.0.0.0/8", protocols=["TCP"], ports=[22, (8000, 8100)])
    assert rule.protocols == frozenset({"tcp"})
    assert rule.ports == (PortRange(22, 22), PortRange(8000, 8100))
    assert rule.text() == "deny egress cidr:10.0.0.0/8 tcp port 22,8000-8100"


def test_builder_rejects_what_the_reference_builder_rejects() -> None:
    with pytest.raises(ValueError, match="ICMP"):
        Rule.allow(Group.PUBLIC, direction=Direction.ANY, protocols=["icmpv4"])
    with pytest.raises(ValueError, match="single label"):
        Rule.allow(DomainSuffix("com"))
    with pytest.raises(ValueError):
        Rule.allow(Group.PUBLIC, ports=[(10, 5)])
    with pytest.raises(ValueError):
        Rule.allow(Group.PUBLIC, ports=[70000])
    with pytest.raises(ValueError, match="unknown protocol"):
        Rule.allow(Group.PUBLIC, protocols=["sctp"])


def test_dict_form_reads_the_reference_example() -> None:
    data = {
        "default_egress": "deny",
        "rules": [
            {
                "direction": "egress",
                "destination": "any",
                "protocols": ["Udp"],
                "ports": [{"start": 53, "end": 53}],
                "action": "allow",
            },
            {"direction": "any", "destination": {"cidr": "10.1.2.3/8"}, "action": "deny"},
            {
                "direction": "egress",
                "destination": {"domain": "API.Example.com."},
                "action": "allow",
            },
            {
                "direction": "egress",
                "destination": {"domain_suffix": "example.org"},
                "action": "allow",
            },
            {"direction": "ingress", "destination": {"group": "link_local"}, "action": "allow"},
        ],
    }
    policy = NetworkPolicy.from_dict(data)
    assert policy.default_ingress is Action.DENY  # missing defaults fail closed
    assert policy.rules[0].protocols == frozenset({"udp"})
    assert policy.rules[1].destination == Cidr("10.0.0.0/8")
    assert policy.rules[2].destination == Domain("api.example.com")
    assert policy.rules[4].destination == GroupDestination(Group.LINK_LOCAL)
    assert NetworkPolicy.from_dict(policy.to_dict()) == policy


def test_empty_dict_denies_everything() -> None:
    assert NetworkPolicy.from_dict({}) == NetworkPolicy.deny_all()


def _rule(**over: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"direction": "egress", "destination": "any", "action": "allow"}
    rule.update(over)
    return rule


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        (_rule(destination={"cidr": "10.0.0.0/33"}), "policy.rules[2].destination.cidr"),
        (_rule(destination={"domain": "http://x.com"}), "policy.rules[2].destination.domain"),
        (_rule(destination={"domain_suffix": ""}), "policy.rules[2].destination.domain_suffix"),
        (_rule(destination={"group": "lan"}), "policy.rules[2].destination.group"),
        (_rule(destination={"host": "x"}), "policy.rules[2].destination.host"),
        (_rule(destination={"cidr": "1.0.0.0/8", "group": "x"}), "policy.rules[2].destination"),
        (_rule(destination="all"), "policy.rules[2].destination"),
        (_rule(direction="out"), "policy.rules[2].direction"),
        (_rule(action="maybe"), "policy.rules[2].action"),
        (_rule(protocols=["sctp"]), "policy.rules[2].protocols[0]"),
        (_rule(protocols="tcp"), "policy.rules[2].protocols"),
        (_rule(ports=[{"start": 9, "end": 1}]), "policy.rules[2].ports[0]"),
        (_rule(ports=[{"start": 9}]), "policy.rules[2].ports[0]"),
        (_rule(ports=[{"start": 1, "end": 2, "step": 1}]), "policy.rules[2].ports[0].step"),
        (_rule(ports=[{"start": True, "end": 2}]), "policy.rules[2].ports[0].start"),
        (_rule(extra=1), "policy.rules[2].extra"),
        ({"direction": "egress", "action": "allow"}, "policy.rules[2].destination"),
        ("allow all", "policy.rules[2]"),
    ],
)
def test_errors_name_the_field(rule: Any, path: str) -> None:
    data = {"rules": [_rule(), _rule(), rule]}
    with pytest.raises(ConfigError) as info:
        NetworkPolicy.from_dict(data)
    assert info.value.path == path
    assert str(info.value).startswith(path + ": ")


def test_unknown_top_level_key() -> None:
    with pytest.raises(ConfigError, match=r"^policy\.default: unknown key"):
        NetworkPolicy.from_dict({"default": "allow"})
    with pytest.raises(ConfigError, match=r"^policy\.default_egress: 'open' is not one of"):
        NetworkPolicy.from_dict({"default_egress": "open"})


def test_shadow_warnings() -> None:
    policy = NetworkPolicy(
        rules=(
            Rule.allow(Cidr("10.0.0.0/8")),
            Rule.deny(Cidr("10.1.0.0/16"), protocols=["tcp"]),  # shadowed by 0
            Rule.allow(Cidr("fd00::/8")),  # other family: not shadowed
            Rule.allow(Group.PUBLIC, protocols=["tcp"], ports=[(1, 1000)]),
            Rule.deny(Group.PUBLIC, protocols=["tcp"], ports=[80, 443]),  # shadowed by 3
            Rule.deny(Group.PUBLIC, ports=[80]),  # protocols empty: not shadowed by 3
            Rule.allow(Domain("a.example")),
            Rule.allow(Domain("a.example")),  # domains never considered
            Rule(Direction.ANY, ANY, Action.DENY),
            Rule.allow(Domain("b.example"), direction=Direction.INGRESS),  # shadowed by 8
        )
    )
    warnings = policy.shadowed()
    assert [w.split(" ", 1)[0] for w in warnings] == ["rules[1]", "rules[4]", "rules[9]"]
    assert "shadowed by rules[0] (allow egress cidr:10.0.0.0/8)" in warnings[0]


@given(policies)
def test_dict_round_trip(policy: NetworkPolicy) -> None:
    assert NetworkPolicy.from_dict(policy.to_dict()) == policy


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "rules",
                    "default_egress",
                    "direction",
                    "destination",
                    "action",
                    "protocols",
                    "ports",
                    "start",
                    "end",
                    "cidr",
                    "domain",
                    "domain_suffix",
                    "group",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@given(
    st.dictionaries(
        st.sampled_from(["rules", "default_egress", "default_ingress", "y"]),
        json_values,
        max_size=3,
    )
)
def test_any_dict_is_a_policy_or_a_config_error(data: dict[str, Any]) -> None:
    """Whatever a config file holds, reading it never fails any other way."""
    try:
        policy = NetworkPolicy.from_dict(data)
    except ConfigError as exc:
        assert exc.path.startswith("policy")
    else:
        assert NetworkPolicy.from_dict(policy.to_dict()) == policy


@given(st.text(max_size=40))
def test_any_nameserver_text_parses_or_is_a_value_error(text: str) -> None:

    try:
        server = Nameserver.parse(text)
    except ValueError:
        return
    assert Nameserver.parse(str(server)) == server
