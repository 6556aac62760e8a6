"""Which destinations are the host itself under another name than the gateway.

The policy's ``host`` group is the gateway: the engine dials the host's
loopback for it. But the host has other addresses too (a public IP, a LAN
address, a container bridge), and a connection the engine dials to one of
them is delivered locally by the host kernel: it reaches every host service
bound to ``0.0.0.0`` exactly as the gateway does. Without this check the
default profile (public internet, no host) would let a guest reach the host
through its public address.

The host kernel's routing answers the question, so nothing has to track
interface changes: connecting a UDP socket sends nothing but picks a source
address, and for a local destination that source is the destination itself.
Answers are cached per address for a few seconds (a burst of connections to
one server pays once), in a bounded table.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import OrderedDict

__all__ = ["HostAddresses"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: How long an answer holds: long enough for a burst, short enough to notice
#: an address added to or removed from the host.
CACHE_SECONDS = 5.0
CACHE_SIZE = 4096


class HostAddresses:
    """``is_local(ip, now)``: is ``ip`` one of the host's own addresses?"""

    def __init__(self, cache_seconds: float = CACHE_SECONDS, cache_size: int = CACHE_SIZE) -> None:
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._cache: OrderedDict[IPAddress, tuple[bool, float]] = OrderedDict()

    def is_local(self, ip: IPAddress, now: float) -> bool:
        cached = self._cache.get(ip)
        if cached is not None and cached[1] > now:
            return cached[0]
        local = _routes_to_itself(ip)
        self._cache[ip] = (local, now + self._cache_seconds)
        self._cache.move_to_end(ip)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return local


def _routes_to_itself(ip: IPAddress) -> bool:
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((str(ip), 9))  # no packet: UDP connect only routes
            source = probe.getsockname()[0]
    except OSError:
        return False  # no route: certainly not local
    try:
        return ipaddress.ip_address(source.split("%", 1)[0]) == ip
    except ValueError:
        return False
