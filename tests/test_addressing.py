from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.addressing import HostRoutes, derive_addressing
from trionet.config import InterfaceOverrides, NetworkConfig

DUAL = HostRoutes(ipv4=True, ipv6=True)
V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def _config(**interface: object) -> NetworkConfig:
    return NetworkConfig(interface=InterfaceOverrides(**interface))  # type: ignore[arg-type]


def test_slot_0() -> None:
    a = derive_addressing(NetworkConfig(), 0, DUAL)
    assert str(a.guest_mac) == "02:6d:73:00:00:02"
    assert str(a.gateway_mac) == "02:6d:73:00:00:01"
    assert a.ipv4 is not None and a.ipv6 is not None
    assert (a.ipv4.guest, a.ipv4.gateway) == (V4("172.16.0.2"), V4("172.16.0.1"))
    assert (a.ipv6.guest, a.ipv6.gateway) == (V6("fd42:6d73:62::2"), V6("fd42:6d73:62::1"))
    assert a.ipv6.gateway_link_local == V6("fe80::1")
    assert a.mtu == 1500


def test_slot_1() -> None:
    a = derive_addressing(NetworkConfig(), 1, DUAL)
    assert a.ipv4 is not None
    assert (a.ipv4.guest, a.ipv4.gateway) == (V4("172.16.0.6"), V4("172.16.0.5"))
    assert str(a.guest_mac) == "02:6d:73:00:01:02"


def test_slot_mac_is_big_endian() -> None:
    a = derive_addressing(NetworkConfig(), 0x1234, DUAL)
    assert str(a.guest_mac) == "02:6d:73:12:34:02"
    assert str(a.gateway_mac) == "02:6d:73:12:34:01"


def test_small_ipv4_pool() -> None:
    a = derive_addressing(_config(ipv4_pool=ipaddress.IPv4Network("172.31.240.0/24")), 63, DUAL)
    assert a.ipv4 is not None and a.ipv4.guest == V4("172.31.240.254")
    with pytest.raises(ValueError, match=r"slot 64 .*capacity is 64 slots"):
        derive_addressing(_config(ipv4_pool=ipaddress.IPv4Network("172.31.240.0/24")), 64, DUAL)


def test_ipv6_pool() -> None:
    pool = ipaddress.IPv6Network("fd7a:115c:a1e0:100::/56")
    a = derive_addressing(_config(ipv6_pool=pool), 3, DUAL)
    assert a.ipv6 is not None and a.ipv6.guest == V6("fd7a:115c:a1e0:103::2")
    assert a.ipv6.gateway == V6("fd7a:115c:a1e0:103::1")
    with pytest.raises(ValueError, match=r"slot 256 .*IPv6 pool .*capacity is 256"):
        derive_addressing(_config(ipv6_pool=pool), 256, DUAL)


def test_slot_limits() -> None:
    a = derive_addressing(NetworkConfig(), 65535, DUAL)
    assert str(a.guest_mac) == "02:6d:73:ff:ff:02"
    with pytest.raises(ValueError, match="slot 65536"):
        derive_addressing(NetworkConfig(), 65536, DUAL)
    with pytest.raises(ValueError, match="slot -1"):
        derive_addressing(NetworkConfig(), -1, DUAL)


def test_explicit_addresses_win_and_activate_their_family() -> None:
    a = derive_addressing(
        _config(ipv4_address=V4("10.0.0.10"), ipv6_address=V6("fd00:1:2:3::9")),
        5,
        HostRoutes(ipv4=False, ipv6=False),
    )
    assert a.ipv4 is not None and (a.ipv4.guest, a.ipv4.gateway) == (
        V4("10.0.0.10"),
        V4("10.0.0.9"),
    )
    assert a.ipv6 is not None and a.ipv6.gateway == V6("fd00:1:2:3::1")


def test_families_follow_host_routes() -> None:
    a = derive_addressing(NetworkConfig(), 0, HostRoutes(ipv4=True, ipv6=False))
    assert a.ipv4 is not None and a.ipv6 is None
    a = derive_addressing(NetworkConfig(), 0, HostRoutes(ipv4=False, ipv6=True))
    assert a.ipv4 is None and a.ipv6 is not None


def test_small_mtu_keeps_ipv6_off() -> None:
    a = derive_addressing(_config(mtu=1000), 0, DUAL)
    assert a.ipv4 is not None and a.ipv6 is None


def test_live_probe_runs() -> None:
    # Whatever this host routes, the probe answers without raising.
    a = derive_addressing(NetworkConfig(), 0)
    assert a.slot == 0


slots = st.integers(0, 65535)


@given(slots, slots)
def test_distinct_slots_never_collide(s1: int, s2: int) -> None:
    if s1 == s2:
        return
    a = derive_addressing(NetworkConfig(), s1, DUAL)
    b = derive_addressing(NetworkConfig(), s2, DUAL)
    assert a.ipv4 and b.ipv4 and a.ipv6 and b.ipv6
    mine = {a.ipv4.guest, a.ipv4.gateway, a.ipv6.guest, a.ipv6.gateway}
    theirs = {b.ipv4.guest, b.ipv4.gateway, b.ipv6.guest, b.ipv6.gateway}
    assert not mine & theirs
    assert not {a.guest_mac, a.gateway_mac} & {b.guest_mac, b.gateway_mac}


@given(slots, st.integers(8, 30), st.integers(8, 64))
def test_guest_and_gateway_share_the_slot_subnet(slot: int, p4: int, p6: int) -> None:
    pool4 = ipaddress.IPv4Network(("10.0.0.0", 8)) if p4 == 8 else None
    cap4 = 1 << (30 - p4)
    cap6 = 1 << (64 - p6)
    if slot >= min(cap4, cap6):
        return
    pool4 = ipaddress.IPv4Network((int(V4("10.0.0.0")) & ~((1 << (32 - p4)) - 1), p4))
    pool6 = ipaddress.IPv6Network((int(V6("fd00::")), p6))
    a = derive_addressing(_config(ipv4_pool=pool4, ipv6_pool=pool6), slot, DUAL)
    assert a.ipv4 and a.ipv6
    net4 = ipaddress.IPv4Network((int(a.ipv4.guest), 30), strict=False)
    net6 = ipaddress.IPv6Network((int(a.ipv6.guest), 64), strict=False)
    assert a.ipv4.gateway in net4 and net4.subnet_of(pool4)
    assert a.ipv6.gateway in net6 and net6.subnet_of(pool6)
    # neither is the /30's network or broadcast address
    assert a.ipv4.guest not in (net4.network_address, net4.broadcast_address)
    assert a.ipv4.gateway not in (net4.network_address, net4.broadcast_address)
