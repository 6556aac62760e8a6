"""The ``ports`` and ``rate_limiter`` sections, and the ``-p`` syntax."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.config import ConfigError, NetworkConfig
from trionet.ports.config import PortMapping, parse_publish
from trionet.ratelimit.config import DirectionLimits, RateLimiterConfig, TokenBucketConfig

port_mappings = st.builds(
    PortMapping,
    # Distinct host ports never collide in a generated list (0 may repeat).
    host_port=st.just(0),
    guest_port=st.integers(1, 65535),
    protocol=st.sampled_from(["tcp", "udp"]),
    host_bind=st.ip_addresses(),
    real_source=st.booleans(),
)
buckets = st.builds(
    TokenBucketConfig,
    size=st.integers(1, 2**40),
    refill_time_ms=st.integers(1, 10**6),
    one_time_burst=st.integers(0, 2**40),
)
directions = st.one_of(
    st.builds(DirectionLimits, bandwidth=buckets, ops=st.none() | buckets),
    st.builds(DirectionLimits, bandwidth=st.none(), ops=buckets),
)
rate_limiters = st.one_of(
    st.builds(RateLimiterConfig, egress=directions, ingress=st.none() | directions),
    st.builds(RateLimiterConfig, egress=st.none(), ingress=directions),
)


@given(port_mappings)
def test_publish_spec_round_trips(mapping: PortMapping) -> None:
    bind = mapping.host_bind
    address = f"[{bind}]" if bind.version == 6 else str(bind)
    text = f"{address}:{mapping.host_port}:{mapping.guest_port}/{mapping.protocol}"
    assert parse_publish(text, real_source=mapping.real_source) == mapping


def test_ports_section_defaults_and_legacy_spellings() -> None:
    config = NetworkConfig.from_dict(
        {
            "ports": [
                {"host_port": 8080, "guest_port": 80},
                {"host_port": 5353, "guest_port": 53, "protocol": "Udp", "host_bind": "::1"},
            ]
        }
    )
    assert config.ports == (
        PortMapping(8080, 80),
        PortMapping(5353, 53, "udp", ipaddress.IPv6Address("::1")),
    )
    assert config.ports[0].host_bind == ipaddress.IPv4Address("127.0.0.1")
    assert config.to_dict()["ports"][1] == {
        "host_port": 5353,
        "guest_port": 53,
        "protocol": "udp",
        "host_bind": "::1",
        "real_source": False,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080:80", PortMapping(8080, 80)),
        ("8080:80/udp", PortMapping(8080, 80, "udp")),
        ("0.0.0.0:8080:80/tcp", PortMapping(8080, 80, host_bind=ipaddress.ip_address("0.0.0.0"))),
        ("[::1]:8080:80", PortMapping(8080, 80, host_bind=ipaddress.ip_address("::1"))),
        ("[::]:0:53/udp", PortMapping(0, 53, "udp", ipaddress.ip_address("::"))),
    ],
)
def test_publish_syntax(text: str, expected: PortMapping) -> None:
    assert parse_publish(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("80", "is not [ADDR:]HOST:GUEST"),
        ("8080:80/sctp", "must be tcp or udp"),
        ("::1:8080:80", "is not [ADDR:]HOST:GUEST"),
        ("[::1]8080:80", "needs the form [ADDR]:HOST:GUEST"),
        ("foo:8080:80", "'foo' is not an IP address"),
        ("8080:x", "'x' is not a port number"),
        ("70000:80", "host_port: 70000 is outside 0..65535"),
        ("8080:0", "guest_port: 0 is outside 1..65535"),
    ],
)
def test_publish_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_publish(text)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ports": [{"guest_port": 80}]}, "ports[0].host_port: is required"),
        ({"ports": [{"host_port": 1, "guest_port": 0}]}, "ports[0].guest_port: 0 is outside"),
        ({"ports": [{"host_port": 1, "guest_port": 2, "protocol": "sctp"}]}, "ports[0].protocol"),
        ({"ports": [{"host_port": 1, "guest_port": 2, "host_bind": "x"}]}, "ports[0].host_bind"),
        ({"ports": [{"host_port": 1, "guest_port": 2, "colour": 1}]}, "ports[0].colour: unknown"),
        ({"ports": [5]}, "ports[0]: 5 is not a table"),
        ({"ports": "8080:80"}, "ports: '8080:80' is not a list"),
        (
            {"ports": [{"host_port": 1, "guest_port": 2}, {"host_port": 1, "guest_port": 3}]},
            "ports[1].host_port: 127.0.0.1 port 1/tcp is already published by ports[0]",
        ),
        ({"rate_limiter": {}}, "rate_limiter: needs an egress or an ingress limit"),
        ({"rate_limiter": {"egress": {}}}, "rate_limiter.egress.bandwidth: a direction needs"),
        (
            {"rate_limiter": {"ingress": {"ops": {"size": 0, "refill_time_ms": 1}}}},
            "rate_limiter.ingress.ops.size: 0 must be above 0",
        ),
        (
            {"rate_limiter": {"egress": {"bandwidth": {"size": 5, "refill_time_ms": 0}}}},
            "rate_limiter.egress.bandwidth.refill_time_ms: 0 must be at least 1",
        ),
        (
            {"rate_limiter": {"egress": {"bandwidth": {"size": 5}}}},
            "rate_limiter.egress.bandwidth.refill_time_ms: is required",
        ),
        (
            {"rate_limiter": {"egress": {"ops": {"size": 5, "refill_time_ms": 1, "x": 1}}}},
            "rate_limiter.egress.ops.x: unknown key",
        ),
    ],
)
def test_errors_name_their_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        NetworkConfig.from_dict(data)
    assert str(info.value).startswith(message)


@given(st.text(alphabet="0123456789:[]./abcdefptu-", max_size=40))
def test_publish_syntax_rejects_with_value_error_only(text: str) -> None:
    try:
        mapping = parse_publish(text)
    except ValueError:
        return
    assert 0 <= mapping.host_port <= 65535 and 1 <= mapping.guest_port <= 65535
