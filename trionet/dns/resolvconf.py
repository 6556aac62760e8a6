"""The host's resolvers from resolv.conf text (§7.2), sans-IO: the shell reads the file."""

from __future__ import annotations

import ipaddress

__all__ = ["nameservers_from_resolv_conf"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def nameservers_from_resolv_conf(text: str) -> list[IPAddress]:
    """The ``nameserver`` addresses, in file order; comments and other lines ignored.

    An IPv6 address with a zone (``fe80::1%eth0``) is skipped: the zone names
    an interface of the host, and trionet's upstream sockets do not bind to one.
    Anything that is not an address is skipped too.
    """
    found: list[IPAddress] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) < 2 or fields[0] != "nameserver" or "%" in fields[1]:
            continue
        try:
            address = ipaddress.ip_address(fields[1])
        except ValueError:
            continue
        if address not in found:
            found.append(address)
    return found
