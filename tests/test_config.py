from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.dhcp.test_dhcp_config import dhcp_configs
from tests.test_ports_config import port_mappings, rate_limiters
from trionet.config import ConfigError, InterfaceOverrides, MacAddress, NetworkConfig
from trionet.dhcp.config import DhcpConfig
from trionet.dns.config import DnsConfig, Nameserver
from trionet.policy import NetworkPolicy
from trionet.secrets.config import SecretsConfig
from trionet.tls.config import TlsConfig

from .policy.strategies import policies


def test_defaults() -> None:
    config = NetworkConfig()
    assert config.enabled is True
    assert config.host_alias == "host.trionet.internal"
    assert config.max_connections == 256
    assert config.interface == InterfaceOverrides()
    assert config.interface.effective_mtu == 1500


def test_dict_form_uses_text_for_addresses() -> None:
    config = NetworkConfig.from_dict(
        {
            "interface": {
                "mac": "02:6D:73:00:00:02",
                "mtu": 9000,
                "ipv4_pool": "10.0.0.0/16",
                "ipv6_address": "fd00::2",
            },
            "max_connections": 4096,
        }
    )
    assert config.interface.mac == MacAddress(bytes.fromhex("026d73000002"))
    assert config.interface.ipv4_pool == ipaddress.IPv4Network("10.0.0.0/16")
    assert config.to_dict() == {
        "enabled": True,
        "interface": {
            "mac": "02:6d:73:00:00:02",
            "mtu": 9000,
            "ipv4_pool": "10.0.0.0/16",
            "ipv6_address": "fd00::2",
        },
        "host_alias": "host.trionet.internal",
        "max_connections": 4096,
        "ports": [],
        "policy": NetworkPolicy.public().to_dict(),
        "dns": {"rebind_protection": True, "nameservers": [], "query_timeout_ms": 5000},
        "tls": TlsConfig().to_dict(),
        "secrets": {"secrets": [], "on_violation": "block-and-log"},
        "trust_host_cas": False,
        "dhcp": DhcpConfig().to_dict(),
    }


macs = st.binary(min_size=6, max_size=6).map(MacAddress)
interfaces = st.builds(
    InterfaceOverrides,
    mac=st.none() | macs,
    mtu=st.none() | st.integers(1280, 65535),
    ipv4_address=st.none() | st.ip_addresses(v=4).filter(lambda a: int(a) > 0),
    ipv4_pool=st.none()
    | st.builds(
        lambda a, p: ipaddress.IPv4Network((int(a), p), strict=False),
        st.ip_addresses(v=4),
        st.integers(0, 30),
    ),
    ipv6_address=st.none()
    | st.ip_addresses(v=6).filter(lambda a: int(a) & 0xFFFF_FFFF_FFFF_FFFF != 1),
    ipv6_pool=st.none()
    | st.builds(
        lambda a, p: ipaddress.IPv6Network((int(a), p), strict=False),
        st.ip_addresses(v=6),
        st.integers(0, 64),
    ),
)
configs = st.builds(
    NetworkConfig,
    enabled=st.booleans(),
    interface=interfaces,
    host_alias=st.sampled_from(["host.trionet.internal", "h", "a-b.c0.example"]),
    max_connections=st.integers(1, 4096),
    ports=st.lists(port_mappings, max_size=3).map(tuple),
    rate_limiter=st.none() | rate_limiters,
    policy=policies,
    dns=st.builds(
        DnsConfig,
        rebind_protection=st.booleans(),
        nameservers=st.lists(
            st.sampled_from(["1.1.1.1", "9.9.9.9:5353", "2606:4700::1111", "dns.google:853"]).map(
                Nameserver.parse
            ),
            max_size=3,
        ).map(tuple),
        query_timeout_ms=st.integers(1, 3_600_000),
    ),
    tls=st.sampled_from(
        [TlsConfig(), TlsConfig.from_dict({"enabled": True, "bypass": ["*.pinned.example"]})]
    ),
    secrets=st.sampled_from(
        [
            SecretsConfig(),
            SecretsConfig.from_dict(
                {"secrets": [{"env_var": "K", "value": "v", "allowed_hosts": ["a.example"]}]}
            ),
        ]
    ),
    trust_host_cas=st.booleans(),
    dhcp=dhcp_configs,
)


