from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.addressing import HostRoutes, derive_addressing
from trionet.config import NetworkConfig
from trionet.guest_env import GuestEnvError, guest_env_vars, parse_guest_env


@pytest.mark.parametrize(
    ("v4", "v6", "names"),
    [
        (True, True, ["MSB_NET", "MSB_HOST_ALIAS", "MSB_NET_IPV4", "MSB_NET_IPV6"]),
        (True, False, ["MSB_NET", "MSB_HOST_ALIAS", "MSB_NET_IPV4"]),
        (False, True, ["MSB_NET", "MSB_HOST_ALIAS", "MSB_NET_IPV6"]),
        (False, False, ["MSB_NET", "MSB_HOST_ALIAS"]),
    ],
)
def test_variables_per_active_family(v4: bool, v6: bool, names: list[str]) -> None:
    env = guest_env_vars(derive_addressing(NetworkConfig(), 3, HostRoutes(v4, v6)))
    assert [k for k, _ in env] == names


def test_exact_formats() -> None:
    env = dict(guest_env_vars(derive_addressing(NetworkConfig(), 3, HostRoutes(True, True))))
    assert env == {
        "MSB_NET": "iface=eth0,mac=02:6d:73:00:03:02,mtu=1500",
        "MSB_HOST_ALIAS": "host.trionet.internal",
        "MSB_NET_IPV4": "addr=172.16.0.14/30,gw=172.16.0.13,dns=172.16.0.13",
        "MSB_NET_IPV6": "addr=fd42:6d73:62:3::2/64,gw=fd42:6d73:62:3::1,dns=fd42:6d73:62:3::1",
    }


@given(st.integers(0, 65535), st.booleans(), st.booleans())
def test_env_parses_back(slot: int, v4: bool, v6: bool) -> None:
    addressing = derive_addressing(NetworkConfig(), slot, HostRoutes(v4, v6))
    parsed = parse_guest_env(dict(guest_env_vars(addressing)))
    assert parsed.mac == addressing.guest_mac
    assert parsed.mtu == addressing.mtu
    assert parsed.iface == "eth0"
    assert parsed.host_alias == addressing.host_alias
    for got, want in ((parsed.ipv4, addressing.ipv4), (parsed.ipv6, addressing.ipv6)):
        if want is None:
            assert got is None
        else:
            assert got is not None
            assert got.interface.ip == want.guest
            assert got.interface.network.prefixlen == want.prefix_len
            assert got.gateway == want.gateway == got.dns


def test_defaults_when_optional_keys_absent() -> None:
    parsed = parse_guest_env(
        {
            "MSB_NET": "iface=eth0,mac=02:00:00:00:00:01",
            "MSB_NET_IPV4": "addr=10.0.0.2/30,gw=10.0.0.1",
        }
    )
    assert parsed.mtu == 1500
    assert parsed.ipv4 is not None and parsed.ipv4.dns is None
    assert parsed.ipv4.interface == ipaddress.IPv4Interface("10.0.0.2/30")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "MSB_NET is not set"),
        ({"MSB_NET": "iface=eth0"}, "MSB_NET: missing mac"),
        ({"MSB_NET": "iface=eth0,mac=02:00:00:00:00:01,speed=10"}, "unknown key 'speed'"),
        ({"MSB_NET": "iface=eth0,mac=02:00:00:00:00"}, "MSB_NET: mac: "),
        ({"MSB_NET": "iface=eth0,mac=02:00:00:00:00:01,mtu=x"}, "MSB_NET: mtu: 'x'"),
        ({"MSB_NET": "iface=eth0,mac=02:00:00:00:00:01,mtu=99999"}, "MSB_NET: mtu"),
        ({"MSB_NET": "iface=eth0,eth1,mac=02:00:00:00:00:01"}, "'eth1' is not key=value"),
        ({"MSB_NET": "iface=eth0,iface=eth1,mac=02:00:00:00:00:01"}, "'iface' given twice"),
        ({"MSB_NET": "iface=,mac=02:00:00:00:00:01"}, "iface is empty"),
    ],
)
def test_net_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(GuestEnvError, match=message):
        parse_guest_env(env)


NET = "iface=eth0,mac=02:00:00:00:00:01"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MSB_NET_IPV4", "addr=10.0.0.2,gw=10.0.0.1", "has no /prefix"),
        ("MSB_NET_IPV4", "addr=10.0.0.2/33,gw=10.0.0.1", "MSB_NET_IPV4: "),
        ("MSB_NET_IPV4", "addr=10.0.0.2/30", "missing gw"),
        ("MSB_NET_IPV4", "addr=fd00::2/64,gw=fd00::1", "addr is not an IPv4 address"),
        ("MSB_NET_IPV6", "addr=fd00::2/64,gw=10.0.0.1", "gw is not an IPv6 address"),
        ("MSB_NET_IPV6", "addr=fd00::2/64,gw=fd00::1,dns=nope", "MSB_NET_IPV6: "),
        ("MSB_NET_IPV6", "addr=fd00::2/64,gw=fd00::1,via=x", "unknown key 'via'"),
    ],
)
def test_family_errors(name: str, value: str, message: str) -> None:
    with pytest.raises(GuestEnvError, match=message):
        parse_guest_env({"MSB_NET": NET, name: value})
