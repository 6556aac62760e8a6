"""The ``dhcp`` config section: defaults, round trip, and errors that name their field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.config import ConfigError, NetworkConfig
from trionet.dhcp.config import DhcpConfig

domains = st.sampled_from(["example.com", "corp.internal", "a-b.c0.example", "x"])
dhcp_configs = st.builds(
    DhcpConfig,
    enabled=st.booleans(),
    search_domains=st.lists(domains, max_size=4).map(tuple),
    lease_time=st.integers(10, 0xFFFFFFFE),
    hostname=st.none() | domains,
    router_advertisements=st.booleans(),
    ra_interval=st.integers(4, 1800),
    ra_managed=st.booleans(),
    ra_other=st.booleans(),
    dhcpv6=st.booleans(),
)


def test_on_by_default() -> None:
    config = NetworkConfig().dhcp
    assert config.enabled and config.router_advertisements and config.dhcpv6
    assert config.lease_time == 3600
    assert config.search_domains == ()
    assert NetworkConfig.from_dict({}).dhcp == DhcpConfig()


def test_dict_form() -> None:
    config = NetworkConfig.from_dict(
        {"dhcp": {"search_domains": ["corp.example"], "lease_time": 600, "ra_managed": False}}
    )
    assert config.dhcp.search_domains == ("corp.example",)
    assert config.to_dict()["dhcp"] == {
        "enabled": True,
        "search_domains": ["corp.example"],
        "lease_time": 600,
        "router_advertisements": True,
        "ra_interval": 600,
        "ra_managed": False,
        "ra_other": True,
        "dhcpv6": True,
    }


@given(dhcp_configs)
def test_round_trip(config: DhcpConfig) -> None:
    data = json.loads(json.dumps(NetworkConfig(dhcp=config).to_dict()))
    assert NetworkConfig.from_dict(data).dhcp == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"enabled": "yes"}, "dhcp.enabled: 'yes' is not a boolean"),
        ({"lease_time": 5}, "dhcp.lease_time: 5 is outside 10..4294967294"),
        ({"lease_time": 2**32}, "dhcp.lease_time: "),
        ({"search_domains": "example.com"}, "dhcp.search_domains: 'example.com' is not a list"),
        ({"search_domains": ["ok.example", 3]}, "dhcp.search_domains[1]: 3 is not a string"),
        ({"search_domains": ["ok.example", "Bad_Name"]}, "dhcp.search_domains[1]: "),
        ({"search_domains": ["a.b"] * 17}, "dhcp.search_domains: 17 domains"),
        (
            {"search_domains": ["x" * 60 + f".d{i}.example" for i in range(8)]},
            "dhcp.search_domains: 584 bytes",
        ),
        ({"hostname": "no spaces"}, "dhcp.hostname: "),
        ({"ra_interval": 3}, "dhcp.ra_interval: 3 is outside 4..1800"),
        ({"ra_managed": 1}, "dhcp.ra_managed: 1 is not a boolean"),
        ({"colour": "red"}, "dhcp.colour: unknown key"),
    ],
)
def test_errors_name_their_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        NetworkConfig.from_dict({"dhcp": data})
    assert str(info.value).startswith(message)
    assert info.value.path == message.split(":", maxsplit=1)[0]


def test_section_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match=r"^dhcp: 'on' is not a table"):
        NetworkConfig.from_dict({"dhcp": "on"})
