"""Address groups (reference §10.2) and the rebind-private set (§7.4).

Classification runs once per new flow, so it works on integers rather than
``ip in network`` (which builds objects on every test). IPv4-mapped IPv6
addresses (``::ffff:10.0.0.1``) are classified as the IPv4 address they
carry: a guest must not reach 10.0.0.1 by spelling it in IPv6. So are
addresses in NAT64's well-known prefix (``64:ff9b::10.0.0.1``), which a
translator on the host's path turns into that IPv4 address; the local-use
NAT64 prefix 64:ff9b:1::/48 is private.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from trionet.policy.model import Group

__all__ = ["Gateways", "IPAddress", "classify", "is_rebind_private", "normalize"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def normalize(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped IPv6 address carries; any other address as is."""
    if ip.version == 6:
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return mapped
    return ip


@dataclass(frozen=True, slots=True)
class Gateways:
    """The sandbox's gateway addresses: what the ``host`` group means."""

    ipv4: ipaddress.IPv4Address | None = None
    #: global and link-local gateway addresses
    ipv6: tuple[ipaddress.IPv6Address, ...] = ()

    def __contains__(self, ip: object) -> bool:
        return ip == self.ipv4 or ip in self.ipv6


def _blocks(*cidrs: str) -> tuple[tuple[int, int], ...]:
    nets = [ipaddress.ip_network(c) for c in cidrs]
    return tuple((int(n.network_address), int(n.netmask)) for n in nets)


def _in(value: int, blocks: tuple[tuple[int, int], ...]) -> bool:
    # A plain loop, not any() over a generator: this runs for every address
    # classified, and the generator costs three times as much.
    for network, mask in blocks:  # noqa: SIM110
        if value & mask == network:
            return True
    return False


_METADATA = int(ipaddress.IPv4Address("169.254.169.254"))
_V4_LOOPBACK = _blocks("127.0.0.0/8")
_V4_PRIVATE = _blocks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
_V4_LINK_LOCAL = _blocks("169.254.0.0/16")
_V4_MULTICAST = _blocks("224.0.0.0/4")
_V6_PRIVATE = _blocks("fc00::/7")
_V6_LINK_LOCAL = _blocks("fe80::/10")
_V6_MULTICAST = _blocks("ff00::/8")
_V6_LOOPBACK = 1
#: NAT64's well-known prefix 64:ff9b::/96 (RFC 6052), as the top 96 bits, and
#: the local-use 64:ff9b:1::/48 (RFC 8215).
_NAT64_WKP = int(ipaddress.IPv6Address("64:ff9b::")) >> 32
_NAT64_LOCAL = _blocks("64:ff9b:1::/48")


def classify(ip: IPAddress, gateways: Gateways) -> Group | None:
    """The §10.2 group of ``ip``; None for the unspecified address (which no rule reaches).

    The order matters: the gateway is ``host`` although it sits in a
    private range, and the metadata address is not merely link-local.
    """
    ip = normalize(ip)
    value = int(ip)
    if value == 0:
        return None
    if ip in gateways:
        return Group.HOST
    if ip.version == 4:
        if value == _METADATA:
            return Group.METADATA
        if _in(value, _V4_LOOPBACK):
            return Group.LOOPBACK
        if _in(value, _V4_PRIVATE):
            return Group.PRIVATE
        if _in(value, _V4_LINK_LOCAL):
            return Group.LINK_LOCAL
        if _in(value, _V4_MULTICAST):
            return Group.MULTICAST
        return Group.PUBLIC
    if value == _V6_LOOPBACK:
        return Group.LOOPBACK
    if value >> 32 == _NAT64_WKP:
        # A NAT64 on the host's path delivers 64:ff9b::a.b.c.d to a.b.c.d
        # (AWS's NAT gateway does, into the VPC's private ranges): it is
        # that IPv4 address, spelled so as to slip past its group.
        return classify(ipaddress.IPv4Address(value & 0xFFFFFFFF), gateways)
    if _in(value, _NAT64_LOCAL):
        return Group.PRIVATE  # a site's own translator: nothing public about it
    if _in(value, _V6_PRIVATE):
        return Group.PRIVATE
    if _in(value, _V6_LINK_LOCAL):
        return Group.LINK_LOCAL
    if _in(value, _V6_MULTICAST):
        return Group.MULTICAST
    return Group.PUBLIC


# §7.4: deliberately broader than the private group -- every range a public
# name has no business resolving to (documentation, benchmarking, 6to4 relay,
# reserved), so a rebinding answer cannot point the guest at any of them.
_REBIND_V4 = _blocks(
    "0.0.0.0/8",
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
_REBIND_V6 = _blocks(
    "::1/128",
    "::/128",
    "ff00::/8",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "100::/64",
    "64:ff9b:1::/48",
    "2001:db8::/32",
    "3fff::/20",
)


def is_rebind_private(ip: IPAddress) -> bool:
    """True when a DNS answer holding ``ip`` is a rebinding risk (§7.4).

    A NAT64 address (``64:ff9b::10.0.0.5``, as DNS64 synthesises) is judged
    by the IPv4 it carries, as :func:`classify` does: otherwise a name
    allowed by a domain rule could rebind to a private IPv4 through it.
    """
    ip = normalize(ip)
    value = int(ip)
    if ip.version == 6 and value >> 32 == _NAT64_WKP:
        return _in(value & 0xFFFFFFFF, _REBIND_V4)
    return _in(value, _REBIND_V4 if ip.version == 4 else _REBIND_V6)
