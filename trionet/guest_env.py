"""The ``MSB_NET*`` variables: how a guest's init learns its network.

Both directions live here so they cannot drift apart: :func:`guest_env_vars`
writes the variables from a :class:`~trionet.addressing.GuestAddressing`, and
:func:`parse_guest_env` reads them back the way a guest init does (strictly:
unknown keys and malformed values are errors, since a guest silently running
with half a configuration is worse than one that refuses to start).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from trionet.addressing import GuestAddressing
from trionet.config import MTU_MAX, MTU_MIN, MacAddress

__all__ = [
    "GuestEnvError",
    "GuestFamilyConfig",
    "GuestNetConfig",
    "guest_env_vars",
    "parse_guest_env",
]

NET = "MSB_NET"
HOST_ALIAS = "MSB_HOST_ALIAS"
NET_IPV4 = "MSB_NET_IPV4"
NET_IPV6 = "MSB_NET_IPV6"


def guest_env_vars(addressing: GuestAddressing) -> list[tuple[str, str]]:
    """The guest variables, in their documented order."""
    env = [
        (NET, f"iface=eth0,mac={addressing.guest_mac},mtu={addressing.mtu}"),
        (HOST_ALIAS, addressing.host_alias),
    ]
    for name, family in ((NET_IPV4, addressing.ipv4), (NET_IPV6, addressing.ipv6)):
        if family is not None:
            env.append(
                (
                    name,
                    f"addr={family.guest}/{family.prefix_len},"
                    f"gw={family.gateway},dns={family.gateway}",
                )
            )
    return env


class GuestEnvError(ValueError):
    """A guest variable is missing, has an unknown key or a malformed value."""


@dataclass(frozen=True, slots=True)
class GuestFamilyConfig:
    interface: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address
    dns: ipaddress.IPv4Address | ipaddress.IPv6Address | None


@dataclass(frozen=True, slots=True)
class GuestNetConfig:
    """What a guest init configures: one interface, up to two families."""

    iface: str
    mac: MacAddress
    mtu: int
    host_alias: str | None
    ipv4: GuestFamilyConfig | None
    ipv6: GuestFamilyConfig | None


def parse_guest_env(env: Mapping[str, str]) -> GuestNetConfig:
    """Parse the variables a guest was given; ignores unrelated variables."""
    if NET not in env:
        raise GuestEnvError(f"{NET} is not set")
    net = _fields(NET, env[NET], required={"iface", "mac"}, optional={"mtu"})
    try:
        mac = MacAddress.parse(net["mac"])
    except ValueError as exc:
        raise GuestEnvError(f"{NET}: mac: {exc}") from exc
    mtu = 1500
    if "mtu" in net:
        if not net["mtu"].isdigit() or not MTU_MIN <= int(net["mtu"]) <= MTU_MAX:
            raise GuestEnvError(f"{NET}: mtu: {net['mtu']!r} is not in {MTU_MIN}..{MTU_MAX}")
        mtu = int(net["mtu"])
    if not net["iface"]:
        raise GuestEnvError(f"{NET}: iface is empty")
    return GuestNetConfig(
        iface=net["iface"],
        mac=mac,
        mtu=mtu,
        host_alias=env.get(HOST_ALIAS),
        ipv4=_family(NET_IPV4, env.get(NET_IPV4), 4),
        ipv6=_family(NET_IPV6, env.get(NET_IPV6), 6),
    )


def _fields(name: str, value: str, *, required: set[str], optional: set[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in value.split(","):
        key, eq, val = item.partition("=")
        if not eq:
            raise GuestEnvError(f"{name}: {item!r} is not key=value")
        if key not in required | optional:
            raise GuestEnvError(f"{name}: unknown key {key!r}")
        if key in fields:
            raise GuestEnvError(f"{name}: {key!r} given twice")
        fields[key] = val
    missing = required - fields.keys()
    if missing:
        raise GuestEnvError(f"{name}: missing {', '.join(sorted(missing))}")
    return fields


def _family(name: str, value: str | None, version: int) -> GuestFamilyConfig | None:
    if value is None:
        return None
    fields = _fields(name, value, required={"addr", "gw"}, optional={"dns"})
    try:
        if "/" not in fields["addr"]:
            raise ValueError(f"{fields['addr']!r} has no /prefix")
        interface = ipaddress.ip_interface(fields["addr"])
        gateway = ipaddress.ip_address(fields["gw"])
        dns = ipaddress.ip_address(fields["dns"]) if "dns" in fields else None
    except ValueError as exc:
        raise GuestEnvError(f"{name}: {exc}") from exc
    for what, addr in (("addr", interface), ("gw", gateway), ("dns", dns)):
        if addr is not None and addr.version != version:
            raise GuestEnvError(f"{name}: {what} is not an IPv{version} address")
    assert isinstance(interface, ipaddress.IPv4Interface | ipaddress.IPv6Interface)
    return GuestFamilyConfig(interface=interface, gateway=gateway, dns=dns)
