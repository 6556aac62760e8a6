"""Immutable network configuration, and its dict/TOML/JSON forms.

A :class:`NetworkConfig` is built once, validated completely, and never
changes: everything the engine derives from it (addresses, limits) can then be
computed up front. Every rule violation raises :class:`ConfigError` whose
message starts with the dotted path of the offending field, so a user editing
a large file is pointed straight at the line to fix.

The dict form uses snake_case keys, MAC addresses as ``"02:6d:73:00:00:02"``,
networks as CIDR strings and addresses as strings; it is what TOML and JSON
files hold. Each further section (``ports``, ``policy``, ``dns``, ``tls``,
``secrets``, ...) is a frozen dataclass defined beside the code that uses it,
with its own ``from_dict(data, prefix)``/``to_dict()`` pair built on
:mod:`trionet.config_fields`; :class:`NetworkConfig` holds one field per
section and delegates to those.
"""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trionet.config_fields import ConfigError, ConfigReader, check_hostname, parse_field
from trionet.dhcp.config import DhcpConfig
from trionet.dns.config import DnsConfig
from trionet.policy.model import NetworkPolicy
from trionet.ports.config import PortMapping, ports_from_dict, ports_to_dict
from trionet.ratelimit.config import RateLimiterConfig
from trionet.secrets.config import SecretsConfig
from trionet.tls.config import TlsConfig

__all__ = [
    "MAX_CONNECTIONS_LIMIT",
    "ConfigError",
    "InterfaceOverrides",
    "MacAddress",
    "NetworkConfig",
]

MAX_CONNECTIONS_LIMIT = 4096
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_HOST_ALIAS = "host.trionet.internal"
MTU_MIN = 68
MTU_MAX = 65535
IPV6_MIN_MTU = 1280


@dataclass(frozen=True, slots=True)
class MacAddress:
    """A 48-bit Ethernet address, printed as six lowercase hex octets."""

    packed: bytes

    def __post_init__(self) -> None:
        if len(self.packed) != 6:
            raise ValueError(f"a MAC address has 6 octets, not {len(self.packed)}")

    _TEXT = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")

    @classmethod
    def parse(cls, text: str) -> MacAddress:
        """Parse ``aa:bb:cc:dd:ee:ff`` (either case); raise ValueError otherwise."""
        if not cls._TEXT.match(text):
            raise ValueError(f"{text!r} is not six colon-separated hex octets")
        return cls(bytes.fromhex(text.replace(":", "")))

    def __str__(self) -> str:
        return ":".join(f"{b:02x}" for b in self.packed)


@dataclass(frozen=True, slots=True)
class InterfaceOverrides:
    """Explicit choices for the guest interface; None means "derive from the slot"."""

    mac: MacAddress | None = None
    mtu: int | None = None
    ipv4_address: ipaddress.IPv4Address | None = None
    ipv4_pool: ipaddress.IPv4Network | None = None
    ipv6_address: ipaddress.IPv6Address | None = None
    ipv6_pool: ipaddress.IPv6Network | None = None

    def __post_init__(self) -> None:
        if self.mtu is not None:
            _check_mtu(self.mtu, explicit_ipv6=self.ipv6_address is not None)
        if self.ipv4_pool is not None and self.ipv4_pool.prefixlen > 30:
            raise ConfigError(
                "interface.ipv4_pool",
                f"{self.ipv4_pool} is longer than /30; each slot needs a /30",
            )
        if self.ipv6_pool is not None and self.ipv6_pool.prefixlen > 64:
            raise ConfigError(
                "interface.ipv6_pool",
                f"{self.ipv6_pool} is longer than /64; each slot needs a /64",
            )
        # The gateway is the address just below the guest's.
        if self.ipv4_address is not None and int(self.ipv4_address) == 0:
            raise ConfigError(
                "interface.ipv4_address", "0.0.0.0 leaves no room for a gateway below it"
            )
        if self.ipv6_address is not None and int(self.ipv6_address) & 0xFFFF_FFFF_FFFF_FFFF == 1:
            raise ConfigError(
                "interface.ipv6_address",
                f"{self.ipv6_address} is ::1 of its /64, which is the gateway's",
            )

    @property
    def effective_mtu(self) -> int:
        return 1500 if self.mtu is None else self.mtu