@given(configs)
def test_round_trip(config: NetworkConfig) -> None:
    assert NetworkConfig.from_dict(config.to_dict()) == config
    # and through JSON, which is what files hold
    assert NetworkConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"interface": {"mtu": 70000}}, "interface.mtu: 70000 is outside 68..65535"),
        ({"interface": {"mtu": 67}}, "interface.mtu: 67 is outside 68..65535"),
        ({"interface": {"mtu": True}}, "interface.mtu: True is not an integer"),
        ({"interface": {"mtu": "1500"}}, "interface.mtu: '1500' is not an integer"),
        (
            {"interface": {"mtu": 1000, "ipv6_address": "fd00::2"}},
            "interface.mtu: 1000 is below 1280",
        ),
        ({"interface": {"mac": "02:6d:73"}}, "interface.mac: "),
        ({"interface": {"mac": 5}}, "interface.mac: 5 is not a string"),
        ({"interface": {"ipv4_address": "300.1.1.1"}}, "interface.ipv4_address: "),
        ({"interface": {"ipv4_address": "0.0.0.0"}}, "interface.ipv4_address: "),
        (
            {"interface": {"ipv4_pool": "10.0.0.0/31"}},
            "interface.ipv4_pool: 10.0.0.0/31 is longer",
        ),
        ({"interface": {"ipv4_pool": "10.0.0.1/8"}}, "interface.ipv4_pool: "),
        ({"interface": {"ipv6_address": "fd00::1"}}, "interface.ipv6_address: fd00::1 is ::1"),
        ({"interface": {"ipv6_address": "10.0.0.1"}}, "interface.ipv6_address: "),
        ({"interface": {"ipv6_pool": "fd00::/96"}}, "interface.ipv6_pool: fd00::/96 is longer"),
        ({"interface": {"colour": "red"}}, "interface.colour: unknown key"),
        ({"interface": "eth0"}, "interface: 'eth0' is not a table"),
        ({"colour": []}, "colour: unknown key"),
        ({"enabled": "yes"}, "enabled: 'yes' is not a boolean"),
        ({"max_connections": 4097}, "max_connections: 4097 is outside 1..4096"),
        ({"max_connections": 0}, "max_connections: 0 is outside 1..4096"),
        ({"host_alias": "Bad_Name"}, "host_alias: 'Bad_Name' is not a lowercase DNS name"),
        ({"host_alias": "a..b"}, "host_alias: "),
        ({"policy": []}, "policy: [] is not a table"),
        (
            {
                "policy": {
                    "rules": [
                        {"direction": "egress", "destination": {"cidr": "x"}, "action": "allow"}
                    ]
                }
            },
            "policy.rules[0].destination.cidr: ",
        ),
        ({"dns": {"nameservers": ["1.1.1.1", "a b"]}}, "dns.nameservers[1]: "),
        ({"dns": {"nameservers": [53]}}, "dns.nameservers[0]: 53 is not a string"),
        ({"dns": {"query_timeout_ms": 0}}, "dns.query_timeout_ms: 0 is outside"),
        ({"dns": {"rebind_protection": "no"}}, "dns.rebind_protection: 'no' is not a boolean"),
        ({"dns": {"upstream": "x"}}, "dns.upstream: unknown key"),
    ],
)
def test_errors_name_their_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        NetworkConfig.from_dict(data)
    assert str(info.value).startswith(message)
    assert info.value.path == message.split(":", maxsplit=1)[0]


def test_load_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "net.toml"
    toml.write_text('max_connections = 10\n[interface]\nmtu = 9000\nipv4_pool = "10.1.0.0/16"\n')
    config = NetworkConfig.load(toml)
    assert config.max_connections == 10
    assert config.interface.mtu == 9000
    js = tmp_path / "net.json"
    js.write_text(json.dumps(config.to_dict()))
    assert NetworkConfig.load(js) == config


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("net.toml", "max_connections = ", "is not valid TOML"),
        ("net.json", "{", "is not valid JSON"),
        ("net.json", "[1]", "must hold a table"),
        ("net.yaml", "a: 1", "must end in .toml or .json"),
    ],
)
def test_load_errors_name_the_file(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        NetworkConfig.load(path)
    assert info.value.path == str(path)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        NetworkConfig.load("/nonexistent/net.toml")


def test_policy_key_absent_is_the_public_profile_and_empty_denies() -> None:
    assert NetworkConfig.from_dict({}).policy == NetworkPolicy.public()
    assert NetworkConfig().policy == NetworkPolicy.public()
    assert NetworkConfig.from_dict({"policy": {}}).policy == NetworkPolicy.deny_all()


def test_dns_section() -> None:
    assert NetworkConfig.from_dict({}).dns == DnsConfig(True, (), 5000)
    config = NetworkConfig.from_dict(
        {
            "dns": {
                "nameservers": ["1.1.1.1", "[2606:4700::1111]:53", "dns.google:53"],
                "rebind_protection": False,
                "query_timeout_ms": 250,
            }
        }
    )
    assert config.dns.nameservers == (
        Nameserver("1.1.1.1", 53),
        Nameserver("2606:4700::1111", 53),
        Nameserver("dns.google", 53),
    )
    assert config.dns.to_dict()["nameservers"] == [
        "1.1.1.1:53",
        "[2606:4700::1111]:53",
        "dns.google:53",
    ]


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("1.1.1.1", "1.1.1.1", 53),
        (" 1.1.1.1:5353 ", "1.1.1.1", 5353),
        ("2606:4700::1111", "2606:4700::1111", 53),
        ("[2606:4700::1111]:853", "2606:4700::1111", 853),
        ("::1", "::1", 53),
        ("Dns.Google", "dns.google", 53),
        ("dns.google:853", "dns.google", 853),
    ],
)
def test_nameserver_grammar(text: str, host: str, port: int) -> None:
    assert Nameserver.parse(text) == Nameserver(host, port)


@pytest.mark.parametrize(
    "text",
    ["", "  ", "1.1.1.1 :53", "[::1]", "[nope]:53", "1.1.1.1:0", "h:70000", "http://x", "[::1]:x"],
)
def test_nameserver_grammar_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        Nameserver.parse(text)


def test_toml_policy_section(tmp_path: Path) -> None:
    toml = tmp_path / "net.toml"
    toml.write_text(
        '[policy]\ndefault_egress = "deny"\n'
        '[[policy.rules]]\ndirection = "egress"\ndestination = { group = "public" }\n'
        'action = "allow"\n'
        '[[policy.rules]]\ndirection = "egress"\ndestination = { domain = "Example.COM" }\n'
        'protocols = ["tcp"]\nports = [{ start = 443, end = 443 }]\naction = "deny"\n'
        '[dns]\nnameservers = ["127.0.0.1:5353"]\n'
    )
    config = NetworkConfig.load(toml)
    assert [r.text() for r in config.policy.rules] == [
        "allow egress group:public",
        "deny egress domain:example.com tcp port 443",
    ]
    assert config.policy.default_ingress.value == "deny"
    assert str(config.dns.nameservers[0]) == "127.0.0.1:5353"
