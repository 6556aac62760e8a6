"""Deterministic guest identity from (config, slot).

A slot is a sandbox number. From it alone trionet derives the guest's and the
gateway's MAC addresses and, for each active address family, a small subnet
of the configured pool: a /30 per slot for IPv4 (network, gateway, guest,
broadcast) and a /64 per slot for IPv6 (gateway ``::1``, guest ``::2``). Two
slots therefore never collide, and a restarted sandbox keeps its addresses.

A family is *active* when the user gave an explicit address for it, or when
the host itself has a route for it: handing a guest an IPv6 address on a host
that cannot reach IPv6 only makes its happy-eyeballs clients wait.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from trionet.config import IPV6_MIN_MTU, MacAddress, NetworkConfig

__all__ = [
    "DEFAULT_IPV4_POOL",
    "DEFAULT_IPV6_POOL",
    "MAX_SLOT",
    "GuestAddressing",
    "HostRoutes",
    "Ipv4Assignment",
    "Ipv6Assignment",
    "derive_addressing",
    "probe_host_routes",
]

MAX_SLOT = 0xFFFF
DEFAULT_IPV4_POOL = ipaddress.IPv4Network("172.16.0.0/12")
DEFAULT_IPV6_POOL = ipaddress.IPv6Network("fd42:6d73:62::/48")
IPV4_SLOT_PREFIX = 30
IPV6_SLOT_PREFIX = 64
_LOW64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class HostRoutes:
    """Whether the host can route each family (the probe's answer)."""

    ipv4: bool
    ipv6: bool


@dataclass(frozen=True, slots=True)
class Ipv4Assignment:
    guest: ipaddress.IPv4Address
    gateway: ipaddress.IPv4Address
    prefix_len: int = IPV4_SLOT_PREFIX


@dataclass(frozen=True, slots=True)
class Ipv6Assignment:
    guest: ipaddress.IPv6Address
    gateway: ipaddress.IPv6Address
    prefix_len: int = IPV6_SLOT_PREFIX

    @property
    def gateway_link_local(self) -> ipaddress.IPv6Address:
        """fe80:: plus the gateway's interface id: what NDP and RAs come from."""
        return ipaddress.IPv6Address((0xFE80 << 112) | (int(self.gateway) & _LOW64))


@dataclass(frozen=True, slots=True)
class GuestAddressing:
    """Everything the gateway and the guest's init need to agree on."""

    slot: int
    guest_mac: MacAddress
    gateway_mac: MacAddress
    mtu: int
    host_alias: str
    ipv4: Ipv4Assignment | None
    ipv6: Ipv6Assignment | None


def probe_host_routes() -> HostRoutes:
    """Ask the host kernel whether it routes each family.

    Connecting an unbound UDP socket only consults the routing table; no
    packet leaves the machine. The destinations are documentation addresses
    (RFC 5737, RFC 3849), so no real host is named either.
    """
    return HostRoutes(
        ipv4=_has_route(socket.AF_INET, "192.0.2.1"),
        ipv6=_has_route(socket.AF_INET6, "2001:db8::1"),
    )


def _has_route(family: socket.AddressFamily, address: str) -> bool:
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((address, 443))
    except OSError:
        return False
    return True


def derive_addressing(
    config: NetworkConfig, slot: int, routes: HostRoutes | None = None
) -> GuestAddressing:
    """Derive the guest identity for ``slot``; ``routes`` defaults to a live probe.

    Raises ValueError when the slot is out of range or the pool has no room
    for it; the message names both the slot and the capacity.
    """
    if not 0 <= slot <= MAX_SLOT:
        raise ValueError(f"slot {slot} is outside 0..{MAX_SLOT}")
    iface = config.interface
    if routes is None:
        routes = probe_host_routes()
    mtu = iface.effective_mtu
    hi, lo = slot >> 8, slot & 0xFF
    guest_mac = iface.mac or MacAddress(bytes((0x02, 0x6D, 0x73, hi, lo, 0x02)))
    gateway_mac = MacAddress(bytes((0x02, 0x6D, 0x73, hi, lo, 0x01)))

    ipv4: Ipv4Assignment | None = None
    if iface.ipv4_address is not None:
        ipv4 = Ipv4Assignment(iface.ipv4_address, iface.ipv4_address - 1)
    elif routes.ipv4:
        pool = iface.ipv4_pool or DEFAULT_IPV4_POOL
        base = int(pool.network_address) + 4 * _slot_in(pool, slot, IPV4_SLOT_PREFIX, "IPv4")
        ipv4 = Ipv4Assignment(ipaddress.IPv4Address(base + 2), ipaddress.IPv4Address(base + 1))

    ipv6: Ipv6Assignment | None = None
    if iface.ipv6_address is not None:
        prefix = int(iface.ipv6_address) & ~_LOW64
        ipv6 = Ipv6Assignment(iface.ipv6_address, ipaddress.IPv6Address(prefix | 1))
    elif routes.ipv6 and mtu >= IPV6_MIN_MTU:
        # Below 1280 IPv6 cannot run; a route alone does not force it on.
        pool6 = iface.ipv6_pool or DEFAULT_IPV6_POOL
        index = _slot_in(pool6, slot, IPV6_SLOT_PREFIX, "IPv6")
        base6 = int(pool6.network_address) + (index << 64)
        ipv6 = Ipv6Assignment(ipaddress.IPv6Address(base6 + 2), ipaddress.IPv6Address(base6 + 1))

    return GuestAddressing(
        slot=slot,
        guest_mac=guest_mac,
        gateway_mac=gateway_mac,
        mtu=mtu,
        host_alias=config.host_alias,
        ipv4=ipv4,
        ipv6=ipv6,
    )


def _slot_in(
    pool: ipaddress.IPv4Network | ipaddress.IPv6Network, slot: int, per_slot: int, family: str
) -> int:
    capacity = 1 << (per_slot - pool.prefixlen)
    if slot >= capacity:
        raise ValueError(
            f"slot {slot} does not fit the {family} pool {pool}: its capacity is "
            f"{capacity} slots (0..{capacity - 1})"
        )
    return slot