def _check_mtu(mtu: int, *, explicit_ipv6: bool) -> None:
    if not MTU_MIN <= mtu <= MTU_MAX:
        raise ConfigError("interface.mtu", f"{mtu} is outside {MTU_MIN}..{MTU_MAX}")
    if explicit_ipv6 and mtu < IPV6_MIN_MTU:
        raise ConfigError(
            "interface.mtu",
            f"{mtu} is below {IPV6_MIN_MTU}, the IPv6 minimum, and ipv6_address is set",
        )


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Everything trionet needs to know about one sandbox's network."""

    enabled: bool = True
    interface: InterfaceOverrides = field(default_factory=InterfaceOverrides)
    host_alias: str = DEFAULT_HOST_ALIAS
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: published ports (host -> guest), reference §9
    ports: tuple[PortMapping, ...] = ()
    #: token buckets on the guest's frames, reference §12; None: unlimited
    rate_limiter: RateLimiterConfig | None = None
    #: key absent: the public profile (the secure default); ``{}``: deny everything
    policy: NetworkPolicy = field(default_factory=NetworkPolicy.public)
    dns: DnsConfig = field(default_factory=DnsConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    secrets: SecretsConfig = field(default_factory=SecretsConfig)
    #: give the guest the host's trust roots (``Network.host_cas_cert_pem``)
    trust_host_cas: bool = False
    dhcp: DhcpConfig = field(default_factory=DhcpConfig)

    def __post_init__(self) -> None:
        check_hostname("host_alias", self.host_alias)
        if not 1 <= self.max_connections <= MAX_CONNECTIONS_LIMIT:
            raise ConfigError(
                "max_connections",
                f"{self.max_connections} is outside 1..{MAX_CONNECTIONS_LIMIT}",
            )

    # -- dict form ---------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkConfig:
        """Build and validate a config from its dict form (as TOML/JSON give it)."""
        reader = ConfigReader(data, "")
        enabled = reader.take("enabled", bool, True)
        interface_data = reader.take("interface", Mapping, None)
        host_alias = reader.take("host_alias", str, DEFAULT_HOST_ALIAS)
        max_connections = reader.take("max_connections", int, DEFAULT_MAX_CONNECTIONS)
        ports = ports_from_dict(reader.take("ports", Sequence, ()))
        rate_limiter_data = reader.take("rate_limiter", Mapping, None)
        policy_data = reader.take("policy", Mapping, None)
        dns_data = reader.take("dns", Mapping, None)
        tls_data = reader.take("tls", Mapping, None)
        secrets_data = reader.take("secrets", Mapping, None)
        trust_host_cas = reader.take("trust_host_cas", bool, False)
        dhcp_data = reader.take("dhcp", Mapping, {})
        reader.finish()
        rate_limiter = (
            None if rate_limiter_data is None else RateLimiterConfig.from_dict(rate_limiter_data)
        )
        interface = (
            InterfaceOverrides()
            if interface_data is None
            else _interface_from_dict(interface_data)
        )
        return cls(
            enabled=enabled,
            interface=interface,
            host_alias=host_alias,
            max_connections=max_connections,
            ports=ports,
            rate_limiter=rate_limiter,
            policy=NetworkPolicy.public()
            if policy_data is None
            else NetworkPolicy.from_dict(policy_data, "policy."),
            dns=DnsConfig() if dns_data is None else DnsConfig.from_dict(dns_data, "dns."),
            tls=TlsConfig() if tls_data is None else TlsConfig.from_dict(tls_data, "tls."),
            secrets=SecretsConfig()
            if secrets_data is None
            else SecretsConfig.from_dict(secrets_data, "secrets."),
            trust_host_cas=trust_host_cas,
            dhcp=DhcpConfig.from_dict(dhcp_data, "dhcp."),
        )

    def to_dict(self) -> dict[str, Any]:
        """The dict form; fields left to their derived default are omitted."""
        interface: dict[str, Any] = {}
        iface = self.interface
        for name in ("mac", "ipv4_address", "ipv4_pool", "ipv6_address", "ipv6_pool"):
            value = getattr(iface, name)
            if value is not None:
                interface[name] = str(value)
        if iface.mtu is not None:
            interface["mtu"] = iface.mtu
        out: dict[str, Any] = {
            "enabled": self.enabled,
            "interface": interface,
            "host_alias": self.host_alias,
            "max_connections": self.max_connections,
            "ports": ports_to_dict(self.ports),
            "policy": self.policy.to_dict(),
            "dns": self.dns.to_dict(),
            "tls": self.tls.to_dict(),
            "secrets": self.secrets.to_dict(),
            "trust_host_cas": self.trust_host_cas,
            "dhcp": self.dhcp.to_dict(),
        }
        if self.rate_limiter is not None:
            out["rate_limiter"] = self.rate_limiter.to_dict()
        return out

    @classmethod
    def load(cls, path: str | Path) -> NetworkConfig:
        """Load from a ``.toml`` or ``.json`` file."""
        path = Path(path)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ConfigError(str(path), f"cannot be read: {exc.strerror}") from exc
        try:
            if path.suffix == ".toml":
                data: Any = tomllib.loads(text.decode())
            elif path.suffix == ".json":
                data = json.loads(text)
            else:
                raise ConfigError(str(path), "must end in .toml or .json")
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), f"is not valid {path.suffix[1:].upper()}: {exc}") from exc
        if not isinstance(data, Mapping):
            raise ConfigError(str(path), "must hold a table/object at the top level")
        return cls.from_dict(data)


def _interface_from_dict(data: Mapping[str, Any]) -> InterfaceOverrides:
    reader = ConfigReader(data, "interface.")
    mac = reader.take("mac", str, None)
    mtu = reader.take("mtu", int, None)
    v4 = reader.take("ipv4_address", str, None)
    v4_pool = reader.take("ipv4_pool", str, None)
    v6 = reader.take("ipv6_address", str, None)
    v6_pool = reader.take("ipv6_pool", str, None)
    reader.finish()
    return InterfaceOverrides(
        mac=None if mac is None else parse_field("interface.mac", MacAddress.parse, mac),
        mtu=mtu,
        ipv4_address=None
        if v4 is None
        else parse_field("interface.ipv4_address", ipaddress.IPv4Address, v4),
        ipv4_pool=None
        if v4_pool is None
        else parse_field("interface.ipv4_pool", ipaddress.IPv4Network, v4_pool),
        ipv6_address=None
        if v6 is None
        else parse_field("interface.ipv6_address", ipaddress.IPv6Address, v6),
        ipv6_pool=None
        if v6_pool is None
        else parse_field("interface.ipv6_pool", ipaddress.IPv6Network, v6_pool),
    )
